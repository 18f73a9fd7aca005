import CPUKernels
import Foundation

/// Benchmarks of the row kernels on ViT-shaped data. Each case first checks a few rows against a Double
/// reference (validationError = max |error| / (1e-5 * max(1, |reference|)); <= 1 passes), then is timed.
package enum RowKernelSuite {
    package struct Case {
        package var name: String
        package var cost: KernelCost.Cost
        /// Prepares buffers and returns (run, validate) closures.
        var make: (_ threads: Int) -> (run: () -> Void, validate: () -> Double, free: () -> Void)
    }

    static func buffer(_ n: Int, seed: UInt64, scale: Float = 1, offset: Float = 0) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
        var s = seed
        for i in 0..<n {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            p[i] = offset + scale * Float(Int64(bitPattern: s) >> 40) * 0x1p-23
        }
        return p
    }

    static func relErr(_ got: Float, _ ref: Double) -> Double { abs(Double(got) - ref) / (1e-5 * max(1, abs(ref))) }

    static func layerNorm(_ tag: String, rows: Int, dim: Int, backward: Bool) -> Case {
        let cost = backward ? KernelCost.layerNormBackward(rows: rows, dim: dim) : KernelCost.layerNormForward(rows: rows, dim: dim)
        return Case(name: "layernorm.\(backward ? "bwd" : "fwd").\(tag)", cost: cost) { threads in
            let context = KernelContext(threads: threads)
            let n = rows * dim
            let x = buffer(n, seed: 1, scale: 2, offset: 0.3), g = buffer(dim, seed: 2, offset: 1), b = buffer(dim, seed: 3)
            let y = buffer(n, seed: 4), dy = buffer(n, seed: 5), dx = buffer(n, seed: 6)
            let dg = buffer(dim, seed: 7), db = buffer(dim, seed: 8)
            let mean = buffer(rows, seed: 9), rstd = buffer(rows, seed: 10)
            layerNormForward(y, mean: mean, rstd: rstd, x, gamma: g, beta: b, rows: rows, dim: dim, eps: 1e-6, context: context)
            let run = {
                if backward {
                    layerNormBackward(dx: dx, dgamma: dg, dbeta: db, dy: dy, x: x, mean: mean, rstd: rstd, gamma: g,
                                      rows: rows, dim: dim, context: context)
                } else {
                    layerNormForward(y, mean: mean, rstd: rstd, x, gamma: g, beta: b, rows: rows, dim: dim, eps: 1e-6, context: context)
                }
            }
            let validate = { () -> Double in
                var worst = 0.0
                if backward { dx.update(repeating: 0, count: n) }
                run()
                for r in [0, rows / 2, rows - 1] {
                    let row = (0..<dim).map { Double(x[r * dim + $0]) }
                    let mu = row.reduce(0, +) / Double(dim)
                    let rs = 1 / (row.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(dim) + 1e-6).squareRoot()
                    let xh = row.map { ($0 - mu) * rs }
                    if backward {
                        let gr = (0..<dim).map { Double(dy[r * dim + $0]) * Double(g[$0]) }
                        let mg = gr.reduce(0, +) / Double(dim)
                        let mgx = zip(gr, xh).map { $0 * $1 }.reduce(0, +) / Double(dim)
                        for j in 0..<dim { worst = max(worst, relErr(dx[r * dim + j], rs * (gr[j] - mg - xh[j] * mgx))) }
                    } else {
                        for j in 0..<dim { worst = max(worst, relErr(y[r * dim + j], xh[j] * Double(g[j]) + Double(b[j]))) }
                    }
                }
                return worst
            }
            return (run, validate, { for p in [x, g, b, y, dy, dx, dg, db, mean, rstd] { p.deallocate() } })
        }
    }

    /// Inputs uniform in [-inputScale, inputScale]: 4 exercises both erf branches in nearly every vector;
    /// 0.5 keeps every lane in the polynomial branch, as a ViT's fc1 outputs near initialisation (std ~0.3).
    static func gelu(_ tag: String, count n: Int, backward: Bool, inputScale: Float = 4) -> Case {
        let cost = backward ? KernelCost.geluBackward(count: n) : KernelCost.geluForward(count: n)
        return Case(name: "gelu.\(backward ? "bwd" : "fwd").\(tag)", cost: cost) { threads in
            let context = KernelContext(threads: threads)
            let x = buffer(n, seed: 1, scale: inputScale), y = buffer(n, seed: 2), dy = buffer(n, seed: 3)
            let run = {
                if backward { geluBackward(dx: y, dy: dy, x: x, count: n, context: context) } else { geluForward(y, x, count: n, context: context) }
            }
            let validate = { () -> Double in
                y.update(repeating: 0, count: n)
                run()
                var worst = 0.0
                for i in stride(from: 0, to: n, by: max(1, n / 997)) {
                    let v = Double(x[i])
                    let cdf = 0.5 * (1 + erf(v / 2.0.squareRoot()))
                    let ref = backward ? Double(dy[i]) * (cdf + v * exp(-v * v / 2) / (2 * Double.pi).squareRoot()) : v * cdf
                    worst = max(worst, relErr(y[i], ref))
                }
                return worst
            }
            return (run, validate, { for p in [x, y, dy] { p.deallocate() } })
        }
    }

    /// `attentionForward` over a batch in the qkv Linear's layout (B, n, 3D), as the `attention` op runs it;
    /// checked against the Double reference on the first and last (batch, head).
    static func attentionBatch(_ tag: String, batch: Int, heads: Int, n: Int, dh: Int, backward: Bool) -> Case {
        let cost = backward ? KernelCost.attentionBackward(heads: batch * heads, n: n, dh: dh)
                            : KernelCost.attentionForward(heads: batch * heads, n: n, dh: dh)
        return Case(name: "attention.\(backward ? "bwd" : "fwd").batch.\(tag)", cost: cost) { threads in
            let context = KernelContext(threads: threads)
            let d = heads * dh, per = n * 3 * d
            let x = buffer(batch * per, seed: 1, scale: 2), o = buffer(batch * n * d, seed: 3)
            let p = buffer(batch * heads * n * n, seed: 5), dO = buffer(batch * n * d, seed: 4), dx = buffer(batch * per, seed: 2)
            let scale = 1 / Float(dh).squareRoot()
            attentionForward(out: o, probs: p, qkv: x, batch: batch, n: n, heads: heads, dh: dh, scale: scale, context: context)
            let run = {
                if backward {
                    attentionBackward(dqkv: dx, accumulate: false, dOut: dO, probs: p, qkv: x, batch: batch, n: n,
                                      heads: heads, dh: dh, scale: scale, context: context)
                } else {
                    attentionForward(out: o, probs: p, qkv: x, batch: batch, n: n, heads: heads, dh: dh, scale: scale, context: context)
                }
            }
            let validate = { () -> Double in
                run()
                var worst = 0.0
                for (b, h) in [(0, 0), (batch - 1, heads - 1)] {
                    func part(_ t: UnsafeMutablePointer<Float>, _ s: Int) -> [Float] {
                        (0..<n * dh).map { t[b * per + ($0 / dh) * 3 * d + s * d + h * dh + $0 % dh] }
                    }
                    func outPart(_ t: UnsafeMutablePointer<Float>) -> [Float] { (0..<n * dh).map { t[b * n * d + ($0 / dh) * d + h * dh + $0 % dh] } }
                    if backward {
                        let pr = (0..<n * n).map { p[(b * heads + h) * n * n + $0] }
                        let ref = attentionHeadBackwardReference(dOut: outPart(dO), probs: pr, q: part(x, 0), k: part(x, 1),
                                                                 v: part(x, 2), n: n, dh: dh, scale: scale)
                        for (got, want) in [(part(dx, 0), ref.dq), (part(dx, 1), ref.dk), (part(dx, 2), ref.dv)] {
                            for i in got.indices { worst = max(worst, relErr(got[i], Double(want[i]))) }
                        }
                    } else {
                        let ref = attentionHeadReference(q: part(x, 0), k: part(x, 1), v: part(x, 2), n: n, dh: dh, scale: scale)
                        for (i, v) in outPart(o).enumerated() { worst = max(worst, relErr(v, Double(ref.out[i]))) }
                    }
                }
                return worst
            }
            return (run, validate, { for q in [x, o, p, dO, dx] { q.deallocate() } })
        }
    }

    static func softmax(_ tag: String, rows: Int, cols: Int, backward: Bool) -> Case {
        let cost = backward ? KernelCost.softmaxBackward(rows: rows, cols: cols) : KernelCost.softmaxForward(rows: rows, cols: cols)
        return Case(name: "softmax.\(backward ? "bwd" : "fwd").\(tag)", cost: cost) { threads in
            let context = KernelContext(threads: threads)
            let n = rows * cols
            let x = buffer(n, seed: 1, scale: 5), y = buffer(n, seed: 2), dy = buffer(n, seed: 3), dx = buffer(n, seed: 4)
            softmaxForward(y, x, rows: rows, cols: cols, context: context)
            let run = {
                if backward { softmaxBackward(dx: dx, dy: dy, y: y, rows: rows, cols: cols, context: context) } else { softmaxForward(y, x, rows: rows, cols: cols, context: context) }
            }
            let validate = { () -> Double in
                dx.update(repeating: 0, count: n)
                run()
                var worst = 0.0
                for r in [0, rows / 2, rows - 1] {
                    let row = (0..<cols).map { Double(x[r * cols + $0]) }
                    let m = row.max()!
                    let e = row.map { exp($0 - m) }
                    let s = e.reduce(0, +)
                    let p = e.map { $0 / s }
                    if backward {
                        let dot = (0..<cols).map { Double(dy[r * cols + $0]) * p[$0] }.reduce(0, +)
                        for j in 0..<cols { worst = max(worst, relErr(dx[r * cols + j], p[j] * (Double(dy[r * cols + j]) - dot))) }
                    } else {
                        for j in 0..<cols { worst = max(worst, relErr(y[r * cols + j], p[j])) }
                    }
                }
                return worst
            }
            return (run, validate, { for p in [x, y, dy, dx] { p.deallocate() } })
        }
    }

    /// `heads` attention heads of (n, dh), q/k/v interleaved as in the qkv activation (row stride 3 dh), run
    /// as the `attention` op runs them: one task per head. Validated on the first and last head.
    static func attention(_ tag: String, heads: Int, n: Int, dh: Int, backward: Bool) -> Case {
        let cost = backward ? KernelCost.attentionBackward(heads: heads, n: n, dh: dh)
                            : KernelCost.attentionForward(heads: heads, n: n, dh: dh)
        return Case(name: "attention.\(backward ? "bwd" : "fwd").\(tag)", cost: cost) { threads in
            let context = KernelContext(threads: threads)
            let ld = 3 * dh, per = n * ld
            let x = buffer(heads * per, seed: 1, scale: 2), dx = buffer(heads * per, seed: 2)
            let o = buffer(heads * n * dh, seed: 3), dO = buffer(heads * n * dh, seed: 4), p = buffer(heads * n * n, seed: 5)
            let scale = 1 / Float(dh).squareRoot()
            func head(_ h: Int, backward: Bool) {
                let q = x + h * per
                context.scratch.withFloats(attentionHeadScratch(n: n, dh: dh, backward: backward)) { s in
                    if backward {
                        let dq = dx + h * per
                        attentionHeadBackward(dq: dq, dk: dq + dh, dv: dq + 2 * dh, ldd: ld, accumulate: false,
                                              dOut: dO + h * n * dh, lddo: dh, probs: p + h * n * n,
                                              q: q, k: q + dh, v: q + 2 * dh, ld: ld, n: n, dh: dh, scale: scale, scratch: s)
                    } else {
                        attentionHeadForward(out: o + h * n * dh, ldo: dh, probs: p + h * n * n, q: q, k: q + dh,
                                             v: q + 2 * dh, ld: ld, n: n, dh: dh, scale: scale, scratch: s)
                    }
                }
            }
            let run = { Parallel.forEach(tasks: heads, threads: threads) { h, _ in head(h, backward: backward) } }
            Parallel.forEach(tasks: heads, threads: threads) { h, _ in head(h, backward: false) }  // P for backward
            let validate = { () -> Double in
                run()
                var worst = 0.0
                for h in [0, heads - 1] {
                    func part(_ base: UnsafeMutablePointer<Float>, _ off: Int) -> [Float] {
                        (0..<n * dh).map { base[h * per + ($0 / dh) * ld + off + $0 % dh] }
                    }
                    let (q, k, v) = (part(x, 0), part(x, dh), part(x, 2 * dh))
                    if backward {
                        let g = (0..<n * dh).map { dO[h * n * dh + $0] }, pr = (0..<n * n).map { p[h * n * n + $0] }
                        let ref = attentionHeadBackwardReference(dOut: g, probs: pr, q: q, k: k, v: v, n: n, dh: dh, scale: scale)
                        for (got, want) in [(part(dx, 0), ref.dq), (part(dx, dh), ref.dk), (part(dx, 2 * dh), ref.dv)] {
                            for i in got.indices { worst = max(worst, relErr(got[i], Double(want[i]))) }
                        }
                    } else {
                        let ref = attentionHeadReference(q: q, k: k, v: v, n: n, dh: dh, scale: scale)
                        for i in 0..<n * dh { worst = max(worst, relErr(o[h * n * dh + i], Double(ref.out[i]))) }
                    }
                }
                return worst
            }
            return (run, validate, { for b in [x, dx, o, dO, p] { b.deallocate() } })
        }
    }

    static func bias(_ tag: String, rows: Int, cols: Int, backward: Bool) -> Case {
        let cost = backward ? KernelCost.biasBackward(rows: rows, cols: cols) : KernelCost.addBias(rows: rows, cols: cols)
        return Case(name: "bias.\(backward ? "bwd" : "fwd").\(tag)", cost: cost) { threads in
            let context = KernelContext(threads: threads)
            let n = rows * cols
            let y = buffer(n, seed: 1), bias = buffer(cols, seed: 2)
            let run = {
                if backward { biasBackward(dbias: bias, dy: y, rows: rows, cols: cols, context: context) } else { addBias(y, bias: bias, rows: rows, cols: cols, context: context) }
            }
            let validate = { () -> Double in
                if backward {
                    bias.update(repeating: 0, count: cols)
                    run()
                    var worst = 0.0
                    for j in 0..<cols {
                        let ref = (0..<rows).map { Double(y[$0 * cols + j]) }.reduce(0, +)
                        worst = max(worst, abs(Double(bias[j]) - ref) / (1e-5 * max(1, Double(rows).squareRoot())))
                    }
                    return worst
                }
                let before = (0..<cols).map { Double(y[$0]) }
                run()
                return (0..<cols).map { relErr(y[$0], before[$0] + Double(bias[$0])) }.max()!
            }
            return (run, validate, { y.deallocate(); bias.deallocate() })
        }
    }

    static func residual(_ tag: String, count n: Int) -> Case {
        Case(name: "residual.add.\(tag)", cost: KernelCost.addElementwise(count: n)) { threads in
            let context = KernelContext(threads: threads)
            let a = buffer(n, seed: 1), b = buffer(n, seed: 2), out = buffer(n, seed: 3)
            let run = { addElementwise(out, a, b, count: n, context: context) }
            let validate = { () -> Double in
                run()
                return stride(from: 0, to: n, by: max(1, n / 997)).map { relErr(out[$0], Double(a[$0]) + Double(b[$0])) }.max()!
            }
            return (run, validate, { for p in [a, b, out] { p.deallocate() } })
        }
    }

    static func adamw(_ tag: String, count n: Int) -> Case {
        Case(name: "adamw.\(tag)", cost: KernelCost.adamw(count: n)) { threads in
            let context = KernelContext(threads: threads)
            let p = buffer(n, seed: 1), m = buffer(n, seed: 2, scale: 0.1), v = buffer(n, seed: 3, scale: 0.01, offset: 0.02)
            let g = buffer(n, seed: 4)
            var step = 1
            let run = {
                adamwUpdate(param: p, m: m, v: v, grad: g, count: n, lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8,
                            weightDecay: 0.04, step: step, context: context)
                step += 1
            }
            let validate = { () -> Double in
                let idx = stride(from: 0, to: n, by: max(1, n / 997)).map { $0 }
                let before = idx.map { (Double(p[$0]), Double(m[$0]), Double(v[$0]), Double(g[$0])) }
                let t = Double(step)
                run()
                var worst = 0.0
                for (i, (p0, m0, v0, g0)) in zip(idx, before) {
                    let mm = 0.9 * m0 + 0.1 * g0, vv = 0.999 * v0 + 0.001 * g0 * g0
                    let ref = p0 * (1 - 1e-4 * 0.04) - 1e-4 * (mm / (1 - pow(0.9, t))) / ((vv / (1 - pow(0.999, t))).squareRoot() + 1e-8)
                    worst = max(worst, relErr(p[i], ref))
                }
                return worst
            }
            return (run, validate, { for b in [p, m, v, g] { b.deallocate() } })
        }
    }

    /// ViT-Tiny (4096 tokens, D 192, 3 heads of 64 tokens) and ViT-S/16 (3136 tokens, D 384, 6 heads of 196).
    package static var standard: [Case] {
        var cases: [Case] = []
        for (tag, rows, d, attnRows, tokens, params) in [("vit-tiny", 4096, 192, 64 * 3 * 64, 64, 5_526_000),
                                                         ("vit-s16", 3136, 384, 16 * 6 * 196, 196, 21_590_000)] {
            for bwd in [false, true] {
                cases.append(layerNorm(tag, rows: rows, dim: d, backward: bwd))
                cases.append(gelu(tag, count: rows * 4 * d, backward: bwd))
                cases.append(gelu(tag + ".small-inputs", count: rows * 4 * d, backward: bwd, inputScale: 0.5))
                cases.append(softmax(tag, rows: attnRows, cols: tokens, backward: bwd))
                cases.append(bias(tag, rows: rows, cols: 4 * d, backward: bwd))
            }
            cases.append(residual(tag, count: rows * d))
            cases.append(attention(tag, heads: attnRows / tokens, n: tokens, dh: 64, backward: false))
            cases.append(attention(tag, heads: attnRows / tokens, n: tokens, dh: 64, backward: true))
            cases.append(adamw(tag, count: params))
        }
        // The I-JEPA predictor of the default model: 64 images x 4 targets, 3 heads of width 32, ~21 tokens.
        cases.append(attention("ijepa-pred", heads: 768, n: 21, dh: 32, backward: false))
        cases.append(attention("ijepa-pred", heads: 768, n: 21, dh: 32, backward: true))
        // The same heads in the op's layout: the default model's predictor (256 sequences of ~21 tokens, 3 heads of
        // 32), target encoder (64 images of 49 tokens) and context encoder (64 images of ~11 tokens), ViT-Tiny on 32 px (64 images of 64 tokens) and
        // ViT-S/16 (16 images of 196 tokens, 6 heads of 64).
        for bwd in [false, true] {
            cases.append(attentionBatch("ijepa-pred", batch: 256, heads: 3, n: 21, dh: 32, backward: bwd))
            cases.append(attentionBatch("ijepa-target", batch: 64, heads: 3, n: 49, dh: 64, backward: bwd))
            cases.append(attentionBatch("ijepa-ctx", batch: 64, heads: 3, n: 11, dh: 64, backward: bwd))
            cases.append(attentionBatch("vit-tiny", batch: 64, heads: 3, n: 64, dh: 64, backward: bwd))
            cases.append(attentionBatch("vit-s16", batch: 16, heads: 6, n: 196, dh: 64, backward: bwd))
        }
        return cases
    }

    package static func run(_ c: Case, threads: Int, peakPerCore: Double, minSeconds: Double = 0.2) -> BenchResult {
        let (body, validate, free) = c.make(threads)
        defer { free() }
        let err = validate()
        let stats = err <= 1 ? measure(minSeconds: minSeconds, body) : TimingStats(samples: [.nan])
        let gflops = c.cost.flops / stats.median / 1e9
        return BenchResult(
            name: c.name, kind: "row", threads: threads, medianMs: stats.median * 1e3, bestMs: stats.best * 1e3,
            gflops: gflops, pctPeak: 100 * gflops / (peakPerCore * Double(threads)),
            gbPerSecond: c.cost.bytes / stats.median / 1e9, validationError: err, extra: [])
    }
}
