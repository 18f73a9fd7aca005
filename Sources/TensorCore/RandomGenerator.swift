import CPUKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a random stream is for. Each purpose is a domain of its own: `stream(.dataOrder, e)` and
/// `stream(.masks, e)` are unrelated generators although both are keyed by e. The raw values are part of the
/// checkpoint format (changing one changes what a seed trains), so they are fixed here and never reordered.
package enum RandomPurpose: UInt64, Sendable, CaseIterable {
    /// The weights at initialisation (encoder, then predictor, in declaration order).
    case initialisation = 0x494E_4954
    /// The image order of epoch e: `stream(.dataOrder, e)`.
    case dataOrder = 0x4F52_4445
    /// The augmentation of image i in epoch e: `stream(.augmentation, e, i)`.
    case augmentation = 0x4155_474D
    /// The masks of training step t: `stream(.masks, t)`.
    case masks = 0x4D41_534B
    /// The probes' train (0) and test (1) subsets: `stream(.probeSubset, split)`.
    case probeSubset = 0x5355_4253
    /// The held-out tenth on which the probe's weight decay is chosen (fixed seed, not the run's).
    case probeValidation = 0x5641_4C44
    /// The held-out sixth of an image folder without a test folder (fixed seed, not the run's).
    case heldOutSplit = 0x484F_4C44
    /// The validation images carved from the train split for choosing between recipes (fixed seed).
    case validationSplit = 0x5645_5253
}

/// A seeded, counter-based random generator (Philox4x32-10, Salmon et al. 2011, as in PyTorch and JAX).
///
/// Every draw is a pure function of (seed, counter), so a fill of n values is cut into chunks and filled in
/// parallel with exactly the values a serial fill gives: the stream never depends on the thread count. The
/// whole state is two integers (`seed`, `offset`), so a checkpoint restores it exactly.
package struct RandomGenerator: Sendable, Equatable, Codable {
    package let seed: UInt64
    /// Number of 128-bit counter blocks consumed so far.
    package private(set) var offset: UInt64

    package init(seed: UInt64, offset: UInt64 = 0) {
        self.seed = seed
        self.offset = offset
    }

    /// The 4 x 32 random bits of counter block `block`.
    @inline(__always)
    package static func philox(seed: UInt64, block: UInt64) -> SIMD4<UInt32> {
        var c0 = UInt32(truncatingIfNeeded: block), c1 = UInt32(truncatingIfNeeded: block >> 32)
        var c2: UInt32 = 0, c3: UInt32 = 0
        var k0 = UInt32(truncatingIfNeeded: seed), k1 = UInt32(truncatingIfNeeded: seed >> 32)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let (hi0, lo0) = (UInt32(truncatingIfNeeded: p0 >> 32), UInt32(truncatingIfNeeded: p0))
            let (hi1, lo1) = (UInt32(truncatingIfNeeded: p1 >> 32), UInt32(truncatingIfNeeded: p1))
            c0 = hi1 ^ c1 ^ k0
            c1 = lo1
            c2 = hi0 ^ c3 ^ k1
            c3 = lo0
            k0 &+= 0x9E37_79B9
            k1 &+= 0xBB67_AE85
        }
        return SIMD4(c0, c1, c2, c3)
    }

    /// Uniform in [0, 1) from the top 24 bits.
    @inline(__always) static func unit(_ u: UInt32) -> Float { Float(u >> 8) * 0x1p-24 }
    /// Uniform in (0, 1]: safe for log.
    @inline(__always) static func unitOpen(_ u: UInt32) -> Double { (Double(u >> 8) + 1) * 0x1p-24 }

    /// Fills `count` values, value i from counter block offset + i / 4, lane i % 4; advances the offset.
    mutating func fill(
        _ out: UnsafeMutablePointer<Float>, count: Int, threads: Int?,
        _ transform: (SIMD4<UInt32>, Int) -> Float
    ) {
        let base = offset
        let seed = self.seed
        let blocks = (count + 3) / 4
        let (chunks, size) = Parallel.chunking(count: blocks, minChunk: 4096, maxChunks: 16)
        Parallel.forEach(tasks: chunks, threads: threads ?? Parallel.hardwareThreads) { c, _ in
            for b in c * size..<min(blocks, (c + 1) * size) {
                let bits = RandomGenerator.philox(seed: seed, block: base &+ UInt64(b))
                for lane in 0..<4 where b * 4 + lane < count {
                    out[b * 4 + lane] = transform(bits, lane)
                }
            }
        }
        offset &+= UInt64(blocks)
    }

    // MARK: Scalars and derived streams (data order, augmentation, masks)

    /// One uniform Double in [0, 1) with 53 random bits; consumes one counter block.
    package mutating func nextUniform() -> Double {
        let b = RandomGenerator.philox(seed: seed, block: offset)
        offset &+= 1
        let bits = (UInt64(b.x) << 32 | UInt64(b.y)) >> 11
        return Double(bits) * 0x1p-53
    }

    /// A uniform integer in 0..<bound (bound > 0), by the multiply-high method on 64 bits (bias below 2^-32
    /// for any bound this project uses); consumes one counter block.
    package mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "nextInt(below:) needs a positive bound")
        let b = RandomGenerator.philox(seed: seed, block: offset)
        offset &+= 1
        let bits = UInt64(b.z) << 32 | UInt64(b.w)
        return Int(bits.multipliedFullWidth(by: UInt64(bound)).high)
    }

    /// A generator keyed by (this generator's seed, keys...), for sub-streams of one purpose: e.g. the masks of
    /// a step draw their block sizes from `derived(0)` and image b's positions from `derived(1, b)`.
    ///
    /// The seed is hashed first and each key then enters through its own hashing round, so the result depends
    /// on every input separately: `derived(k)` of seed s never equals `derived(k')` of seed s' unless
    /// (s, k) == (s', k') (up to a 2^-64 chance). (Until checkpoint format v2 the seed was XORed with the first
    /// key before hashing, so seed s with key k gave the stream of seed s ^ k with key 0.)
    package func derived(_ keys: UInt64...) -> RandomGenerator {
        RandomGenerator(seed: RandomGenerator.hash(seed, keys))
    }

    /// The stream of one purpose: `RandomGenerator(seed: s).stream(.masks, step)`. Every random draw of a
    /// training run goes through this, so no two purposes, seeds or indices share a stream (docs/training.md,
    /// "Random streams").
    package func stream(_ purpose: RandomPurpose, _ keys: UInt64...) -> RandomGenerator {
        RandomGenerator(seed: RandomGenerator.hash(seed, [purpose.rawValue] + keys))
    }

    /// splitmix64's finaliser: a bijection of UInt64 whose output bits each depend on every input bit.
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var h = x &+ 0x9E37_79B9_7F4A_7C15
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 31)
    }

    /// h = mix(seed), then h = mix(h ^ mix(k)) for each key in order.
    static func hash(_ seed: UInt64, _ keys: [UInt64]) -> UInt64 {
        var h = mix(seed)
        for k in keys { h = mix(h ^ mix(k ^ 0x6A09_E667_F3BC_C909)) }
        return h
    }

    /// Fisher-Yates shuffle of 0..<n drawn from this generator.
    package mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, nextInt(below: i + 1)) } }
        return p
    }

    /// Uniform values in [low, high).
    package mutating func fillUniform(
        _ out: UnsafeMutablePointer<Float>, count: Int, low: Float = 0, high: Float = 1, threads: Int? = nil
    ) {
        fill(out, count: count, threads: threads) { bits, lane in
            low + (high - low) * RandomGenerator.unit(bits[lane])
        }
    }

    /// Normal values N(mean, std^2), Box-Muller on lane pairs (0, 1) and (2, 3), computed in Double.
    package mutating func fillNormal(
        _ out: UnsafeMutablePointer<Float>, count: Int, mean: Float = 0, std: Float = 1, threads: Int? = nil
    ) {
        fill(out, count: count, threads: threads) { bits, lane in
            let pair = lane & ~1
            let r = (-2 * log(RandomGenerator.unitOpen(bits[pair]))).squareRoot()
            let theta = 2 * Double.pi * Double(bits[pair + 1] >> 8) * 0x1p-24
            let z = lane & 1 == 0 ? r * cos(theta) : r * sin(theta)
            return Float(Double(mean) + Double(std) * z)
        }
    }

    /// Truncated normal as the official `trunc_normal_` (src/utils/tensors.py) draws it: uniform on
    /// [2 Phi(a') - 1, 2 Phi(b') - 1] (a', b' the standardised bounds), inverse erf, scale by std sqrt 2, shift by
    /// the mean, clamp to [a, b]. The bounds are absolute values, as in the official code.
    package mutating func fillTruncatedNormal(
        _ out: UnsafeMutablePointer<Float>, count: Int, mean: Float = 0, std: Float = 1,
        a: Float = -2, b: Float = 2, threads: Int? = nil
    ) {
        precondition(std > 0 && a < b, "fillTruncatedNormal: needs std > 0 and a < b (got std \(std), a \(a), b \(b))")
        func cdf(_ x: Double) -> Double { (1 + erf(x / 2.0.squareRoot())) / 2 }
        let l = cdf((Double(a) - Double(mean)) / Double(std))
        let u = cdf((Double(b) - Double(mean)) / Double(std))
        let lo = 2 * l - 1, hi = 2 * u - 1
        fill(out, count: count, threads: threads) { bits, lane in
            let p = lo + (hi - lo) * Double(bits[lane] >> 8) * 0x1p-24
            let z = inverseErf(p) * Double(std) * 2.0.squareRoot() + Double(mean)
            return Float(min(max(z, Double(a)), Double(b)))
        }
    }

    /// A tensor of uniform values in [low, high).
    package mutating func uniform(_ shape: [Int], low: Float = 0, high: Float = 1) throws -> Tensor {
        var t = try Tensor(zeros: shape)
        t.withUnsafeMutableBufferPointer { fillUniform($0.baseAddress!, count: $0.count, low: low, high: high) }
        return t
    }

    /// A tensor of N(mean, std^2) values.
    package mutating func normal(_ shape: [Int], mean: Float = 0, std: Float = 1) throws -> Tensor {
        var t = try Tensor(zeros: shape)
        t.withUnsafeMutableBufferPointer { fillNormal($0.baseAddress!, count: $0.count, mean: mean, std: std) }
        return t
    }

    /// A tensor drawn as the official `trunc_normal_(std=...)`, bounds absolute.
    package mutating func truncatedNormal(
        _ shape: [Int], mean: Float = 0, std: Float = 1, a: Float = -2, b: Float = 2
    ) throws -> Tensor {
        var t = try Tensor(zeros: shape)
        t.withUnsafeMutableBufferPointer {
            fillTruncatedNormal($0.baseAddress!, count: $0.count, mean: mean, std: std, a: a, b: b)
        }
        return t
    }
}

/// Inverse error function on (-1, 1), Double: Giles' single-precision approximation (2010) refined by two
/// Newton steps on erf, which brings it to a few ulps of Double.
package func inverseErf(_ p: Double) -> Double {
    if p <= -1 { return -.infinity }
    if p >= 1 { return .infinity }
    var w = -log((1 - p) * (1 + p))
    var x: Double
    if w < 5 {
        w -= 2.5
        var q = 2.81022636e-08
        q = 3.43273939e-07 + q * w; q = -3.5233877e-06 + q * w; q = -4.39150654e-06 + q * w
        q = 0.00021858087 + q * w; q = -0.00125372503 + q * w; q = -0.00417768164 + q * w
        q = 0.246640727 + q * w; q = 1.50140941 + q * w
        x = q * p
    } else {
        w = w.squareRoot() - 3
        var q = -0.000200214257
        q = 0.000100950558 + q * w; q = 0.00134934322 + q * w; q = -0.00367342844 + q * w
        q = 0.00573950773 + q * w; q = -0.0076224613 + q * w; q = 0.00943887047 + q * w
        q = 1.00167406 + q * w; q = 2.83297682 + q * w
        x = q * p
    }
    for _ in 0..<2 {
        let err = erf(x) - p
        x -= err / (2 / Double.pi.squareRoot() * exp(-x * x))
    }
    return x
}
