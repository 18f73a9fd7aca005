import XCTest
@_spi(Tuning) @testable import CPUKernels

final class GEMMTests: XCTestCase {
    /// Runs sgemm and the Double reference on the same inputs; checks |C - ref| <= tol * K * eps * magnitude,
    /// where magnitude = |alpha| sum |a||b| + |beta c0| per element (the classic GEMM forward error bound).
    func check(
        m: Int, n: Int, k: Int, transA: Bool, transB: Bool, alpha: Float = 1, beta: Float = 0,
        pad: Int = 0, threads: Int = 1, nanC: Bool = false, seed: UInt64 = 1,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        var rng = TestRNG(seed)
        let lda = (transA ? m : k) + pad, ldb = (transB ? k : n) + pad, ldc = n + pad
        let a = rng.floats(max(1, (transA ? k : m) * lda))
        let b = rng.floats(max(1, (transB ? n : k) * ldb))
        let c0 = nanC ? [Float](repeating: .nan, count: max(1, m * ldc)) : rng.floats(max(1, m * ldc))
        var c = c0, ref = c0
        var mag = [Double](repeating: 0, count: max(1, m * ldc))
        sgemm(c: &c, ldc: ldc, a: a, lda: lda, transA: transA, b: b, ldb: ldb, transB: transB,
              m: m, n: n, k: k, alpha: alpha, beta: beta, context: KernelContext(threads: threads))
        sgemmReference(c: &ref, ldc: ldc, a: a, lda: lda, transA: transA, b: b, ldb: ldb, transB: transB,
                       m: m, n: n, k: k, alpha: alpha, beta: beta)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += abs(Double(av) * Double(bv))
                }
                mag[i * ldc + j] = abs(Double(alpha)) * s + (beta == 0 ? 0 : abs(Double(beta) * Double(c0[i * ldc + j])))
            }
        }
        let eps = Double(Float.ulpOfOne)
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                let idx = i * ldc + j
                let err = abs(Double(c[idx]) - Double(ref[idx]))
                let bound = Double(max(k, 1)) * eps * mag[idx] + Double(Float.leastNormalMagnitude)
                worst = max(worst, err / bound)
                if !(err <= 2 * bound) {
                    XCTFail("m \(m) n \(n) k \(k) tA \(transA) tB \(transB) alpha \(alpha) beta \(beta): C[\(i),\(j)] = \(c[idx]), reference \(ref[idx])",
                            file: file, line: line)
                    return
                }
            }
            // Padding columns are never written.
            for j in n..<ldc where m > 0 {
                let idx = i * ldc + j
                XCTAssert(c[idx].bitPattern == c0[idx].bitPattern, "padding C[\(i),\(j)] was written", file: file, line: line)
            }
        }
        _ = worst
    }

    func testAwkwardShapesAllTransposes() {
        let dims = [1, 2, 5, 7, 13, 17, 31]
        for transA in [false, true] {
            for transB in [false, true] {
                for m in dims {
                    for n in [1, 3, 16, 17, 33] {
                        for k in [1, 2, 7, 19] {
                            check(m: m, n: n, k: k, transA: transA, transB: transB)
                        }
                    }
                }
            }
        }
    }

    /// Shapes that cross every blocking boundary: MR 6, NR 16, KC, MC, NC 3072, the k-group size (2 KC blocks),
    /// from the current table, plus the boundaries of the previous one (KC 256, MC 144). (20, 3100, 2 KC + 5)
    /// has several k groups in each of two NC column blocks: each group's op(B) is packed while the previous
    /// group's tasks run, into the other buffer.
    func testShapesCrossingBlocking() {
        let (kc, mc, mct) = (GEMMBlocking.KC, GEMMBlocking.MC, GEMMBlocking.MCTransposedA)
        let shapes = [(mc + 1, 97, kc + 1), (6, 16, kc), (mc + 6, 48, 2 * kc + 1), (2 * mc + 1, 35, kc + 44),
                      (mct + 1, 40, 2 * kc + 3), (mct - 5, 17, kc + 1),
                      (145, 97, 257), (150, 48, 513), (289, 35, 300), (7, 2000, 600), (1, 1, 1000),
                      (5, 3100, 300), (13, 3073, 7), (20, 3100, 2 * kc + 5)]
        for (m, n, k) in shapes {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                check(m: m, n: n, k: k, transA: ta, transB: tb, threads: 2)
            }
        }
    }

    func testAlphaBetaAndLeadingDimensions() {
        for (alpha, beta) in [(Float(1), Float(0)), (-0.5, 0), (1, 1), (2, 0.7), (0.3, -1.5)] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                check(m: 37, n: 41, k: 29, transA: ta, transB: tb, alpha: alpha, beta: beta, pad: 3)
                check(m: 13, n: 70, k: 300, transA: ta, transB: tb, alpha: alpha, beta: beta, pad: 5, threads: 2)
            }
        }
    }

    /// beta == 0 must not read C: a NaN-prefilled C must come out clean.
    func testBetaZeroNeverReadsC() {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            check(m: 23, n: 45, k: 260, transA: ta, transB: tb, beta: 0, pad: 2, nanC: true)
            check(m: 150, n: 33, k: 7, transA: ta, transB: tb, alpha: 0.5, beta: 0, threads: 2, nanC: true)
        }
        // k == 0 and alpha == 0 reduce to C = beta * C; with beta 0 that is zeros, even over NaN.
        var c = [Float](repeating: .nan, count: 12)
        let a: [Float] = [1], b: [Float] = [1]
        sgemm(c: &c, ldc: 4, a: a, lda: 1, transA: false, b: b, ldb: 4, transB: false, m: 3, n: 4, k: 0, context: KernelContext())
        XCTAssertEqual(c, [Float](repeating: 0, count: 12))
        c = [Float](repeating: 2, count: 12)
        let a2 = [Float](repeating: .nan, count: 6), b2 = [Float](repeating: 1, count: 8)
        sgemm(c: &c, ldc: 4, a: a2, lda: 2, transA: false, b: b2, ldb: 4, transB: false, m: 3, n: 4, k: 2,
              alpha: 0, beta: 0.5, context: KernelContext())
        XCTAssertEqual(c, [Float](repeating: 1, count: 12), "alpha == 0 must not touch A or B")
    }

    /// The same bits for 1 and 2 threads (and for the task split chosen for either). The last three shapes have a
    /// small C and at least 4 KC blocks: on several threads they take the k split (`sgemmKSplit`), whose
    /// partial products are added in k order, with a k that is not a multiple of KC and an n that is not one of 8.
    /// A row of C has the same bits whichever register tile computed it: the last, partial row panel (AVX-512
    /// builds compute up to 4 rows with a 4-row body of the 12x32 tile) against the same rows inside full panels.
    func testEdgePanelRowsHaveTheFullPanelsBits() {
        let MR = GEMMBlocking.MR
        for (rows, k, n, fused) in [(4, 384, 64, false), (3, 700, 45, true), (2, 33, 32, true), (MR - 1, 384, 96, false), (1, 5, 7, false)] {
            var rng = TestRNG(5)
            let m = 2 * MR  // two full panels; the edge GEMM takes `rows` rows from the second
            let a = rng.floats(m * k), b = rng.floats(n * k), bias = rng.floats(n), residual = rng.floats(m * n)
            var full = [Float](repeating: 0, count: m * n), edge = [Float](repeating: 0, count: rows * n)
            let context = KernelContext(threads: 1)
            bias.withUnsafeBufferPointer { bp in
                residual.withUnsafeBufferPointer { rp in
                    sgemm(c: &full, ldc: n, a: a, lda: k, transA: false, b: b, ldb: k, transB: true, m: m, n: n, k: k,
                          bias: fused ? bp.baseAddress : nil, residual: fused ? rp.baseAddress : nil, context: context)
                    Array(a[MR * k..<(MR + rows) * k]).withUnsafeBufferPointer { ap in
                        sgemm(c: &edge, ldc: n, a: ap.baseAddress!, lda: k, transA: false, b: b, ldb: k, transB: true,
                              m: rows, n: n, k: k, bias: fused ? bp.baseAddress : nil,
                              residual: fused ? rp.baseAddress! + MR * n : nil, context: context)
                    }
                }
            }
            XCTAssertEqual(edge.map(\.bitPattern), full[MR * n..<(MR + rows) * n].map(\.bitPattern),
                           "rows \(rows), k \(k), n \(n), bias and residual \(fused)")
        }
    }

    func testThreadCountDoesNotChangeBits() {
        let split = GEMMBlocking.kSplitMinBlocks * GEMMBlocking.KC  // k from here on takes the k split (small C)
        for (m, n, k, ta, tb) in [(300, 200, 600, false, true), (768, 192, 1100, true, false), (97, 700, 300, false, false),
                                  (96, 96, 5376, true, false), (37, 21, split + 64, false, true), (290, 99, split + 44, true, true)] {
            var rng = TestRNG(42)
            let a = rng.floats(m * k), b = rng.floats(k * n)
            var c1 = [Float](repeating: 0, count: m * n), c2 = c1, c3 = c1
            let lda = ta ? m : k, ldb = tb ? k : n
            sgemm(c: &c1, ldc: n, a: a, lda: lda, transA: ta, b: b, ldb: ldb, transB: tb, m: m, n: n, k: k, context: KernelContext(threads: 1))
            sgemm(c: &c2, ldc: n, a: a, lda: lda, transA: ta, b: b, ldb: ldb, transB: tb, m: m, n: n, k: k, context: KernelContext(threads: 2))
            sgemm(c: &c3, ldc: n, a: a, lda: lda, transA: ta, b: b, ldb: ldb, transB: tb, m: m, n: n, k: k, context: KernelContext(threads: 7))
            XCTAssertEqual(c1.map(\.bitPattern), c2.map(\.bitPattern), "1 vs 2 threads differ for \(m)x\(n)x\(k)")
            XCTAssertEqual(c1.map(\.bitPattern), c3.map(\.bitPattern), "1 vs 7 threads differ for \(m)x\(n)x\(k)")
        }
    }

    /// op(B) packed ahead (`PackedWeight`, an inference weight) gives the bits of the GEMM that packs it itself,
    /// with B transposed (a Linear weight) or not, edge panels (n not a multiple of NR), a short last k block,
    /// several k groups, the k split (small C, long k, on 2 threads), more columns than NC (a group starting
    /// past the first panel), the bias / residual store and the GELU epilogue, on 1 and 2 threads.
    func testPackedBEqualsPackingPerCall() {
        let split = GEMMBlocking.kSplitMinBlocks * GEMMBlocking.KC + 70
        let cases: [(Int, Int, Int, Bool)] = [(1, 1, 1, true), (7, 17, 5, true), (196, 384, 384, true), (13, 45, 1000, false),
                                              (37, 21, split, true), (9, GEMMBlocking.NC + 77, 40, true), (300, 200, 2900, true)]
        for (m, n, k, tb) in cases {
            var rng = TestRNG(11)
            let a = rng.floats(m * k), b = rng.floats(k * n), bias = rng.floats(n), residual = rng.floats(m * n)
            let ldb = tb ? k : n
            let packed = PackedWeight(b: b, ldb: ldb, transB: tb, k: k, n: n)
            for threads in [1, 2] {
                for fused in [false, true] {
                    var own = [Float](repeating: 0, count: m * n), ahead = own
                    var hOwn = own, hAhead = own
                    let context = KernelContext(threads: threads)
                    bias.withUnsafeBufferPointer { bp in
                        residual.withUnsafeBufferPointer { rp in
                            hOwn.withUnsafeMutableBufferPointer { h1 in
                                hAhead.withUnsafeMutableBufferPointer { h2 in
                                    let bias = fused ? bp.baseAddress : nil, res = fused ? rp.baseAddress : nil
                                    sgemm(c: &own, ldc: n, a: a, lda: k, transA: false, b: b, ldb: ldb, transB: tb, m: m, n: n, k: k,
                                          bias: bias, residual: res, epilogue: fused ? .gelu(output: h1.baseAddress!) : nil,
                                          context: context)
                                    withExtendedLifetime(packed) {
                                        sgemm(c: &ahead, ldc: n, a: a, lda: k, transA: false, b: b, ldb: ldb, transB: tb, m: m, n: n,
                                              k: k, bias: bias, residual: res, epilogue: fused ? .gelu(output: h2.baseAddress!) : nil,
                                              packedB: packed.operand, context: context)
                                    }
                                }
                            }
                        }
                    }
                    XCTAssertEqual(own.map(\.bitPattern), ahead.map(\.bitPattern), "\(m)x\(n)x\(k) tB \(tb), \(threads) threads, fused \(fused)")
                    XCTAssertEqual(hOwn.map(\.bitPattern), hAhead.map(\.bitPattern), "GELU output, \(m)x\(n)x\(k)")
                }
            }
        }
    }

    /// MC and the C chunk (TILE) change speed only: the bits of any other values equal the built-in ones
    /// (`bench gemm --ab` relies on comparing like with like; KC, which sets the rounding points, is not varied).
    /// MC below 72 once overran the A buffers on several threads (the task plan's 12-panel floor exceeded MC).
    func testBlockingOtherThanKCDoesNotChangeBits() {
        for (m, n, k, ta, tb) in [(300, 200, 900, false, true), (97, 700, 300, true, false), (1, 1, 5, false, false)] {
            var rng = TestRNG(5)
            let a = rng.floats(m * k), b = rng.floats(k * n)
            let (lda, ldb) = (ta ? m : k, tb ? k : n)
            func product(mc: Int, tile: Int, threads: Int) -> [UInt32] {
                var context = KernelContext(threads: threads)
                context.blocking.mc = mc
                context.blocking.mcTransposedA = mc
                context.blocking.maxTileFloats = tile
                var c = [Float](repeating: 0, count: m * n)
                sgemm(c: &c, ldc: n, a: a, lda: lda, transA: ta, b: b, ldb: ldb, transB: tb, m: m, n: n, k: k, context: context)
                return c.map(\.bitPattern)
            }
            let reference = product(mc: GEMMBlocking.MC, tile: GEMMBlocking.maxTileFloats, threads: 1)
            for (mc, tile, threads) in [(6, 1 << 10, 1), (48, 1 << 12, 2), (96, 1 << 15, 2), (288, 1 << 16, 2), (384, 1 << 15, 1), (768, 1 << 15, 2)] {
                let got = product(mc: mc, tile: tile, threads: threads)
                let differing = zip(got, reference).filter { $0 != $1 }.count
                XCTAssertEqual(differing, 0, "\(m)x\(n)x\(k): MC \(mc), TILE \(tile), \(threads) threads: elements differ")
            }
        }
    }

    /// The bias epilogue gives the bits of a GEMM followed by a separate bias pass, for any thread count, with
    /// edge tiles, several k blocks and k groups (k > 4 KC), alpha/beta, NaN-filled C with beta 0, and
    /// alpha 0; and it is within the GEMM bound of the Double reference.
    /// The bias and the residual ride in the last k block's store; the result must have the bits of the GEMM
    /// followed by separate passes (bias, then the elementwise add of the residual), for any thread count.
    /// (97, 70, 4 KC + 164) goes through the k split on 2 and 5 threads.
    func testBiasAndResidualEpilogueEqualSeparatePasses() {
        let cases = [(1, 1, 1, false, true, Float(1), Float(0)), (7, 17, 5, false, true, 1, 0), (13, 33, 300, true, false, 0.5, 1),
                     (97, 70, GEMMBlocking.kSplitMinBlocks * GEMMBlocking.KC + 164, false, false, 1, 0.25), (300, 200, 600, false, true, 1, 0), (5, 9, 4, false, true, 0, 2)]
        for (m, n, k, ta, tb, alpha, beta) in cases {
            var rng = TestRNG(7)
            let a = rng.floats(m * k), b = rng.floats(k * n), bias = rng.floats(n, scale: 3)
            let residual = rng.floats(m * n, scale: 2)
            let c0 = beta == 0 ? [Float](repeating: .nan, count: m * n) : rng.floats(m * n)
            let lda = ta ? m : k, ldb = tb ? k : n
            for (useBias, useResidual) in [(true, false), (false, true), (true, true)] {
                var separate = c0
                sgemm(c: &separate, ldc: n, a: a, lda: lda, transA: ta, b: b, ldb: ldb, transB: tb, m: m, n: n, k: k,
                      alpha: alpha, beta: beta, context: KernelContext(threads: 1))
                if useBias { for i in 0..<m { for j in 0..<n { separate[i * n + j] += bias[j] } } }
                if useResidual { for i in 0..<m * n { separate[i] = residual[i] + separate[i] } }
                let what = "bias \(useBias) residual \(useResidual) (\(m), \(n), \(k)) alpha \(alpha) beta \(beta)"
                for threads in [1, 2, 5] {
                    var fused = c0
                    bias.withUnsafeBufferPointer { bp in
                        residual.withUnsafeBufferPointer { rp in
                            sgemm(c: &fused, ldc: n, a: a, lda: lda, transA: ta, b: b, ldb: ldb, transB: tb, m: m, n: n,
                                  k: k, alpha: alpha, beta: beta, bias: useBias ? bp.baseAddress : nil,
                                  residual: useResidual ? rp.baseAddress : nil, context: KernelContext(threads: threads))
                        }
                    }
                    XCTAssertEqual(fused.map(\.bitPattern), separate.map(\.bitPattern), "\(what), \(threads) threads")
                }
                var ref = c0
                bias.withUnsafeBufferPointer { bp in
                    residual.withUnsafeBufferPointer { rp in
                        sgemmReference(c: &ref, ldc: n, a: a, lda: lda, transA: ta, b: b, ldb: ldb, transB: tb, m: m, n: n,
                                       k: k, alpha: alpha, beta: beta, bias: useBias ? bp.baseAddress : nil,
                                       residual: useResidual ? rp.baseAddress : nil)
                    }
                }
                for i in 0..<m * n {
                    XCTAssertEqual(Double(separate[i]), Double(ref[i]), accuracy: Double(k + 4) * 1.2e-7 * (Double(k) + 4),
                                   "\(what): GEMM vs reference at \(i)")
                }
            }
        }
    }

    /// The GELU epilogues give the bits of the GEMM followed by the separate row kernel (GELU into another
    /// buffer or in place; GELU's derivative times the product), for any thread count, with edge tiles, several
    /// k groups, the k split ((97, 70, 4 KC + 164) on 2 and 5 threads), alpha/beta, and alpha 0.
    func testGELUEpiloguesEqualSeparatePasses() {
        let cases = [(1, 1, 1, false, true, Float(1), Float(0)), (7, 17, 5, false, true, 1, 0), (13, 33, 300, true, false, 0.5, 1),
                     (97, 70, GEMMBlocking.kSplitMinBlocks * GEMMBlocking.KC + 164, false, false, 1, 0), (300, 200, 600, false, true, 1, 0.25), (5, 9, 4, false, true, 0, 2),
                     (145, 48, 96, false, false, 1, 0)]
        for (m, n, k, ta, tb, alpha, beta) in cases {
            var rng = TestRNG(11)
            let a = rng.floats(m * k), b = rng.floats(k * n), bias = rng.floats(n)
            let x = rng.floats(m * n, scale: 3)  // GELU's input for the derivative: both erf branches
            let c0 = rng.floats(m * n)
            let lda = ta ? m : k, ldb = tb ? k : n
            var product = c0
            bias.withUnsafeBufferPointer { bp in
                sgemm(c: &product, ldc: n, a: a, lda: lda, transA: ta, b: b, ldb: ldb, transB: tb, m: m, n: n, k: k,
                      alpha: alpha, beta: beta, bias: bp.baseAddress, context: KernelContext(threads: 1))
            }
            var gelu = [Float](repeating: 0, count: m * n), derivative = [Float](repeating: 0, count: m * n)
            geluForward(&gelu, product, count: m * n, context: KernelContext(threads: 1))
            geluBackward(dx: &derivative, dy: product, x: x, count: m * n, accumulate: false, context: KernelContext(threads: 1))
            let what = "(\(m), \(n), \(k)) tA \(ta) tB \(tb) alpha \(alpha) beta \(beta)"
            for threads in [1, 2, 5] {
                var pre = c0, out = [Float](repeating: .nan, count: m * n), inPlace = c0, dx = c0
                bias.withUnsafeBufferPointer { bp in
                    out.withUnsafeMutableBufferPointer { op in
                        sgemm(c: &pre, ldc: n, a: a, lda: lda, transA: ta, b: b, ldb: ldb, transB: tb, m: m, n: n, k: k,
                              alpha: alpha, beta: beta, bias: bp.baseAddress, epilogue: .gelu(output: op.baseAddress!), context: KernelContext(threads: threads))
                    }
                    inPlace.withUnsafeMutableBufferPointer { ip in
                        sgemm(c: ip.baseAddress!, ldc: n, a: a, lda: lda, transA: ta, b: b, ldb: ldb, transB: tb, m: m, n: n, k: k,
                              alpha: alpha, beta: beta, bias: bp.baseAddress, epilogue: .gelu(output: ip.baseAddress!), context: KernelContext(threads: threads))
                    }
                    x.withUnsafeBufferPointer { xp in
                        sgemm(c: &dx, ldc: n, a: a, lda: lda, transA: ta, b: b, ldb: ldb, transB: tb, m: m, n: n, k: k,
                              alpha: alpha, beta: beta, bias: bp.baseAddress, epilogue: .geluBackward(x: xp.baseAddress!), context: KernelContext(threads: threads))
                    }
                }
                XCTAssertEqual(pre.map(\.bitPattern), product.map(\.bitPattern), "pre-activation kept, \(what), \(threads) threads")
                XCTAssertEqual(out.map(\.bitPattern), gelu.map(\.bitPattern), "GELU into output, \(what), \(threads) threads")
                XCTAssertEqual(inPlace.map(\.bitPattern), gelu.map(\.bitPattern), "GELU in place, \(what), \(threads) threads")
                XCTAssertEqual(dx.map(\.bitPattern), derivative.map(\.bitPattern), "GELU derivative, \(what), \(threads) threads")
            }
        }
    }

    func testArgumentProblemsAreNamed() {
        XCTAssertNil(gemmArgumentProblem(ldc: 4, lda: 3, transA: false, ldb: 4, transB: false, m: 2, n: 4, k: 3))
        let negative = gemmArgumentProblem(ldc: 4, lda: 3, transA: false, ldb: 4, transB: false, m: -1, n: 4, k: 3)
        XCTAssertEqual(negative?.contains("negative dimension"), true, negative ?? "nil")
        let lda = gemmArgumentProblem(ldc: 4, lda: 2, transA: false, ldb: 4, transB: false, m: 2, n: 4, k: 3)
        XCTAssertEqual(lda?.contains("lda 2 too small"), true, lda ?? "nil")
        let ldaT = gemmArgumentProblem(ldc: 4, lda: 2, transA: true, ldb: 4, transB: false, m: 3, n: 4, k: 2)
        XCTAssertEqual(ldaT?.contains("needs lda >= 3"), true, ldaT ?? "nil")
        let ldb = gemmArgumentProblem(ldc: 4, lda: 3, transA: false, ldb: 2, transB: true, m: 2, n: 4, k: 3)
        XCTAssertEqual(ldb?.contains("ldb 2 too small"), true, ldb ?? "nil")
        let ldc = gemmArgumentProblem(ldc: 3, lda: 3, transA: false, ldb: 4, transB: false, m: 2, n: 4, k: 3)
        XCTAssertEqual(ldc?.contains("ldc 3 too small"), true, ldc ?? "nil")
        let zero = gemmArgumentProblem(ldc: 0, lda: 1, transA: false, ldb: 1, transB: false, m: 0, n: 0, k: 0)
        XCTAssertEqual(zero?.contains("ldc 0"), true, "leading dimensions must be >= 1 even when empty")
        let overflow = gemmArgumentProblem(ldc: Int.max / 2, lda: 1, transA: false, ldb: Int.max / 2, transB: false,
                                           m: 4, n: 4, k: 1)
        XCTAssertEqual(overflow?.contains("overflows"), true, overflow ?? "nil")
    }

    /// A short A on several threads (m <= mcWhole: one row block per thread, or packed once per k group and
    /// shared by column tasks, `shortARows`) gives the bits of one thread: awkward m (a partial last panel), n
    /// edge panels, several k groups, the LayerNorm prologue on A, bias and residual, 2 and 3 threads (uneven
    /// packing runs and row blocks), in both builds (AVX2 builds set mcWhole 0, so the test sets it); and both
    /// plans cover every row and panel once.
    func testSharedPackedAEqualsOneThread() {
        for (m, n, k) in [(1, 5, 3), (196, 384, 384), (37, 100, 777), (250, 65, 2000), (13, 1000, 40)] {
            var rng = TestRNG(21)
            let a = rng.floats(m * k, scale: 3), b = rng.floats(n * k), bias = rng.floats(n), residual = rng.floats(m * n)
            let gamma = rng.floats(k, scale: 2), beta = rng.floats(k)
            var mean = [Float](repeating: 0, count: m), rstd = mean
            layerNormStatistics(mean: &mean, rstd: &rstd, a, rows: m, dim: k, eps: 1e-6, context: KernelContext(threads: 1))
            func product(threads: Int, mcWhole: Int, prologue: Bool, rows: Bool = true) -> [UInt32] {
                var context = KernelContext(threads: threads)
                context.blocking.mcWhole = mcWhole
                context.blocking.shortARows = rows
                var c = [Float](repeating: .nan, count: m * n)
                mean.withUnsafeBufferPointer { mp in
                    rstd.withUnsafeBufferPointer { rp in
                        gamma.withUnsafeBufferPointer { gp in
                            beta.withUnsafeBufferPointer { bp in
                                let norm = GEMMPrologue.layerNorm(mean: mp.baseAddress!, rstd: rp.baseAddress!, gamma: gp.baseAddress,
                                                                  beta: bp.baseAddress)
                                sgemm(c: &c, ldc: n, a: a, lda: k, transA: false, b: b, ldb: k, transB: true, m: m, n: n, k: k,
                                      bias: bias, residual: residual, aPrologue: prologue ? norm : nil, context: context)
                            }
                        }
                    }
                }
                return c.map(\.bitPattern)
            }
            for prologue in [false, true] {
                let reference = product(threads: 1, mcWhole: 0, prologue: prologue)
                for (threads, mcWhole) in [(1, 300), (2, 300), (3, 300), (2, 0)] {
                    for rows in [false, true] {
                        XCTAssertEqual(product(threads: threads, mcWhole: mcWhole, prologue: prologue, rows: rows), reference,
                                       "\(m)x\(n)x\(k), prologue \(prologue), \(threads) threads, mcWhole \(mcWhole), rows \(rows)")
                    }
                }
            }
        }
        for (m, nc, threads) in [(196, 1536, 2), (1, 16, 2), (250, 65, 3), (13, 1000, 5)] {
            let plan = GEMMTaskPlan(m: m, nc: nc, k: 384, threads: threads, columnsOnly: true)
            let panels = (nc + GEMMBlocking.NR - 1) / GEMMBlocking.NR
            XCTAssertEqual(plan.mBlocks, 1)
            XCTAssertGreaterThanOrEqual(plan.mc, m)
            XCTAssertGreaterThanOrEqual(plan.nBlocks * plan.panelsPerBlock, panels)
            XCTAssertLessThan((plan.nBlocks - 1) * plan.panelsPerBlock, panels)
        }
        // One row block per thread: whole panels, the last block the rest (at least one row), all columns each.
        for (m, threads) in [(196, 2), (256, 2), (1, 2), (13, 3), (37, 3), (72, 4), (250, 3), (264, 2), (25, 8)] {
            let plan = GEMMTaskPlan(m: m, nc: 1536, k: 384, threads: threads, mcMax: m, rowsPerThread: true)
            XCTAssertEqual(plan.nBlocks, 1)
            XCTAssertGreaterThanOrEqual(plan.panelsPerBlock * GEMMBlocking.NR, 1536)
            XCTAssertLessThanOrEqual(plan.mBlocks, threads)
            XCTAssertEqual(plan.mc % GEMMBlocking.MR, 0)
            XCTAssertEqual((plan.mBlocks - 1) * plan.mc + plan.lastRows, m, "\(m) rows, \(threads) threads")
            XCTAssertGreaterThan(plan.lastRows, 0, "\(m) rows, \(threads) threads")
        }
        if GEMMBlocking.MR == 12 {  // a batch-1 ViT-S/16 and ViT-H/14 on 2 threads: near-even halves
            XCTAssertEqual(GEMMTaskPlan(m: 196, nc: 384, k: 384, threads: 2, mcMax: 196, rowsPerThread: true).lastRows, 100)
            XCTAssertEqual(GEMMTaskPlan(m: 256, nc: 384, k: 384, threads: 2, mcMax: 256, rowsPerThread: true).lastRows, 124)
        }
    }

    func testTaskPlanCoversEveryRowAndPanel() {
        for (m, nc, k) in [(1, 16, 1), (4096, 576, 192), (768, 192, 4096), (5, 3072, 256), (145, 17, 300)] {
          for threads in [1, 2, 3] {
            let plan = GEMMTaskPlan(m: m, nc: nc, k: k, threads: threads)
            XCTAssertGreaterThanOrEqual(plan.mBlocks * plan.mc, m)
            XCTAssertLessThan((plan.mBlocks - 1) * plan.mc, m)
            let panels = (nc + GEMMBlocking.NR - 1) / GEMMBlocking.NR
            XCTAssertGreaterThanOrEqual(plan.nBlocks * plan.panelsPerBlock, panels)
            XCTAssertLessThan((plan.nBlocks - 1) * plan.panelsPerBlock, panels)
            XCTAssertLessThanOrEqual(plan.mc, GEMMBlocking.MC)
            let transposed = GEMMTaskPlan(m: m, nc: nc, k: k, threads: threads, mcMax: GEMMBlocking.MCTransposedA)
            XCTAssertGreaterThanOrEqual(transposed.mBlocks * transposed.mc, m)
            XCTAssertLessThan((transposed.mBlocks - 1) * transposed.mc, m)
            XCTAssertLessThanOrEqual(transposed.mc, GEMMBlocking.MCTransposedA)
          }
        }
        // Where rows alone give enough tasks of >= 48 rows, the plan does not cut the columns (a column cut
        // packs the same rows of A again): a weight gradient's k group (864 rows: 12 row blocks of 72 with either
        // panel height, the 12 tasks wanted on 2 threads), the context encoder's 704 rows.
        let wgrad = GEMMTaskPlan(m: 864, nc: 192, k: 384, threads: 2, mcMax: GEMMBlocking.MCTransposedA)
        XCTAssertEqual(wgrad.nBlocks, 1)
        XCTAssertGreaterThanOrEqual(wgrad.mBlocks, 12)
        XCTAssertEqual(GEMMTaskPlan(m: 704, nc: 768, k: 192, threads: 2).nBlocks, 1)
        // Too few rows for that: the columns are cut too, with at least 72 rows a row block.
        let narrow = GEMMTaskPlan(m: 192, nc: 768, k: 384, threads: 2, mcMax: GEMMBlocking.MCTransposedA)
        XCTAssertGreaterThan(narrow.nBlocks, 1)
        XCTAssertEqual(narrow.mc, 72)
    }

    /// A prologue (GELU, LayerNorm with and without gamma and beta) on A or on B gives the bits of applying it
    /// in a separate pass first: edge tiles and panels, k and n tails of the 8-wide loads, several k blocks,
    /// the k split (97 x 70, long k, several threads), 1, 2 and 5 threads.
    func testProloguesEqualSeparatePasses() {
        let kSplit = GEMMBlocking.kSplitMinBlocks * GEMMBlocking.KC + 164
        let cases = [(1, 1, 1), (7, 17, 5), (13, 33, 300), (97, 70, kSplit), (300, 200, 600), (145, 48, 96), (6, 16, 8)]
        for (m, n, k) in cases {
            var rng = TestRNG(13)
            let a = rng.floats(m * k, scale: 3), b = rng.floats(k * n, scale: 3), bias = rng.floats(n)
            let c0 = rng.floats(m * n)
            // LayerNorm over the rows of the operand: A (m, k) over k, B (k, n) over n.
            let gammaA = rng.floats(k, scale: 2), betaA = rng.floats(k), gammaB = rng.floats(n, scale: 2), betaB = rng.floats(n)
            for onA in [true, false] {
                let (x, rows, cols) = onA ? (a, m, k) : (b, k, n)
                let (gamma, beta) = onA ? (gammaA, betaA) : (gammaB, betaB)
                var mean = [Float](repeating: 0, count: rows), rstd = mean
                layerNormStatistics(mean: &mean, rstd: &rstd, x, rows: rows, dim: cols, eps: 1e-6, context: KernelContext(threads: 1))
                for kind in ["gelu", "layerNorm", "layerNorm plain"] {
                    var fx = [Float](repeating: 0, count: rows * cols)
                    var mean2 = mean, rstd2 = rstd
                    switch kind {
                    case "gelu": geluForward(&fx, x, count: rows * cols, context: KernelContext(threads: 1))
                    case "layerNorm":
                        layerNormForward(&fx, mean: &mean2, rstd: &rstd2, x, gamma: gamma, beta: beta, rows: rows, dim: cols,
                                         eps: 1e-6, context: KernelContext(threads: 1))
                    default:
                        layerNormForward(&fx, mean: &mean2, rstd: &rstd2, x, gamma: nil, beta: nil, rows: rows, dim: cols,
                                         eps: 1e-6, context: KernelContext(threads: 1))
                    }
                    XCTAssertEqual(mean2.map(\.bitPattern), mean.map(\.bitPattern), "layerNormStatistics: the forward's mean")
                    XCTAssertEqual(rstd2.map(\.bitPattern), rstd.map(\.bitPattern), "layerNormStatistics: the forward's rstd")
                    // Beta 0 and 1 on C, with the bias, as a Linear layer (beta 0) and a weight gradient (beta 1) use it.
                    for beta0 in [Float(0), 1] {
                        var separate = c0
                        bias.withUnsafeBufferPointer { bp in
                            sgemm(c: &separate, ldc: n, a: onA ? fx : a, lda: k, transA: false, b: onA ? b : fx, ldb: n,
                                  transB: false, m: m, n: n, k: k, beta: beta0, bias: bp.baseAddress, context: KernelContext(threads: 1))
                        }
                        for threads in [1, 2, 5] {
                            var fused = c0
                            mean.withUnsafeBufferPointer { mp in
                                rstd.withUnsafeBufferPointer { rp in
                                    gamma.withUnsafeBufferPointer { gp in
                                        beta.withUnsafeBufferPointer { btp in
                                            bias.withUnsafeBufferPointer { bp in
                                                let prologue: GEMMPrologue = kind == "gelu" ? .gelu
                                                    : .layerNorm(mean: mp.baseAddress!, rstd: rp.baseAddress!,
                                                                 gamma: kind == "layerNorm" ? gp.baseAddress : nil,
                                                                 beta: kind == "layerNorm" ? btp.baseAddress : nil)
                                                sgemm(c: &fused, ldc: n, a: a, lda: k, transA: false, b: b, ldb: n, transB: false,
                                                      m: m, n: n, k: k, beta: beta0, bias: bp.baseAddress,
                                                      aPrologue: onA ? prologue : nil, bPrologue: onA ? nil : prologue,
                                                      context: KernelContext(threads: threads))
                                            }
                                        }
                                    }
                                }
                            }
                            let differing = zip(fused, separate).filter { $0.bitPattern != $1.bitPattern }.count
                            XCTAssertEqual(differing, 0, "\(kind) on \(onA ? "A" : "B") (\(m), \(n), \(k)) beta \(beta0), "
                                           + "\(threads) threads: elements that differ from the separate passes'")
                        }
                    }
                }
            }
        }
    }

}
