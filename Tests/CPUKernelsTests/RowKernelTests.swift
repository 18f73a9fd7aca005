import XCTest
@testable import CPUKernels

/// Forward results against straightforward Double loops, and every backward pass against central differences.
final class RowKernelTests: XCTestCase {
    let shapes = [(1, 1), (3, 7), (5, 8), (4, 13), (2, 33), (7, 192)]

    func testLayerNormForwardMatchesDouble() {
        var rng = TestRNG(3)
        for (rows, dim) in shapes + [(300, 384)] {
            for affine in [true, false] {
                let x = rng.floats(rows * dim, scale: 3).map { $0 + 0.5 }
                let g = rng.floats(dim), b = rng.floats(dim)
                var y = [Float](repeating: 0, count: rows * dim)
                var mean = [Float](repeating: 0, count: rows), rstd = mean
                layerNormForward(&y, mean: &mean, rstd: &rstd, x, gamma: affine ? g : nil, beta: affine ? b : nil,
                                 rows: rows, dim: dim, eps: 1e-6, context: KernelContext())
                for r in 0..<rows {
                    let row = x[r * dim..<(r + 1) * dim].map(Double.init)
                    let mu = row.reduce(0, +) / Double(dim)
                    let v = row.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(dim)
                    let rs = 1 / (v + 1e-6).squareRoot()
                    XCTAssertEqual(Double(mean[r]), mu, accuracy: 1e-5 * max(1, abs(mu)))
                    XCTAssertEqual(Double(rstd[r]), rs, accuracy: 1e-5 * rs)
                    for j in 0..<dim {
                        let ref = (row[j] - mu) * rs * (affine ? Double(g[j]) : 1) + (affine ? Double(b[j]) : 0)
                        XCTAssertEqual(Double(y[r * dim + j]), ref, accuracy: 2e-5 * max(1, abs(ref)), "LN (\(rows),\(dim)) [\(r),\(j)]")
                    }
                }
            }
        }
    }

    func testLayerNormPropertiesMeanZeroVarianceOne() {
        var rng = TestRNG(4)
        let rows = 64, dim = 96
        let x = rng.floats(rows * dim, scale: 10)
        var y = [Float](repeating: 0, count: rows * dim)
        layerNormForward(&y, mean: nil, rstd: nil, x, gamma: nil, beta: nil, rows: rows, dim: dim, eps: 1e-5, context: KernelContext())
        for r in 0..<rows {
            let row = y[r * dim..<(r + 1) * dim].map(Double.init)
            let mu = row.reduce(0, +) / Double(dim)
            let v = row.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(dim)
            XCTAssertEqual(mu, 0, accuracy: 1e-5)
            XCTAssertEqual(v, 1, accuracy: 1e-3)
        }
    }

    func testLayerNormBackwardFiniteDifferences() {
        var rng = TestRNG(5)
        for (rows, dim) in shapes {
            for affine in [true, false] {
                let x = rng.floats(rows * dim, scale: 2)
                let g = rng.floats(dim).map { $0 + 1.2 }, b = rng.floats(dim)
                let w = rng.floats(rows * dim)
                func fwd(_ x: [Float], _ g: [Float], _ b: [Float]) -> [Float] {
                    var y = [Float](repeating: 0, count: rows * dim)
                    layerNormForward(&y, mean: nil, rstd: nil, x, gamma: affine ? g : nil, beta: affine ? b : nil,
                                     rows: rows, dim: dim, eps: 1e-5, context: KernelContext())
                    return y
                }
                var y = [Float](repeating: 0, count: rows * dim)
                var mean = [Float](repeating: 0, count: rows), rstd = mean
                layerNormForward(&y, mean: &mean, rstd: &rstd, x, gamma: affine ? g : nil, beta: affine ? b : nil,
                                 rows: rows, dim: dim, eps: 1e-5, context: KernelContext())
                let seed: Float = 0.25  // gradients accumulate: start from a non-zero buffer and subtract it
                var dx = [Float](repeating: seed, count: rows * dim)
                var dg = [Float](repeating: seed, count: dim), db = dg
                dg.withUnsafeMutableBufferPointer { dgp in
                    db.withUnsafeMutableBufferPointer { dbp in
                        layerNormBackward(dx: &dx, dgamma: affine ? dgp.baseAddress : nil, dbeta: affine ? dbp.baseAddress : nil,
                                          dy: w, x: x, mean: mean, rstd: rstd, gamma: affine ? g : nil, rows: rows, dim: dim, context: KernelContext())
                    }
                }
                if dim == 1 { continue }  // d/dx of a 1-element LayerNorm is 0 and FD is dominated by eps
                checkGradient("LN dx (\(rows),\(dim)) affine \(affine)", x: x, weights: w, step: 1e-2, tolerance: 5e-3,
                              forward: { fwd($0, g, b) }, analytic: dx.map { $0 - seed })
                if affine {
                    checkGradient("LN dgamma (\(rows),\(dim))", x: g, weights: w, forward: { fwd(x, $0, b) },
                                  analytic: dg.map { $0 - seed })
                    checkGradient("LN dbeta (\(rows),\(dim))", x: b, weights: w, forward: { fwd(x, g, $0) },
                                  analytic: db.map { $0 - seed })
                }
            }
        }
    }

    func testGeluBackwardFiniteDifferences() {
        var rng = TestRNG(6)
        for n in [1, 7, 8, 9, 100] {
            let x = rng.floats(n, scale: 4), w = rng.floats(n)
            var dx = [Float](repeating: 0, count: n)
            geluBackward(dx: &dx, dy: w, x: x, count: n, context: KernelContext())
            checkGradient("GELU (\(n))", x: x, weights: w, step: 1e-2, forward: { x in
                var y = [Float](repeating: 0, count: n)
                geluForward(&y, x, count: n, context: KernelContext())
                return y
            }, analytic: dx)
        }
    }

    func testSoftmaxForwardAndBackward() {
        var rng = TestRNG(7)
        for (rows, cols) in shapes + [(3, 200)] {
            let x = rng.floats(rows * cols, scale: 5)
            var y = [Float](repeating: 0, count: rows * cols)
            softmaxForward(&y, x, rows: rows, cols: cols, context: KernelContext())
            for r in 0..<rows {
                let row = x[r * cols..<(r + 1) * cols].map(Double.init)
                let m = row.max()!
                let e = row.map { Foundation.exp($0 - m) }
                let s = e.reduce(0, +)
                XCTAssertEqual(y[r * cols..<(r + 1) * cols].map(Double.init).reduce(0, +), 1, accuracy: 1e-5, "softmax row sums to 1")
                for j in 0..<cols { XCTAssertEqual(Double(y[r * cols + j]), e[j] / s, accuracy: 3e-7 + 1e-5 * e[j] / s) }
            }
            let w = rng.floats(rows * cols)
            var dx = [Float](repeating: 0, count: rows * cols)
            softmaxBackward(dx: &dx, dy: w, y: y, rows: rows, cols: cols, context: KernelContext())
            checkGradient("softmax (\(rows),\(cols))", x: x, weights: w, step: 1e-2, forward: { x in
                var y = [Float](repeating: 0, count: rows * cols)
                softmaxForward(&y, x, rows: rows, cols: cols, context: KernelContext())
                return y
            }, analytic: dx)
        }
        // Large logits do not overflow.
        var y = [Float](repeating: 0, count: 3)
        softmaxForward(&y, [1000, 1000, -1000], rows: 1, cols: 3, context: KernelContext())
        XCTAssertEqual(y, [0.5, 0.5, 0])
    }

    /// softmaxRows takes rows eight at a time (their tail vectors first, built from scalars): each row must get
    /// the bits of that row alone, in place or not, whatever its tail (cols % 8), with -inf entries giving 0 and a
    /// NaN anywhere in a row making all of it NaN.
    func testSoftmaxRowsGroupedEqualRowsAlone() {
        var rng = TestRNG(71)
        for cols in [1, 3, 7, 8, 13, 196, 197] {
            let rows = 11
            var x = rng.floats(rows * cols, scale: 4)
            x[2 * cols + cols - 1] = -.infinity                                 // a -inf in a tail (or the only value)
            if cols > 1 { x[3 * cols] = -.infinity }
            x[5 * cols + cols / 2] = .nan
            var grouped = [Float](repeating: 0, count: rows * cols)
            softmaxRows(&grouped, x, rows: rows, cols: cols, scale: 0.7)
            var inPlace = x
            inPlace.withUnsafeMutableBufferPointer { softmaxRows($0.baseAddress!, $0.baseAddress!, rows: rows, cols: cols, scale: 0.7) }
            for r in 0..<rows {
                var alone = [Float](repeating: 0, count: cols)
                softmaxRows(&alone, Array(x[r * cols..<(r + 1) * cols]), rows: 1, cols: cols, scale: 0.7)
                let g = Array(grouped[r * cols..<(r + 1) * cols]), p = Array(inPlace[r * cols..<(r + 1) * cols])
                if r == 5 || (r == 2 && cols == 1) {
                    XCTAssertTrue(g.allSatisfy(\.isNaN) && p.allSatisfy(\.isNaN), "row \(r) of \(cols): \(g)")
                    continue
                }
                XCTAssertEqual(g.map(\.bitPattern), alone.map(\.bitPattern), "row \(r) of width \(cols) grouped")
                XCTAssertEqual(p.map(\.bitPattern), alone.map(\.bitPattern), "row \(r) of width \(cols) in place")
                if r == 2 { XCTAssertEqual(g[cols - 1], 0) }
                if r == 3 && cols > 1 { XCTAssertEqual(g[0], 0) }
            }
        }
    }

    /// The AVX-512 builds' 16-lane softmax exponentials (`softmaxExp16`) give the values and the running sum of the
    /// 8-lane loop they replace, bit for bit (so softmax rows keep their bits whatever the build's vector width).
    func testSoftmaxExp16EqualsTheEightLaneLoop() {
        var rng = TestRNG(72)
        for count in [0, 16, 32, 176, 192, 256] {
            var x = rng.floats(count, scale: 60)  // reaches past exp's clamp once scaled
            if count > 0 { x[count - 1] = .nan; x[0] = -.infinity }
            if count > 16 { x[17] = .infinity; x[3] = -0.0; x[4] = Float.leastNonzeroMagnitude }
            let scale: Float = 1.3, shift: Float = 2.5
            var y16 = [Float](repeating: 7, count: count), y8 = y16
            let acc16 = softmaxExp16(&y16, x, count: count, scale: scale, shift: shift)
            var acc8 = Float8()
            for j in stride(from: 0, to: count, by: 8) {
                let e = vexp(fmadd(-splat(shift), Float8(x[j..<j + 8]), splat(scale)))
                for l in 0..<8 { y8[j + l] = e[l] }
                acc8 += e
            }
            XCTAssertEqual(y16.map(\.bitPattern), y8.map(\.bitPattern), "values, count \(count)")
            for l in 0..<8 { XCTAssertEqual(acc16[l].bitPattern, acc8[l].bitPattern, "sum lane \(l), count \(count)") }
        }
    }

    func testBiasAndResidualWithGradients() {
        var rng = TestRNG(8)
        for (rows, cols) in shapes {
            let x = rng.floats(rows * cols), bias = rng.floats(cols), w = rng.floats(rows * cols)
            func fwd(_ bias: [Float]) -> [Float] {
                var y = x
                addBias(&y, bias: bias, rows: rows, cols: cols, context: KernelContext())
                return y
            }
            let y = fwd(bias)
            for r in 0..<rows { for j in 0..<cols { XCTAssertEqual(y[r * cols + j], x[r * cols + j] + bias[j]) } }
            var db = [Float](repeating: 0, count: cols)
            biasBackward(dbias: &db, dy: w, rows: rows, cols: cols, context: KernelContext())
            checkGradient("bias (\(rows),\(cols))", x: bias, weights: w, forward: fwd, analytic: db)

            let other = rng.floats(rows * cols)
            var sum = [Float](repeating: 0, count: rows * cols)
            addElementwise(&sum, x, other, count: rows * cols, context: KernelContext())
            XCTAssertEqual(sum, zip(x, other).map { $0 + $1 })
            var da = [Float](repeating: 1, count: rows * cols)
            accumulate(&da, w, count: rows * cols, context: KernelContext())
            checkGradient("residual (\(rows),\(cols))", x: x, weights: w, forward: { x in zip(x, other).map { $0 + $1 } },
                          analytic: da.map { $0 - 1 })
        }
    }

    /// Column reductions (dgamma, dbeta, dbias) and everything else: the same bits for 1 and 2 threads.
    func testRowKernelsIndependentOfThreadCount() {
        var rng = TestRNG(9)
        let rows = 3000, dim = 192
        let x = rng.floats(rows * dim), dy = rng.floats(rows * dim), g = rng.floats(dim), b = rng.floats(dim)
        func run(_ threads: Int) -> [[Float]] {
            var y = [Float](repeating: 0, count: rows * dim)
            var mean = [Float](repeating: 0, count: rows), rstd = mean
            layerNormForward(&y, mean: &mean, rstd: &rstd, x, gamma: g, beta: b, rows: rows, dim: dim, eps: 1e-6, context: KernelContext(threads: threads))
            var dx = [Float](repeating: 0, count: rows * dim), dg = [Float](repeating: 0, count: dim), db = dg
            layerNormBackward(dx: &dx, dgamma: &dg, dbeta: &db, dy: dy, x: x, mean: mean, rstd: rstd, gamma: g,
                              rows: rows, dim: dim, context: KernelContext(threads: threads))
            var dbias = [Float](repeating: 0, count: dim)
            biasBackward(dbias: &dbias, dy: dy, rows: rows, cols: dim, context: KernelContext(threads: threads))
            var s = [Float](repeating: 0, count: rows * dim)
            softmaxForward(&s, x, rows: rows, cols: dim, context: KernelContext(threads: threads))
            var ge = [Float](repeating: 0, count: rows * dim)
            geluForward(&ge, x, count: rows * dim, context: KernelContext(threads: threads))
            return [y, dx, dg, db, dbias, s, ge]
        }
        let one = run(1), two = run(2)
        for (i, (a, b)) in zip(one, two).enumerated() {
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "output \(i) differs between 1 and 2 threads")
        }
    }

    func testAdamWMatchesDoubleReference() {
        var rng = TestRNG(10)
        let n = 37
        var p = rng.floats(n), m = [Float](repeating: 0, count: n), v = m
        var pd = p.map(Double.init), md = [Double](repeating: 0, count: n), vd = md
        let lr: Float = 1e-3, b1: Float = 0.9, b2: Float = 0.999, eps: Float = 1e-8, wd: Float = 0.04
        for step in 1...5 {
            let g = rng.floats(n)
            adamwUpdate(param: &p, m: &m, v: &v, grad: g, count: n, lr: lr, beta1: b1, beta2: b2, eps: eps,
                        weightDecay: wd, step: step, context: KernelContext())
            for i in 0..<n {
                let gd = Double(g[i])
                pd[i] *= 1 - Double(lr) * Double(wd)
                md[i] = Double(b1) * md[i] + (1 - Double(b1)) * gd
                vd[i] = Double(b2) * vd[i] + (1 - Double(b2)) * gd * gd
                let mh = md[i] / (1 - pow(Double(b1), Double(step)))
                let vh = vd[i] / (1 - pow(Double(b2), Double(step)))
                pd[i] -= Double(lr) * mh / (vh.squareRoot() + Double(eps))
            }
        }
        for i in 0..<n {
            XCTAssertEqual(Double(p[i]), pd[i], accuracy: 1e-6, "param \(i)")
            XCTAssertEqual(Double(m[i]), md[i], accuracy: 1e-6)
            XCTAssertEqual(Double(v[i]), vd[i], accuracy: 1e-7)
        }
    }

    /// The one-pass end of a step (AdamW, zero grad, EMA over several tensors) gives the bits of the separate
    /// passes, for sizes around its 16K-float chunks and for 1, 2 and 3 threads.
    func testAdamWStepEqualsSeparatePasses() {
        var rng = TestRNG(12)
        // 300_001 >= zeroByPagesMinFloats: its gradient is zeroed by releasing its pages.
        let sizes = [1, 7, 16_384, 16_385, 40_000, 13, 300_001]
        let emaFlags = [true, false, true, true, false, true, true]
        let wds: [Float] = [0.04, 0, 0.04, 0, 0.04, 0.04, 0.04]
        var p0 = sizes.map { rng.floats($0) }, m0 = sizes.map { rng.floats($0, scale: 0.1) }
        let v0 = sizes.map { rng.floats($0, scale: 0.01).map(abs) }, g0 = sizes.map { rng.floats($0) }
        let t0 = sizes.map { rng.floats($0) }
        p0[0][0] = 0; m0[0][0] = -0.0  // signed zeros survive the same way
        // Separate passes: AdamW over every tensor, zero grads, EMA.
        var (ps, ms, vs, gs, ts) = (p0, m0, v0, g0, t0)
        for i in sizes.indices {
            adamwUpdate(param: &ps[i], m: &ms[i], v: &vs[i], grad: gs[i], count: sizes[i], lr: 1e-3, beta1: 0.9,
                        beta2: 0.999, eps: 1e-8, weightDecay: wds[i], step: 3, context: KernelContext(threads: 1))
        }
        for i in sizes.indices { gs[i] = [Float](repeating: 0, count: sizes[i]) }
        for i in sizes.indices where emaFlags[i] { emaUpdate(target: &ts[i], source: ps[i], count: sizes[i], momentum: 0.996, context: KernelContext(threads: 1)) }
        for threads in [1, 2, 3] {
            func buffers(_ a: [[Float]]) -> [UnsafeMutablePointer<Float>] {
                a.map { x in
                    let b = UnsafeMutablePointer<Float>.allocate(capacity: x.count)
                    b.initialize(from: x, count: x.count)
                    return b
                }
            }
            let p = buffers(p0), m = buffers(m0), v = buffers(v0), g = buffers(g0), t = buffers(t0)
            defer { for b in p + m + v + g + t { b.deallocate() } }
            let params = sizes.indices.map { i in
                AdamWParameter(param: p[i], m: m[i], v: v[i], grad: g[i], count: sizes[i], weightDecay: wds[i],
                               emaTarget: emaFlags[i] ? t[i] : nil)
            }
            adamwStep(params, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 3, zeroGradients: true,
                      emaMomentum: 0.996, context: KernelContext(threads: threads))
            func bits(_ b: UnsafeMutablePointer<Float>, _ n: Int) -> [UInt32] { (0..<n).map { b[$0].bitPattern } }
            for i in sizes.indices {
                let n = sizes[i]
                XCTAssertEqual(bits(p[i], n), ps[i].map(\.bitPattern), "param \(i), \(threads) threads")
                XCTAssertEqual(bits(m[i], n), ms[i].map(\.bitPattern), "m \(i), \(threads) threads")
                XCTAssertEqual(bits(v[i], n), vs[i].map(\.bitPattern), "v \(i), \(threads) threads")
                XCTAssertEqual(bits(g[i], n), gs[i].map(\.bitPattern), "grad \(i), \(threads) threads")
                XCTAssertEqual(bits(t[i], n), ts[i].map(\.bitPattern), "EMA target \(i), \(threads) threads")
            }
        }
    }

    /// Zeroing through released pages: exactly the range, at any alignment, its neighbours untouched, and
    /// the released pages read as zeros and take writes again.
    func testZeroByReleasingPagesZeroesExactlyTheRange() {
        let total = 5 * 4096 + 100
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: total)
        defer { buffer.deallocate() }
        for (start, count) in [(0, total), (1, 3 * 1024 + 5), (1000, 2048), (17, 4096 * 3), (5, 3), (0, 0)] {
            buffer.update(repeating: 1, count: total)
            zeroByReleasingPages(buffer + start, count: count)
            for i in 0..<total where (buffer[i] == 0) != (start..<start + count).contains(i) {
                XCTFail("(\(start), \(count)): element \(i) is \(buffer[i])")
                break
            }
            (buffer + start).update(repeating: 2, count: count)
            XCTAssertTrue((0..<count).allSatisfy { buffer[start + $0] == 2 }, "(\(start), \(count)): released pages take writes")
        }
    }

    func testEMAMatchesDoubleReferenceAndIsThreadIndependent() {
        var rng = TestRNG(11)
        for n in [1, 7, 8, 37, 20_001] {
            let src = rng.floats(n), start = rng.floats(n)
            for m: Float in [0.996, 0.5, 1] {
                var one = start, two = start
                emaUpdate(target: &one, source: src, count: n, momentum: m, context: KernelContext(threads: 1))
                emaUpdate(target: &two, source: src, count: n, momentum: m, context: KernelContext(threads: 2))
                XCTAssertEqual(one.map(\.bitPattern), two.map(\.bitPattern), "n \(n): thread count changed the EMA")
                for i in 0..<n {
                    let ref = Double(m) * Double(start[i]) + (1 - Double(m)) * Double(src[i])
                    XCTAssertEqual(Double(one[i]), ref, accuracy: 1e-6, "n \(n) m \(m) element \(i)")
                }
                if m == 1 { XCTAssertEqual(one, start, "momentum 1 must leave the target unchanged") }
            }
        }
    }
}

import Foundation
