import TensorCore

/// The `mask` section of a training configuration: the settings of the multi-block mask sampler (official
/// `src/masks/multiblock.py`), named as the official config keys (`patch_size`, `enc_mask_scale`, ...). The grid
/// the sampler runs on is the input size over `patchSize`; `MaskCollator` takes it.
///
/// Defaults are the main job's (Fashion-MNIST at 28 px): the official values everywhere except `patchSize` 4
/// (official configs 14 or 16 at 224 px) and `minKeep` 4 (official 10, with which the official sampler never
/// returns on a 7 x 7 grid: its smallest target block has 6 patches; `validate` refuses such settings).
public struct MaskConfig: Sendable, Equatable {
    /// Side of a square patch in pixels (`patch_size`).
    public var patchSize: Int
    /// Context block scale range (lo, hi), fractions of the grid area (`enc_mask_scale`).
    public var encMaskScale: [Double]
    /// Target block scale range (lo, hi) (`pred_mask_scale`).
    public var predMaskScale: [Double]
    /// Target block aspect-ratio range h / w (`aspect_ratio`); the context always uses (1, 1).
    public var aspectRatio: [Double]
    /// Context masks per image (`num_enc_masks`).
    public var numEncMasks: Int
    /// Target masks per image (`num_pred_masks`).
    public var numPredMasks: Int
    /// A block is accepted only if it keeps strictly more than `minKeep` patches (`min_keep`).
    public var minKeep: Int
    /// Targets may overlap the context (`allow_overlap`).
    public var allowOverlap: Bool
    /// false: the official sampler exactly (positions randint(0, H - h), so the last row and column are never
    /// used; clamp `h >= H`; every mask trimmed to the batch minimum by keeping its first raster indices).
    /// true: positions 0...H - h, clamp `h > H`, and trimming keeps a uniformly random ascending subset
    /// (PR #40 / issue #60); everything else as the official sampler (`fixed`, our key).
    public var fixed: Bool

    public init(
        patchSize: Int = 4, encMaskScale: [Double] = [0.85, 1.0], predMaskScale: [Double] = [0.15, 0.2],
        aspectRatio: [Double] = [0.75, 1.5], numEncMasks: Int = 1, numPredMasks: Int = 4, minKeep: Int = 4,
        allowOverlap: Bool = false, fixed: Bool = false
    ) {
        (self.patchSize, self.encMaskScale, self.predMaskScale, self.aspectRatio) =
            (patchSize, encMaskScale, predMaskScale, aspectRatio)
        (self.numEncMasks, self.numPredMasks, self.minKeep, self.allowOverlap, self.fixed) =
            (numEncMasks, numPredMasks, minKeep, allowOverlap, fixed)
    }

    /// The official masks of every published config, on any grid (`patchSize` 16, `minKeep` 10).
    public static var official: MaskConfig { MaskConfig(patchSize: 16, minKeep: 10) }

    /// The largest grid side the sampler takes: 4096 tokens, 5x the official 448 px / 16 grid. The termination
    /// check below costs time and memory in proportion to the grid's area.
    public static let maxGridSide = 64
    /// The most context or target masks per image: 4x the official 4 targets (FuzzConfig found 926 target
    /// blocks on a 64x64 grid taking over 10 s per batch in the sampler's retry loops).
    public static let maxMasks = 16

    public func validate(gridHeight: Int, gridWidth: Int) throws {
        func fail(_ m: String) throws -> Never { throw MaskConfigError(message: "mask: " + m) }
        if gridHeight < 2 || gridWidth < 2 {
            try fail("the grid (\(gridHeight)x\(gridWidth)) must be at least 2x2 patches (input size / patch_size)")
        }
        if gridHeight > Self.maxGridSide || gridWidth > Self.maxGridSide {
            try fail("the grid (\(gridHeight)x\(gridWidth)) is larger than \(Self.maxGridSide)x\(Self.maxGridSide) patches (input size / patch_size): raise patch_size or lower crop_size")
        }
        if numEncMasks < 1 || numEncMasks > Self.maxMasks { try fail("num_enc_masks (\(numEncMasks)) must be in 1...\(Self.maxMasks)") }
        if numPredMasks < 1 || numPredMasks > Self.maxMasks { try fail("num_pred_masks (\(numPredMasks)) must be in 1...\(Self.maxMasks)") }
        if minKeep < 0 { try fail("min_keep (\(minKeep)) must be >= 0") }
        for (name, s) in [("enc_mask_scale", encMaskScale), ("pred_mask_scale", predMaskScale)] {
            guard s.count == 2, s.allSatisfy({ $0.isFinite }), s[0] > 0, s[0] <= s[1], s[1] <= 1 else {
                try fail("\(name) \(s) must be two values lo <= hi in (0, 1]")
            }
        }
        guard aspectRatio.count == 2, aspectRatio.allSatisfy({ $0.isFinite }), aspectRatio[0] > 0,
              aspectRatio[0] <= aspectRatio[1] else {
            try fail("aspect_ratio \(aspectRatio) must be two values 0 < lo <= hi")
        }
        let grid = "\(gridHeight)x\(gridWidth) grid"
        let t = MaskCollator.smallestBlock(scale: predMaskScale, aspect: aspectRatio, gridHeight: gridHeight,
                                           gridWidth: gridWidth, fixed: fixed)
        if t.h * t.w <= minKeep {
            try fail("""
                the smallest target block is \(t.h)x\(t.w) = \(t.h * t.w) patches (pred_mask_scale \(predMaskScale), \
                aspect_ratio \(aspectRatio), \(grid), at r = \(t.r)), not more than min_keep = \(minKeep): the \
                official sampler would loop forever (issue #68). Lower min_keep to at most \(max(t.h * t.w - 1, 0)) or \
                raise pred_mask_scale.
                """)
        }
        let e = MaskCollator.smallestBlock(scale: encMaskScale, aspect: [1, 1], gridHeight: gridHeight,
                                           gridWidth: gridWidth, fixed: fixed)
        if e.h * e.w <= minKeep {
            try fail("""
                the smallest context block is \(e.h)x\(e.w) = \(e.h * e.w) patches (enc_mask_scale \(encMaskScale), \
                \(grid), at r = \(e.r)), not more than min_keep = \(minKeep): even with every target region \
                dropped the context sampler would loop forever. Lower min_keep to at most \(max(e.h * e.w - 1, 0)) or \
                raise enc_mask_scale.
                """)
        }
    }
}

public struct MaskConfigError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// The masks of one batch, as the official collator returns them: `context` num_enc_masks masks of (B, Kc), `targets`
/// num_pred_masks masks of (B, Kp); every row ascending raster indices (i * W + j), unique, in 0..<H*W.
package struct MaskBatch: Sendable {
    package var context: [TokenIndices]
    package var targets: [TokenIndices]
    /// The block sizes this batch drew (shared by all images).
    package var targetBlock: (h: Int, w: Int)
    package var contextBlock: (h: Int, w: Int)
    /// How many context masks of the batch needed the relaxation loop (dropped at least one target region,
    /// so they may overlap a target). Rare at the published settings.
    package var relaxedContexts: Int
}

/// The multi-block mask collator (official `src/masks/multiblock.py`). All randomness comes from
/// `RandomGenerator(seed: seed).stream(.masks, step)`: block sizes from `.derived(0)` (as the official code seeds its
/// size generator with the call counter), positions of image b from `.derived(1, b)`, the random trimming of
/// `fixed` mode from `.derived(2, b, m)` (context m) and `.derived(3, b, m)` (target m). So the masks of a step
/// are a pure function of (config, seed, step, batch), and the untrimmed masks of image b do not depend on B.
package struct MaskCollator: Sendable {
    package let config: MaskConfig
    /// The patch grid the masks index: input height and width over the patch size.
    package let gridHeight: Int
    package let gridWidth: Int

    /// A collator on a grid of `gridHeight` x `gridWidth` patches; refuses settings `validate` refuses.
    package init(_ config: MaskConfig, gridHeight: Int, gridWidth: Int) throws {
        try config.validate(gridHeight: gridHeight, gridWidth: gridWidth)
        (self.config, self.gridHeight, self.gridWidth) = (config, gridHeight, gridWidth)
    }

    /// A collator for square images of `inputSize` pixels (official `input_size`): the grid is
    /// `inputSize / config.patchSize` on each side, which must divide evenly.
    package init(_ config: MaskConfig, inputSize: Int) throws {
        guard config.patchSize >= 1, inputSize >= config.patchSize, inputSize % config.patchSize == 0 else {
            throw MaskConfigError(message: "mask: the input size \(inputSize) must be a positive multiple of patch_size \(config.patchSize)")
        }
        try self.init(config, gridHeight: inputSize / config.patchSize, gridWidth: inputSize / config.patchSize)
    }

    /// `_sample_block_size`: s = lo + r (hi - lo), a = alo + r (ahi - alo) with the same r; max_keep = int(H W s);
    /// h = round-half-even(sqrt(max_keep a)), w = round-half-even(sqrt(max_keep / a)); then clamp
    /// `while h >= H: h -= 1` (fixed: `while h > H`), likewise w.
    package static func blockSize(
        r: Double, scale: [Double], aspect: [Double], gridHeight: Int, gridWidth: Int, fixed: Bool
    ) -> (h: Int, w: Int) {
        func toInt(_ x: Double) -> Int { x.isFinite ? Int(min(max(x, -1e15), 1e15)) : 0 }
        let s = scale[0] + r * (scale[1] - scale[0])
        let maxKeep = toInt(Double(gridHeight * gridWidth) * s)
        let a = aspect[0] + r * (aspect[1] - aspect[0])
        var h = toInt((Double(maxKeep) * a).squareRoot().rounded(.toNearestOrEven))
        var w = toInt((Double(maxKeep) / a).squareRoot().rounded(.toNearestOrEven))
        let hMax = fixed ? gridHeight : gridHeight - 1, wMax = fixed ? gridWidth : gridWidth - 1
        if h > hMax { h = hMax }
        if w > wMax { w = wMax }
        return (h, w)
    }

    /// The block of smallest area `blockSize` gives over r in [0, 1), with an r that gives it. The size is
    /// piecewise constant in r; it changes only where max_keep steps (H W s crosses an integer) or where
    /// sqrt(max_keep a) or sqrt(max_keep / a) crosses a half-integer. Every such r is listed; the size is
    /// evaluated at each, at its neighbouring Doubles and between consecutive ones, which covers every piece.
    static func smallestBlock(
        scale: [Double], aspect: [Double], gridHeight: Int, gridWidth: Int, fixed: Bool
    ) -> (h: Int, w: Int, r: Double) {
        let hw = Double(gridHeight * gridWidth)
        let ds = scale[1] - scale[0], da = aspect[1] - aspect[0]
        var cuts: [Double] = [0, (1.0).nextDown]
        let kLo = max(Int(hw * min(scale[0], scale[1])) - 1, 0), kHi = Int(hw * max(scale[0], scale[1])) + 1
        if ds != 0 {
            for k in kLo...kHi { cuts.append((Double(k) / hw - scale[0]) / ds) }
        }
        if da != 0 {
            let aLo = min(aspect[0], aspect[1]), aHi = max(aspect[0], aspect[1])
            for k in max(kLo, 1)...kHi {
                let kd = Double(k)
                // Heights above the grid are clamped to it, so crossings past gridHeight (widths: gridWidth)
                // change nothing: the loops stop there, whatever the aspect range.
                for m in 0...min(Int(min((kd * aHi).squareRoot(), 1e9)) + 1, gridHeight + 1) {
                    let a = (Double(m) + 0.5) * (Double(m) + 0.5) / kd
                    if a >= aLo && a <= aHi { cuts.append((a - aspect[0]) / da) }
                }
                for m in 0...min(Int(min((kd / aLo).squareRoot(), 1e9)) + 1, gridWidth + 1) {
                    let a = kd / ((Double(m) + 0.5) * (Double(m) + 0.5))
                    if a >= aLo && a <= aHi { cuts.append((a - aspect[0]) / da) }
                }
            }
        }
        cuts = cuts.filter { $0 >= 0 && $0 < 1 }.sorted()
        var best = (h: Int.max, w: 1, r: 0.0)
        func consider(_ r: Double) {
            guard r >= 0 && r < 1 else { return }
            let b = blockSize(r: r, scale: scale, aspect: aspect, gridHeight: gridHeight, gridWidth: gridWidth, fixed: fixed)
            if best.h == Int.max || b.h * b.w < best.h * best.w { best = (b.h, b.w, r) }
        }
        for (i, r) in cuts.enumerated() {
            consider(r); consider(r.nextDown); consider(r.nextUp)
            if i + 1 < cuts.count { consider((r + cuts[i + 1]) / 2) }
        }
        return best
    }

    /// The untrimmed masks of one image: num_pred_masks target blocks, then num_enc_masks contexts, each ascending raster indices;
    /// `relaxed` counts the contexts that needed to drop target regions.
    struct ImageMasks {
        var targets: [[Int32]]
        var contexts: [[Int32]]
        var relaxed: Int
    }

    /// Draws one image's masks (`_sample_block_mask` of `src/masks/multiblock.py`, per block).
    func sampleImage(
        targetBlock p: (h: Int, w: Int), contextBlock e: (h: Int, w: Int), rng: inout RandomGenerator,
        covered: inout [UInt8]
    ) -> ImageMasks {
        let c = config
        let H = gridHeight, W = gridWidth
        let slack = c.fixed ? 1 : 0  // official randint(0, H - h) excludes H - h
        var rects: [(top: Int, left: Int)] = []
        rects.reserveCapacity(c.numPredMasks)
        var targets: [[Int32]] = []
        targets.reserveCapacity(c.numPredMasks)
        for _ in 0..<c.numPredMasks {
            // No acceptable regions: accepted at once, since validate() ensures h w > minKeep.
            let top = rng.nextInt(below: H - p.h + slack), left = rng.nextInt(below: W - p.w + slack)
            rects.append((top, left))
            var idx = [Int32]()
            idx.reserveCapacity(p.h * p.w)
            for i in top..<top + p.h { for j in left..<left + p.w { idx.append(Int32(i * W + j)) } }
            targets.append(idx)
        }
        var contexts: [[Int32]] = []
        var relaxedCount = 0
        for _ in 0..<c.numEncMasks {
            var tries = 0, timeout = 20
            var regionsApplied = -1  // how many target regions `covered` currently marks
            while true {
                let top = rng.nextInt(below: H - e.h + slack), left = rng.nextInt(below: W - e.w + slack)
                let n = c.allowOverlap ? 0 : max(c.numPredMasks - tries, 0)
                if n != regionsApplied {
                    for k in covered.indices { covered[k] = 0 }
                    for r in rects.prefix(n) {
                        for i in r.top..<r.top + p.h { for j in r.left..<r.left + p.w { covered[i * W + j] = 1 } }
                    }
                    regionsApplied = n
                }
                var idx = [Int32]()
                idx.reserveCapacity(e.h * e.w)
                for i in top..<top + e.h {
                    for j in left..<left + e.w where covered[i * W + j] == 0 { idx.append(Int32(i * W + j)) }
                }
                if idx.count > c.minKeep {
                    if tries > 0 { relaxedCount += 1 }
                    contexts.append(idx)
                    break
                }
                timeout -= 1
                if timeout == 0 { tries += 1; timeout = 20 }
            }
        }
        return ImageMasks(targets: targets, contexts: contexts, relaxed: relaxedCount)
    }

    /// The untrimmed masks of a whole batch and the block sizes.
    func sampleUntrimmed(batch: Int, step: Int, seed: UInt64)
        -> (images: [ImageMasks], targetBlock: (h: Int, w: Int), contextBlock: (h: Int, w: Int))
    {
        let c = config
        let base = RandomGenerator(seed: seed).stream(.masks, UInt64(truncatingIfNeeded: step))
        var sizes = base.derived(0)
        let p = MaskCollator.blockSize(r: sizes.nextUniform(), scale: c.predMaskScale, aspect: c.aspectRatio,
                                       gridHeight: gridHeight, gridWidth: gridWidth, fixed: c.fixed)
        let e = MaskCollator.blockSize(r: sizes.nextUniform(), scale: c.encMaskScale, aspect: [1, 1],
                                       gridHeight: gridHeight, gridWidth: gridWidth, fixed: c.fixed)
        var covered = [UInt8](repeating: 0, count: gridHeight * gridWidth)
        var images: [ImageMasks] = []
        images.reserveCapacity(batch)
        for b in 0..<batch {
            var rng = base.derived(1, UInt64(b))
            images.append(sampleImage(targetBlock: p, contextBlock: e, rng: &rng, covered: &covered))
        }
        return (images, p, e)
    }

    /// Cuts `mask` to `k` indices: the first k (official) or, in fixed mode, a uniformly random subset of k kept
    /// in ascending order. Appends to `out`.
    static func trim(_ mask: [Int32], to k: Int, fixed: Bool, rng: () -> RandomGenerator, into out: inout [Int32]) {
        let n = mask.count
        if k >= n { out.append(contentsOf: mask); return }
        if !fixed { out.append(contentsOf: mask[0..<k]); return }
        // Partial Fisher-Yates over positions picks m = min(k, n - k) of them; keep those (m == k) or the rest.
        var g = rng()
        let m = min(k, n - k)
        var pos = Array(0..<n)
        var picked = [Bool](repeating: false, count: n)
        for i in 0..<m {
            pos.swapAt(i, i + g.nextInt(below: n - i))
            picked[pos[i]] = true
        }
        let keepPicked = m == k
        for i in 0..<n where picked[i] == keepPicked { out.append(mask[i]) }
    }

    /// Masks for the batch with global index `step`: a pure function of (config, seed, step, batch).
    package func sample(batch: Int, step: Int, seed: UInt64) -> MaskBatch {
        precondition(batch >= 0, "MaskCollator.sample: batch must be >= 0")
        let c = config
        let (images, p, e) = sampleUntrimmed(batch: batch, step: step, seed: seed)
        // One minimum over all masks of a kind (official min_keep_pred / min_keep_enc), H W when the batch is empty.
        var kp = gridHeight * gridWidth, kc = kp
        var relaxed = 0
        for im in images {
            for t in im.targets { kp = min(kp, t.count) }
            for m in im.contexts { kc = min(kc, m.count) }
            relaxed += im.relaxed
        }
        if batch == 0 { (kp, kc) = (0, 0) }
        let base = RandomGenerator(seed: seed).stream(.masks, UInt64(truncatingIfNeeded: step))
        func collate(_ count: Int, _ k: Int, key: UInt64, _ pick: (ImageMasks, Int) -> [Int32]) -> [TokenIndices] {
            (0..<count).map { m in
                var flat = [Int32]()
                flat.reserveCapacity(batch * k)
                for b in 0..<batch {
                    MaskCollator.trim(pick(images[b], m), to: k, fixed: c.fixed,
                                      rng: { base.derived(key, UInt64(b), UInt64(m)) }, into: &flat)
                }
                // Shapes hold by construction.
                return try! TokenIndices(batch: batch, count: k, indices: flat)
            }
        }
        let context = collate(c.numEncMasks, kc, key: 2) { $0.contexts[$1] }
        let targets = collate(c.numPredMasks, kp, key: 3) { $0.targets[$1] }
        return MaskBatch(context: context, targets: targets, targetBlock: p, contextBlock: e, relaxedContexts: relaxed)
    }
}
