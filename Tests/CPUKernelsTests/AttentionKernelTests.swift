import XCTest
@testable import CPUKernels

/// The fused attention head against a Double reference (forward), against central differences (backward),
/// and `smallGEMM` against the packed `sgemm` bit for bit, on awkward shapes: n and dh of 1, primes, and
/// values on both sides of the 4-row and 16-column register tile.
final class AttentionKernelTests: XCTestCase {
    let shapes = [(1, 1), (1, 8), (2, 3), (5, 16), (7, 17), (13, 32), (21, 32), (49, 64), (50, 12), (70, 24)]

    /// Q, K, V interleaved in rows of stride 3 dh + 5 (as in the qkv activation, plus padding) to exercise `ld`.
    func layout(_ q: [Float], _ k: [Float], _ v: [Float], n: Int, dh: Int) -> (buffer: [Float], ld: Int) {
        let ld = 3 * dh + 5
        var x = [Float](repeating: .nan, count: n * ld)
        for i in 0..<n {
            for t in 0..<dh {
                x[i * ld + t] = q[i * dh + t]; x[i * ld + dh + t] = k[i * dh + t]; x[i * ld + 2 * dh + t] = v[i * dh + t]
            }
        }
        return (x, ld)
    }

    func forward(_ q: [Float], _ k: [Float], _ v: [Float], n: Int, dh: Int, scale: Float) -> (out: [Float], probs: [Float]) {
        let (x, ld) = layout(q, k, v, n: n, dh: dh)
        var out = [Float](repeating: .nan, count: n * dh), probs = [Float](repeating: .nan, count: n * n)
        var scratch = [Float](repeating: .nan, count: attentionHeadScratch(n: n, dh: dh, backward: false))
        x.withUnsafeBufferPointer { xp in
            let b = xp.baseAddress!
            attentionHeadForward(out: &out, ldo: dh, probs: &probs, q: b, k: b + dh, v: b + 2 * dh, ld: ld,
                                 n: n, dh: dh, scale: scale, scratch: &scratch)
        }
        return (out, probs)
    }

    func testForwardMatchesDoubleReference() {
        var rng = TestRNG(11)
        for (n, dh) in shapes {
            let q = rng.floats(n * dh, scale: 2), k = rng.floats(n * dh, scale: 2), v = rng.floats(n * dh)
            let scale = 1 / Float(dh).squareRoot()
            let (out, probs) = forward(q, k, v, n: n, dh: dh, scale: scale)
            let ref = attentionHeadReference(q: q, k: k, v: v, n: n, dh: dh, scale: scale)
            var worstP = 0.0, worstO = 0.0
            for i in probs.indices { worstP = max(worstP, abs(Double(probs[i]) - Double(ref.probs[i]))) }
            for i in out.indices { worstO = max(worstO, abs(Double(out[i]) - Double(ref.out[i]))) }
            XCTAssertLessThan(worstP, 2e-6, "probabilities (n \(n), dh \(dh))")
            XCTAssertLessThan(worstO, 4e-6, "output (n \(n), dh \(dh))")
            for i in 0..<n {
                let rowSum = (0..<n).reduce(0.0) { $0 + Double(probs[i * n + $1]) }
                XCTAssertEqual(rowSum, 1, accuracy: 1e-5, "row \(i) of P sums to 1 (n \(n), dh \(dh))")
            }
        }
    }

    func testBackwardMatchesFiniteDifferences() {
        var rng = TestRNG(12)
        for (n, dh) in [(1, 1), (2, 3), (5, 16), (7, 17), (13, 9)] {
            let q = rng.floats(n * dh), k = rng.floats(n * dh), v = rng.floats(n * dh)
            let w = rng.floats(n * dh)  // dOut: the loss is sum(w * O)
            let scale = 1 / Float(dh).squareRoot()
            let (x, ld) = layout(q, k, v, n: n, dh: dh)
            let (_, probs) = forward(q, k, v, n: n, dh: dh, scale: scale)
            // Gradients start from 1 and are accumulated into, to check `accumulate` too.
            var grads = [Float](repeating: 1, count: n * ld)
            var scratch = [Float](repeating: .nan, count: attentionHeadScratch(n: n, dh: dh, backward: true))
            x.withUnsafeBufferPointer { xp in
                grads.withUnsafeMutableBufferPointer { gp in
                    let b = xp.baseAddress!, g = gp.baseAddress!
                    attentionHeadBackward(dq: g, dk: g + dh, dv: g + 2 * dh, ldd: ld, accumulate: true,
                                          dOut: w, lddo: dh, probs: probs, q: b, k: b + dh, v: b + 2 * dh, ld: ld,
                                          n: n, dh: dh, scale: scale, scratch: &scratch)
                }
            }
            for (name, which) in [("dQ", 0), ("dK", 1), ("dV", 2)] {
                let analytic = (0..<n * dh).map { grads[($0 / dh) * ld + which * dh + $0 % dh] - 1 }
                let base = [q, k, v][which]
                checkGradient("attention \(name) (n \(n), dh \(dh))", x: base, weights: w, step: 1e-2, tolerance: 3e-3,
                              forward: { moved in
                                  var parts = [q, k, v]
                                  parts[which] = moved
                                  return self.forward(parts[0], parts[1], parts[2], n: n, dh: dh, scale: scale).out
                              }, analytic: analytic)
            }
        }
    }

    /// The batch functions in the qkv Linear's layout give, for every (batch, head), the bits of the per-head
    /// kernels on strided slices: with the rows copied first (short sequences) and without (per image above
    /// `attentionCopyMaxFloats`), backward written and accumulated, at 1, 2 and 3 threads. (16, 11, 3, 64), the
    /// context encoder's short heads, runs its copied images on several threads.
    func testBatchFunctionsEqualPerHeadKernelsBitForBit() {
        var rng = TestRNG(21)
        for (batch, n, heads, dh) in [(5, 21, 3, 32), (3, 7, 2, 8), (2, 60, 3, 64), (2, 100, 8, 128), (16, 11, 3, 64)] {
            let d = heads * dh, per = n * 3 * d
            XCTAssertEqual(attentionPlan(batch: batch, n: n, heads: heads, dh: dh, context: KernelContext(threads: 1)).copiesRows, n < 100,
                           "case (\(batch), \(n)) meant to take the \(n < 100 ? "copy" : "gather") path at 1 thread")
            if batch == 16 {
                let plan = attentionPlan(batch: batch, n: n, heads: heads, dh: dh, context: KernelContext(threads: 3))
                XCTAssertTrue(plan.threads == 3 && plan.copiesRows, "\(plan): 48 short heads are worth several threads")
            }
            let qkv = rng.floats(batch * per, scale: 2), dOut = rng.floats(batch * n * d), prior = rng.floats(batch * per)
            let scale = 1 / Float(dh).squareRoot()
            var refOut = [Float](repeating: 0, count: batch * n * d), refP = [Float](repeating: 0, count: batch * heads * n * n)
            var refWritten = prior, refAdded = prior
            var scratch = [Float](repeating: 0, count: attentionHeadScratch(n: n, dh: dh, backward: true))
            for b in 0..<batch {
                for h in 0..<heads {
                    let o = b * per + h * dh, t = b * heads + h
                    qkv.withUnsafeBufferPointer { x in
                        let q = x.baseAddress! + o
                        refOut.withUnsafeMutableBufferPointer { out in
                            refP.withUnsafeMutableBufferPointer { p in
                                attentionHeadForward(out: out.baseAddress! + b * n * d + h * dh, ldo: d, probs: p.baseAddress! + t * n * n,
                                                     q: q, k: q + d, v: q + 2 * d, ld: 3 * d, n: n, dh: dh, scale: scale,
                                                     scratch: &scratch)
                            }
                        }
                        for accumulate in [false, true] {
                            func run(_ dx: UnsafeMutablePointer<Float>) {
                                attentionHeadBackward(dq: dx + o, dk: dx + o + d, dv: dx + o + 2 * d, ldd: 3 * d, accumulate: accumulate,
                                                      dOut: dOut.withUnsafeBufferPointer { $0.baseAddress! } + b * n * d + h * dh,
                                                      lddo: d, probs: refP.withUnsafeBufferPointer { $0.baseAddress! } + t * n * n,
                                                      q: q, k: q + d, v: q + 2 * d, ld: 3 * d, n: n, dh: dh, scale: scale, scratch: &scratch)
                            }
                            if accumulate { run(&refAdded) } else { run(&refWritten) }
                        }
                    }
                }
            }
            for threads in [1, 2, 3] {
                var out = [Float](repeating: .nan, count: batch * n * d), p = [Float](repeating: .nan, count: batch * heads * n * n)
                attentionForward(out: &out, probs: &p, qkv: qkv, batch: batch, n: n, heads: heads, dh: dh, scale: scale, context: KernelContext(threads: threads))
                let what = "(\(batch), \(n), \(heads), \(dh)) at \(threads) threads"
                XCTAssertEqual(out.map(\.bitPattern), refOut.map(\.bitPattern), "forward output \(what)")
                XCTAssertEqual(p.map(\.bitPattern), refP.map(\.bitPattern), "probabilities \(what)")
                for accumulate in [false, true] {
                    var dx = prior
                    attentionBackward(dqkv: &dx, accumulate: accumulate, dOut: dOut, probs: p, qkv: qkv, batch: batch, n: n,
                                      heads: heads, dh: dh, scale: scale, context: KernelContext(threads: threads))
                    XCTAssertEqual(dx.map(\.bitPattern), (accumulate ? refAdded : refWritten).map(\.bitPattern),
                                   "backward (accumulate \(accumulate)) \(what)")
                    // Without the kept probabilities: the backward pass recomputes them, to the same bits.
                    var recomputed = prior
                    attentionBackward(dqkv: &recomputed, accumulate: accumulate, dOut: dOut, probs: nil, qkv: qkv,
                                      batch: batch, n: n, heads: heads, dh: dh, scale: scale, context: KernelContext(threads: threads))
                    XCTAssertEqual(recomputed.map(\.bitPattern), (accumulate ? refAdded : refWritten).map(\.bitPattern),
                                   "backward with recomputed probabilities (accumulate \(accumulate)) \(what)")
                }
                var unkept = [Float](repeating: .nan, count: batch * n * d)
                attentionForward(out: &unkept, probs: nil, qkv: qkv, batch: batch, n: n, heads: heads, dh: dh, scale: scale,
                                 context: KernelContext(threads: threads))
                XCTAssertEqual(unkept.map(\.bitPattern), refOut.map(\.bitPattern), "forward output, probabilities not kept, \(what)")
            }
        }
    }

    func testSmallGEMMEqualsPackedGEMMBitForBit() {
        var rng = TestRNG(13)
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (4, 16, 32), (5, 17, 33), (6, 8, 3), (7, 9, 5), (13, 24, 11), (21, 21, 32),
                          (49, 64, 49), (49, 49, 64), (64, 64, 64), (9, 31, 200)] {
            for transA in [false, true] {
                let a = rng.floats(m * k), bRows = rng.floats(k * n)
                let ldb = paddedTo16(n)
                var bPadded = [Float](repeating: 0, count: k * ldb)
                for t in 0..<k { for j in 0..<n { bPadded[t * ldb + j] = bRows[t * n + j] } }
                for accumulate in [false, true] {
                    let c0 = rng.floats(m * n)
                    var small = c0, packed = c0
                    // A stored (m, k) row-major, or (k, m) read transposed through the strides.
                    smallGEMM(c: &small, ldc: n, a: a, rowStride: transA ? 1 : k, colStride: transA ? m : 1,
                              b: bPadded, ldb: ldb, m: m, n: n, k: k, alpha: 0.375, accumulate: accumulate)
                    sgemm(c: &packed, ldc: n, a: a, lda: transA ? m : k, transA: transA, b: bRows, ldb: n, transB: false,
                          m: m, n: n, k: k, alpha: 0.375, beta: accumulate ? 1 : 0, context: KernelContext(threads: 1))
                    XCTAssertEqual(small, packed, "smallGEMM (\(m), \(n), \(k)) transA \(transA) accumulate \(accumulate)")
                }
            }
        }
    }
}
