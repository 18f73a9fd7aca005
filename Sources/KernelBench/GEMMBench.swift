@_spi(Tuning) import CPUKernels

/// One GEMM shape of the suite, named after where it occurs in a ViT.
package struct GEMMCase: Sendable {
    package var name: String
    package var m: Int, n: Int, k: Int
    package var transA: Bool, transB: Bool
    /// op(B) packed once ahead of the timed calls (`PackedWeight`), as the Encoder's Linear weights.
    package var packedB: Bool
    /// With `packedB`: how many packed copies of op(B) the calls use in turn (each call the next), so that a
    /// copy comes from L3 or memory as a model's per-layer weights do in an embedding, not from L2.
    package var packedCopies: Int

    package init(_ name: String, m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false, packedB: Bool = false,
                 packedCopies: Int = 1) {
        (self.name, self.m, self.n, self.k, self.transA, self.transB) = (name, m, n, k, transA, transB)
        (self.packedB, self.packedCopies) = (packedB, packedCopies)
    }
}

package enum GEMMSuite {
    /// A Linear layer y = x W^T with W stored [out, in] (PyTorch's layout, which our checkpoints keep) gives three
    /// GEMMs per training step: forward (NT), input gradient dX = dY W (NN), weight gradient dW = dY^T X (TN).
    package static func linear(_ prefix: String, rows: Int, inFeatures: Int, outFeatures: Int) -> [GEMMCase] {
        [
            GEMMCase(prefix, m: rows, n: outFeatures, k: inFeatures, transB: true),
            GEMMCase(prefix + ".dgrad", m: rows, n: inFeatures, k: outFeatures),
            GEMMCase(prefix + ".wgrad", m: outFeatures, n: inFeatures, k: rows, transA: true),
        ]
    }

    /// The transformer-block GEMMs of a ViT of width d, MLP width 4d, over `rows` tokens.
    package static func vit(_ name: String, d: Int, rows: Int) -> [GEMMCase] {
        linear("\(name).qkv", rows: rows, inFeatures: d, outFeatures: 3 * d)
            + linear("\(name).proj", rows: rows, inFeatures: d, outFeatures: d)
            + linear("\(name).fc1", rows: rows, inFeatures: d, outFeatures: 4 * d)
            + linear("\(name).fc2", rows: rows, inFeatures: 4 * d, outFeatures: d)
    }

    /// ViT-Tiny (D 192, 64 tokens x batch 64), ViT-S/16 (D 384, 196 tokens x batch 16), the I-JEPA shapes of the
    /// default Fashion-MNIST model (predictor: width 96 over 64 images x 4 targets x ~21 tokens; context
    /// encoder: D 192 over 64 images x ~11 context tokens), and square anchors.
    package static var standard: [GEMMCase] {
        vit("vit-tiny", d: 192, rows: 64 * 64) + vit("vit-s16", d: 384, rows: 196 * 16)
            + vit("ijepa-pred", d: 96, rows: 256 * 21) + vit("ijepa-ctx", d: 192, rows: 64 * 11) + [
            GEMMCase("square512", m: 512, n: 512, k: 512),
            GEMMCase("square1024", m: 1024, n: 1024, k: 1024),
            GEMMCase("square2048", m: 2048, n: 2048, k: 2048),
        ]
    }
}

/// One measured benchmark, as printed in the JSON lines.
package struct BenchResult: Sendable {
    package var name: String
    package var kind: String
    package var threads: Int
    package var medianMs: Double
    package var bestMs: Double
    package var gflops: Double
    package var pctPeak: Double
    package var gbPerSecond: Double
    /// Max error of the validated sample relative to the GEMM error bound K eps sum|a||b| (<= 1 passes).
    package var validationError: Double
    package var extra: [(String, JSONValue)]
}

/// A GEMM case's operands (deterministic values) and C, and the call that computes C (beta 0).
final class GEMMOperands {
    let c: GEMMCase
    let lda: Int, ldb: Int
    let a: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>
    /// With `c.packedB`: `c.packedCopies` copies of op(B) packed for each KC a run has used (an A/B comparison
    /// may use two), and the copy the next call uses.
    private var packed: [Int: [PackedWeight]] = [:]
    private var nextCopy = 0

    init(_ c: GEMMCase, seed: UInt64 = 1) {
        self.c = c
        (lda, ldb) = (c.transA ? c.m : c.k, c.transB ? c.k : c.n)
        a = .allocate(capacity: c.m * c.k)
        b = .allocate(capacity: c.k * c.n)
        out = .allocate(capacity: c.m * c.n)
        var state = seed
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state) >> 40) * 0x1p-23
        }
        for i in 0..<c.m * c.k { a[i] = next() }
        for i in 0..<c.k * c.n { b[i] = next() }
        out.initialize(repeating: .nan, count: c.m * c.n)  // beta == 0 must not read C
    }

    deinit { a.deallocate(); b.deallocate(); out.deallocate() }

    func run(_ context: KernelContext) {
        var operand: GEMMPackedB?
        if c.packedB {
            let kc = context.blocking.kc
            if packed[kc] == nil {
                packed[kc] = (0..<c.packedCopies).map { _ in
                    PackedWeight(b: b, ldb: ldb, transB: c.transB, k: c.k, n: c.n, kc: kc)
                }
            }
            operand = packed[kc]![nextCopy % c.packedCopies].operand
            nextCopy += 1
        }
        withExtendedLifetime(packed) {
            sgemm(c: out, ldc: c.n, a: a, lda: lda, transA: c.transA, b: b, ldb: ldb, transB: c.transB,
                  m: c.m, n: c.n, k: c.k, packedB: operand, context: context)
        }
    }

    /// Max error of 256 sampled elements of C relative to the GEMM bound k eps sum |a b| (<= 2 passes).
    func validationError() -> Double {
        let (m, n, k) = (c.m, c.n, c.k)
        var worst = 0.0
        for s in 0..<256 {
            let i = (s &* 7919 &+ 13) % m, j = (s &* 104_729 &+ 7) % n
            var ref = 0.0, mag = 0.0
            for p in 0..<k {
                let av = Double(c.transA ? a[p * lda + i] : a[i * lda + p])
                let bv = Double(c.transB ? b[j * ldb + p] : b[p * ldb + j])
                ref += av * bv
                mag += abs(av * bv)
            }
            let bound = Double(k) * Double(Float.ulpOfOne) * mag + 1e-30
            worst = max(worst, abs(Double(out[i * n + j]) - ref) / bound)
            if out[i * n + j].isNaN { worst = .infinity }
        }
        return worst
    }
}

/// Validates a sample of C against Double dot products, then times the GEMM.
package func benchmarkGEMM(
    _ c: GEMMCase, threads: Int, peakPerCore: Double, minSeconds: Double = 0.3, seed: UInt64 = 1
) -> BenchResult {
    let (m, n, k) = (c.m, c.n, c.k)
    let ops = GEMMOperands(c, seed: seed)
    let context = KernelContext(threads: threads)
    let run = { ops.run(context) }
    run()
    let worst = ops.validationError()
    let cost = KernelCost.gemm(m: m, n: n, k: k)
    let stats = worst <= 2 ? measure(minSeconds: minSeconds, run) : TimingStats(samples: [.nan])
    let gflops = cost.flops / stats.median / 1e9
    return BenchResult(
        name: c.name, kind: "gemm", threads: threads, medianMs: stats.median * 1e3, bestMs: stats.best * 1e3,
        gflops: gflops, pctPeak: 100 * gflops / (peakPerCore * Double(threads)),
        gbPerSecond: cost.bytes / stats.median / 1e9, validationError: worst,
        extra: [("m", .int(m)), ("n", .int(n)), ("k", .int(k)), ("transA", .bool(c.transA)), ("transB", .bool(c.transB)),
                ("packedB", .bool(c.packedB)), ("bestGflops", .double(cost.flops / stats.best / 1e9))])
}

/// `bench gemm --ab`: the current blocking (A) against `variant` (B) on one case, in one process, in
/// alternating single runs (A B, then B A, ...), so that the shared machine's drift hits both alike; each
/// side is validated first. Medians in ms, and B's speed over A's (> 1: the variant is faster).
package func abBlockingGEMM(_ c: GEMMCase, threads: Int, variant: GEMMBlocking.Tuning, rounds: Int) -> BenchResult {
    let ops = GEMMOperands(c)
    let defaults = KernelContext(threads: threads)
    var other = defaults
    other.blocking = variant
    var times: [[Double]] = [[], []]
    var worst = 0.0
    for side in 0..<2 {
        ops.run(side == 0 ? defaults : other)  // warm-up
        worst = max(worst, ops.validationError())
    }
    for r in 0..<max(1, rounds) {
        for side in r % 2 == 0 ? [0, 1] : [1, 0] {
            let context = side == 0 ? defaults : other
            let t0 = monotonicSeconds()
            ops.run(context)
            times[side].append(monotonicSeconds() - t0)
        }
    }
    let a = TimingStats(samples: times[0].sorted()), b = TimingStats(samples: times[1].sorted())
    let flops = KernelCost.gemm(m: c.m, n: c.n, k: c.k).flops
    return BenchResult(
        name: c.name, kind: "gemm-ab", threads: threads, medianMs: a.median * 1e3, bestMs: a.best * 1e3,
        gflops: flops / a.median / 1e9, pctPeak: 0, gbPerSecond: 0, validationError: worst,
        extra: [("variantMedianMs", .double(b.median * 1e3)), ("variantGflops", .double(flops / b.median / 1e9)),
                ("variantSpeedup", .double(a.median / b.median)),
                ("variant", .string(variant.description))])
}
