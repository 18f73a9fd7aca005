import XCTest
import CPUKernels
@_spi(Tuning) @testable import TensorCore

/// Finite-difference gradient checks for every differentiable op, on awkward shapes, and for a whole
/// pre-norm transformer block built from them.
final class GradCheckTests: XCTestCase {
    var rng = RandomGenerator(seed: 2024)

    func param(_ shape: [Int], scale: Float = 1, offset: Float = 0) throws -> Variable {
        Variable(try rng.uniform(shape, low: offset - scale, high: offset + scale), requiresGrad: true)
    }

    /// loss = sum(w * f()), w random; checks d loss / d input for every input that requires a gradient
    /// against central differences (f evaluated in Float on a no-grad tape, the loss summed in Double).
    func gradCheck(
        _ name: String, _ inputs: [Variable], step: Float = 1e-2, tolerance: Double = 1.5e-3,
        file: StaticString = #filePath, line: UInt = #line, _ f: (Tape) throws -> Variable
    ) throws {
        let tape = Tape(Engine())
        let out = try f(tape)
        out.retainGrad()
        let w = try rng.uniform(out.shape, low: -1, high: 1)
        for v in inputs { v.zeroGrad() }
        try tape.backward(from: out, seed: w)
        func loss() throws -> Double {
            let y = try f(Engine().noGrad)
            return zip(y.value.scalars, w.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        for (vi, v) in inputs.enumerated() where v.requiresGrad {
            let analytic = v.grad?.scalars ?? [Float](repeating: 0, count: v.value.count)
            let scale = max(1e-3, analytic.map { Double(abs($0)) }.max() ?? 0)
            var worst = 0.0, at = -1
            for i in 0..<v.value.count {
                let x0 = v.value.scalars[i]
                v.value.withUnsafeMutableBufferPointer { $0[i] = x0 + step }
                let lp = try loss()
                v.value.withUnsafeMutableBufferPointer { $0[i] = x0 - step }
                let lm = try loss()
                v.value.withUnsafeMutableBufferPointer { $0[i] = x0 }
                let h = Double(x0 + step) - Double(x0 - step)
                let e = abs((lp - lm) / h - Double(analytic[i])) / scale
                if e > worst { (worst, at) = (e, i) }
            }
            XCTAssertLessThan(worst, tolerance, "\(name): input \(vi) \(v.shape): FD mismatch \(worst) at \(at)", file: file, line: line)
        }
    }

    func testLinear() throws {
        let x = try param([2, 3, 5]), w = try param([4, 5]), b = try param([4])
        try gradCheck("linear", [x, w, b]) { try linear(x, weight: w, bias: b, tape: $0) }
        let x1 = try param([1, 1]), w1 = try param([1, 1])
        try gradCheck("linear 1x1 no bias", [x1, w1]) { try linear(x1, weight: w1, bias: nil, tape: $0) }
        let r = try param([2, 3, 4])
        try gradCheck("linear + residual", [x, w, b, r]) { try linear(x, weight: w, bias: b, residual: r, tape: $0) }
        // The residual also feeding the input (a block's x -> norm -> ... -> proj + x): both gradients add up.
        let s = try param([2, 3, 5]), ws = try param([5, 5])
        try gradCheck("linear + residual of its own input", [s, ws]) { t in
            try linear(gelu(s, tape: t), weight: ws, bias: nil, residual: s, tape: t)
        }
        // Same bits as linear followed by add.
        let fused = try linear(x, weight: w, bias: b, residual: r, tape: Engine().noGrad)
        let separate = try add(r, try linear(x, weight: w, bias: b, tape: Engine().noGrad), tape: Engine().noGrad)
        XCTAssertEqual(fused.value.withUnsafeBufferPointer { $0.map(\.bitPattern) },
                       separate.value.withUnsafeBufferPointer { $0.map(\.bitPattern) })
        XCTAssertThrowsError(try linear(x, weight: w, bias: b, residual: try param([2, 3, 5]), tape: Engine().noGrad)) {
            XCTAssert("\($0)".contains("linear: residual of the output's shape"), "\($0)")
        }
    }

    /// A weight whose gradient is known to hold zeros (`zeroGrad`) gets its first contribution of a backward pass
    /// written (its GEMM with beta 0) and the next ones added: a weight used twice in one pass gets the sum, the
    /// same as from a gradient that had never been allocated, and a stale gradient is never kept.
    func testZeroedGradientIsWrittenThenAdded() throws {
        let x1 = try param([3, 7]), x2 = try param([3, 7]), w = try param([4, 7])
        func backward() throws -> [Float] {
            let t = Tape(Engine())
            let y = try add(try linear(x1, weight: w, bias: nil, tape: t), try linear(x2, weight: w, bias: nil, tape: t),
                            tape: t)
            try t.backward(from: y, seed: try Tensor(shape: [3, 4], repeating: 1))
            return w.grad!.scalars
        }
        let first = try backward()  // no gradient buffer yet
        // The sum of both uses: dW[o][i] = sum over the rows r of x1[r][i] + x2[r][i].
        let expected = (0..<28).map { e -> Float in
            let i = e % 7
            return (0..<3).reduce(Float(0)) { $0 + x1.value.scalars[$1 * 7 + i] + x2.value.scalars[$1 * 7 + i] }
        }
        for (g, e) in zip(first, expected) { XCTAssertEqual(g, e, accuracy: 1e-5) }
        w.zeroGrad()
        XCTAssertEqual(try backward().map(\.bitPattern), first.map(\.bitPattern), "after zeroGrad: written, then added")
        // Without zeroing, a second pass adds to the first.
        let twice = try backward()
        for (g, e) in zip(twice, first) { XCTAssertEqual(g, 2 * e, accuracy: 1e-5) }
        // A gradient replaced or written through the optimizer's buffers is no longer known to be zeros.
        w.zeroGrad()
        w.unsafeParameterBuffers().grad!.update(repeating: 1, count: 28)
        for (g, e) in zip(try backward(), first) { XCTAssertEqual(g, 1 + e, accuracy: 1e-5) }
    }

    /// The fused MLP op: finite differences for every input, and the bits of linear -> gelu -> linear (+ residual)
    /// for the output and every gradient, on a recording tape and on a no-grad one.
    func testMLP() throws {
        let x = try param([2, 3, 5], scale: 2), w1 = try param([7, 5]), b1 = try param([7])
        let w2 = try param([4, 7]), b2 = try param([4]), r = try param([2, 3, 4])
        try gradCheck("mlp", [x, w1, b1, w2, b2, r]) {
            try mlp(x, fc1: w1, bias1: b1, fc2: w2, bias2: b2, residual: r, tape: $0)
        }
        let x1 = try param([1, 1]), v1 = try param([1, 1]), v2 = try param([1, 1])
        try gradCheck("mlp 1x1x1 without biases", [x1, v1, v2]) {
            try mlp(x1, fc1: v1, bias1: nil, fc2: v2, bias2: nil, tape: $0)
        }
        // 37 rows x 70 hidden: edge tiles in both GEMMs; inputs of scale 3 reach both of erf's branches.
        let xs = try param([37, 9], scale: 3), ws1 = try param([70, 9]), bs1 = try param([70])
        let ws2 = try param([9, 70], scale: 0.3), bs2 = try param([9]), rs = try param([37, 9])
        let inputs = [xs, ws1, bs1, ws2, bs2, rs]
        let seed = try rng.uniform([37, 9], low: -1, high: 1)
        func run(fused: Bool, tape: Tape) throws -> [[UInt32]] {
            let y = fused
                ? try mlp(xs, fc1: ws1, bias1: bs1, fc2: ws2, bias2: bs2, residual: rs, tape: tape)
                : try linear(gelu(try linear(xs, weight: ws1, bias: bs1, tape: tape), tape: tape), weight: ws2, bias: bs2,
                             residual: rs, tape: tape)
            var tensors = [y.value]
            if tape.isRecording {
                for v in inputs { v.zeroGrad() }
                try tape.backward(from: y, seed: seed)
                tensors += inputs.map { $0.grad! }
            }
            return tensors.map { $0.withUnsafeBufferPointer { $0.map(\.bitPattern) } }
        }
        XCTAssertEqual(try run(fused: true, tape: Engine().noGrad), try run(fused: false, tape: Engine().noGrad), "forward on a no-grad tape")
        let fused = try run(fused: true, tape: Tape(Engine())), separate = try run(fused: false, tape: Tape(Engine()))
        for (i, name) in ["y", "dx", "dW1", "db1", "dW2", "db2", "dresidual"].enumerated() {
            XCTAssertEqual(fused[i], separate[i], "mlp vs separate ops: \(name)")
        }
        XCTAssertThrowsError(try mlp(xs, fc1: ws1, bias1: bs1, fc2: try param([9, 69]), bias2: nil, tape: Engine().noGrad)) {
            XCTAssert("\($0)".contains("mlp: fc1 (hidden, in) and fc2 (out, hidden)"), "\($0)")
        }
    }

    /// fc2 on GELU(h), keeping only h: finite differences for every input, and the bits of gelu -> linear
    /// (+ residual) for the output and every gradient, also when h's gradient already holds a contribution.
    func testGeluLinear() throws {
        let h = try param([2, 3, 7], scale: 2), w = try param([4, 7]), b = try param([4]), r = try param([2, 3, 4])
        try gradCheck("geluLinear", [h, w, b, r]) { try geluLinear(h, weight: w, bias: b, residual: r, tape: $0) }
        let h1 = try param([1, 1]), w1 = try param([1, 1])
        try gradCheck("geluLinear 1x1 without bias", [h1, w1]) { try geluLinear(h1, weight: w1, bias: nil, tape: $0) }
        // 37 rows x 70 in: edge tiles in every GEMM; inputs of scale 3 reach both of erf's branches.
        let hs = try param([37, 70], scale: 3), ws = try param([9, 70], scale: 0.3), bs = try param([9])
        let rs = try param([37, 9])
        let sq = try param([37, 70], scale: 3), wq = try param([70, 70], scale: 0.3)  // residual = its own input
        func run(fused: Bool, own: Bool) throws -> [[UInt32]] {
            let (x, wt, bias, res) = own ? (sq, wq, nil, sq) : (hs, ws, bs, rs)
            let inputs = [x, wt] + (bias.map { [$0] } ?? []) + (own ? [] : [res])
            let tape = Tape(Engine())
            let y = fused
                ? try geluLinear(x, weight: wt, bias: bias, residual: res, tape: tape)
                : try linear(gelu(x, tape: tape), weight: wt, bias: bias, residual: res, tape: tape)
            for v in inputs { v.zeroGrad() }
            try tape.backward(from: y, seed: try rng.uniform(y.shape, low: -1, high: 1))
            return ([y.value] + inputs.map { $0.grad! }).map { $0.withUnsafeBufferPointer { $0.map(\.bitPattern) } }
        }
        for own in [false, true] {
            let seedState = rng
            let fused = try run(fused: true, own: own)
            rng = seedState
            let separate = try run(fused: false, own: own)
            XCTAssertEqual(fused.count, own ? 3 : 5)
            for i in fused.indices { XCTAssertEqual(fused[i], separate[i], "geluLinear vs gelu -> linear (own input: \(own)): tensor \(i)") }
        }
        XCTAssertThrowsError(try geluLinear(hs, weight: try param([9, 69]), bias: nil, tape: Engine().noGrad)) {
            XCTAssert("\($0)".contains("geluLinear: x (..., in) and weight (out, in)"), "\($0)")
        }
    }

    /// A Linear on LayerNorm(x), keeping only the statistics: finite differences for every input, and the bits
    /// of layerNorm -> linear for the output and every gradient (affine and plain, x's gradient fresh or not).
    func testLayerNormLinear() throws {
        let x = try param([2, 3, 7], scale: 2), g = try param([7], offset: 1), be = try param([7])
        let w = try param([4, 7]), b = try param([4])
        try gradCheck("layerNormLinear", [x, g, be, w, b]) {
            try layerNormLinear(x, gamma: g, beta: be, eps: 1e-6, weight: w, bias: b, tape: $0)
        }
        let x1 = try param([3, 9], scale: 2), w1 = try param([1, 9])
        try gradCheck("layerNormLinear plain, one output", [x1, w1]) {
            try layerNormLinear(x1, gamma: nil, beta: nil, eps: 1e-5, weight: w1, bias: nil, tape: $0)
        }
        // 37 rows x 70: edge tiles in every GEMM; a second use of x (the residual) makes its gradient non-fresh.
        let xs = try param([37, 70], scale: 3), gs = try param([70], offset: 1), bs = try param([70])
        let ws = try param([45, 70], scale: 0.3), bws = try param([45]), wr = try param([45, 70], scale: 0.3)
        for affine in [true, false] {
            func run(fused: Bool) throws -> [[UInt32]] {
                let (gamma, beta) = affine ? (gs, bs) : (nil, nil)
                let inputs = [xs, ws, bws, wr] + (affine ? [gs, bs] : [])
                let tape = Tape(Engine())
                let y = fused
                    ? try layerNormLinear(xs, gamma: gamma, beta: beta, eps: 1e-6, weight: ws, bias: bws, tape: tape)
                    : try linear(layerNorm(xs, gamma: gamma, beta: beta, eps: 1e-6, tape: tape), weight: ws, bias: bws, tape: tape)
                let out = try linear(xs, weight: wr, bias: nil, residual: y, tape: tape)
                for v in inputs { v.zeroGrad() }
                var seedRNG = RandomGenerator(seed: 5)
                try tape.backward(from: out, seed: try seedRNG.uniform(out.shape, low: -1, high: 1))
                return ([y.value] + inputs.map { $0.grad! }).map { $0.withUnsafeBufferPointer { $0.map(\.bitPattern) } }
            }
            let fused = try run(fused: true), separate = try run(fused: false)
            XCTAssertEqual(fused.count, affine ? 7 : 5)
            for i in fused.indices {
                XCTAssertEqual(fused[i], separate[i], "layerNormLinear vs layerNorm -> linear (affine \(affine)): tensor \(i)")
            }
        }
        XCTAssertThrowsError(try layerNormLinear(xs, gamma: gs, beta: bs, eps: 1e-6, weight: try param([4, 69]), bias: nil, tape: Engine().noGrad)) {
            XCTAssert("\($0)".contains("layerNormLinear: x (..., in) and weight (out, in)"), "\($0)")
        }
    }

    func testLayerNorm() throws {
        let x = try param([3, 7], scale: 2), g = try param([7], offset: 1), b = try param([7])
        try gradCheck("layerNorm affine", [x, g, b]) { try layerNorm(x, gamma: g, beta: b, eps: 1e-6, tape: $0) }
        let x2 = try param([2, 2, 9], scale: 2)
        try gradCheck("layerNorm plain", [x2]) { try layerNorm(x2, gamma: nil, beta: nil, eps: 1e-5, tape: $0) }
    }

    func testGeluAndAdd() throws {
        let x = try param([13], scale: 3), y = try param([13])
        try gradCheck("gelu", [x]) { gelu(x, tape: $0) }
        try gradCheck("add", [x, y]) { try add(x, y, tape: $0) }
    }

    func testAttention() throws {
        let qkv = try param([2, 5, 18])  // B 2, n 5, D 6, 2 heads of 3
        try gradCheck("attention", [qkv]) { try attention(qkv, heads: 2, tape: $0) }
        let one = try param([1, 1, 3])
        try gradCheck("attention n=1", [one]) { try attention(one, heads: 1, tape: $0) }
        // Probabilities kept for the backward pass, or recomputed there (the default): the same bits.
        var grads: [[UInt32]] = []
        for keep in [false, true] {
            var engine = Engine()
            engine.attentionKeepsProbabilities = keep
            let tape = Tape(engine)
            let out = try attention(qkv, heads: 2, tape: tape)
            qkv.zeroGrad()
            var seeds = RandomGenerator(seed: 5)
            try tape.backward(from: out, seed: try seeds.uniform(out.shape, low: -1, high: 1))
            grads.append(qkv.grad!.scalars.map(\.bitPattern))
        }
        XCTAssertEqual(grads[0], grads[1], "attention's gradient with recomputed vs kept probabilities")
    }

    func testTokenOps() throws {
        let x = try param([2, 6, 3])
        let m1 = try TokenIndices(batch: 2, count: 3, indices: [0, 2, 5, 1, 2, 3])
        let m2 = try TokenIndices(batch: 2, count: 3, indices: [2, 3, 4, 0, 1, 5])
        try gradCheck("gatherTokens", [x]) { try gatherTokens(x, [m1, m2], tape: $0) }
        let a = try param([2, 3, 4]), b = try param([2, 1, 4])
        try gradCheck("concatTokens", [a, b]) { try concatTokens(a, b, tape: $0) }
        try gradCheck("meanTokens", [a]) { try meanTokens(a, tape: $0) }
    }

    func testGatherTokensMatchesApplyMasks() throws {
        // x[b, t, :] = 100 b + t: the gathered rows are mask-major, then batch.
        var v = try Tensor(zeros: [2, 4, 1])
        for b in 0..<2 { for t in 0..<4 { v[b, t, 0] = Float(100 * b + t) } }
        let m1 = try TokenIndices(batch: 2, count: 2, indices: [0, 3, 1, 2])
        let m2 = try TokenIndices(batch: 2, count: 2, indices: [2, 3, 0, 1])
        let y = try gatherTokens(Variable(v), [m1, m2], tape: Engine().noGrad)
        XCTAssertEqual(y.shape, [4, 2, 1])
        XCTAssertEqual(y.value.scalars, [0, 3, 101, 102, 2, 3, 100, 101])
        XCTAssertThrowsError(try gatherTokens(Variable(v), [try TokenIndices(batch: 2, count: 1, indices: [0, 4])], tape: Engine().noGrad)) {
            XCTAssert("\($0)".contains("index 4 out of range 0..<4"), "\($0)")
        }
    }

    func testBroadcastRepeatSlice() throws {
        let x = try param([2, 3, 4]), table = try param([3, 4]), token = try param([1, 1, 4])
        try gradCheck("addBroadcast (N, D) table", [x, table]) { try addBroadcast(x, table, tape: $0) }
        try gradCheck("addBroadcast (1, 1, D) token", [x, token]) { try addBroadcast(x, token, tape: $0) }
        try gradCheck("repeatBatch", [x]) { try repeatBatch(x, times: 3, tape: $0) }
        try gradCheck("sliceTokens", [x]) { try sliceTokens(x, from: 1, tape: $0) }
        XCTAssertThrowsError(try addBroadcast(x, try param([4, 3]), tape: Engine().noGrad)) {
            XCTAssert("\($0)".contains("trailing part"), "\($0)")
        }
        let r = try repeatBatch(Variable(try Tensor(shape: [2, 1, 1], values: [1, 2])), times: 2, tape: Engine().noGrad)
        XCTAssertEqual(r.value.scalars, [1, 2, 1, 2], "x.repeat(2, 1, 1) tiles the whole batch")
    }

    func testLosses() throws {
        let p = try param([3, 5], scale: 2), t = Variable(try rng.uniform([3, 5], low: -2, high: 2))
        try gradCheck("smoothL1", [p], step: 1e-3) { try smoothL1Loss(p, t, tape: $0) }
        try gradCheck("mse", [p]) { try mseLoss(p, t, tape: $0) }
        // Both inputs trained: the target's gradient is the negated one; p's buffer exists by now (added to),
        // q's does not (written).
        let q = try param([3, 5], scale: 2)
        try gradCheck("smoothL1 (pred and target)", [p, q], step: 1e-3) { try smoothL1Loss(p, q, tape: $0) }
        try gradCheck("mse (pred and target)", [p, q]) { try mseLoss(p, q, tape: $0) }
        let logits = try param([4, 3], scale: 2)
        try gradCheck("softmaxCrossEntropy", [logits]) { try softmaxCrossEntropy(logits, labels: [0, 2, 1, 2], tape: $0) }
        // VICReg's variance and covariance terms: some columns below gamma (spread 0.3), some above (3).
        let spread: [Float] = [0.3, 3, 0.3, 1.5, 0.2]
        let u = try rng.uniform([2, 7, 5], low: -1, high: 1).scalars
        let z = Variable(try Tensor(shape: [2, 7, 5], values: u.indices.map { u[$0] * spread[$0 % 5] }), requiresGrad: true)
        try gradCheck("varianceCovariance", [z], step: 1e-3) {
            try varianceCovarianceLoss(z, varianceWeight: 2.5, covarianceWeight: 0.7, tape: $0)
        }
        try gradCheck("variance only", [z], step: 1e-3) {
            try varianceCovarianceLoss(z, varianceWeight: 1, covarianceWeight: 0, tape: $0)
        }
        // Values by hand: rows (1, 0), (-1, 0), (0, 2), (0, -2): means 0, Var (2/3, 8/3), Cov_01 = 0.
        let h = Variable(try Tensor(shape: [4, 2], values: [1, 0, -1, 0, 0, 2, 0, -2]))
        let vc = try varianceCovarianceLoss(h, varianceWeight: 1, covarianceWeight: 1, eps: 0, tape: Engine().noGrad)
        XCTAssertEqual(Double(vc.value.scalars[0]), (1 - (2.0 / 3).squareRoot()) / 2, accuracy: 1e-6)
        let tilted = Variable(try Tensor(shape: [3, 2], values: [1, 1, 2, 2, 3, 3]))  // Cov = Var = 1, perfectly correlated
        let vt = try varianceCovarianceLoss(tilted, varianceWeight: 0, covarianceWeight: 1, tape: Engine().noGrad)
        XCTAssertEqual(vt.value.scalars[0], 1, accuracy: 1e-6)  // (1/2)(1^2 + 1^2)
        // smooth-L1 values: 0.5 d^2 inside |d| < 1, |d| - 0.5 outside.
        let l = try smoothL1Loss(Variable(try Tensor(shape: [2], values: [0.5, 3])), Variable(try Tensor(shape: [2], values: [0, 0])), tape: Engine().noGrad)
        XCTAssertEqual(l.value.scalars[0], (0.125 + 2.5) / 2, accuracy: 1e-7)
    }

    func testPatchEmbed() throws {
        let images = try param([2, 2, 4, 6]), w = try param([3, 2, 2, 2]), b = try param([3])
        try gradCheck("patchEmbed", [images, w, b]) { try patchEmbed(images, weight: w, bias: b, patch: 2, tape: $0) }
        // Equivalence with the convolution: token k = i * (W/P) + j, features in (c, ky, kx) order.
        let y = try patchEmbed(images, weight: w, bias: b, patch: 2, tape: Engine().noGrad)
        XCTAssertEqual(y.shape, [2, 6, 3])
        var ref = Double(b.value[1])
        for c in 0..<2 { for ky in 0..<2 { for kx in 0..<2 {
            ref += Double(w.value[1, c, ky, kx]) * Double(images.value[1, c, 2 + ky, 4 + kx])
        } } }
        XCTAssertEqual(Double(y.value[1, 1 * 3 + 2, 1]), ref, accuracy: 1e-5)
    }

    /// A whole pre-norm block: y = x + proj(attn(qkv(LN1 x))); out = y + fc2(gelu(fc1(LN2 y))).
    func testTransformerBlockEndToEnd() throws {
        let (d, heads) = (6, 2)
        let x = try param([2, 4, d])
        let g1 = try param([d], scale: 0.2, offset: 1), b1 = try param([d], scale: 0.2)
        let wqkv = try param([3 * d, d], scale: 0.5), bqkv = try param([3 * d], scale: 0.1)
        let wp = try param([d, d], scale: 0.5), bp = try param([d], scale: 0.1)
        let g2 = try param([d], scale: 0.2, offset: 1), b2 = try param([d], scale: 0.2)
        let w1 = try param([4 * d, d], scale: 0.5), bb1 = try param([4 * d], scale: 0.1)
        let w2 = try param([d, 4 * d], scale: 0.5), bb2 = try param([d], scale: 0.1)
        let all = [x, g1, b1, wqkv, bqkv, wp, bp, g2, b2, w1, bb1, w2, bb2]
        try gradCheck("block", all, tolerance: 4e-3) { t in
            let h = try layerNorm(x, gamma: g1, beta: b1, eps: 1e-6, tape: t)
            let a = try attention(try linear(h, weight: wqkv, bias: bqkv, tape: t), heads: heads, tape: t)
            let y = try add(x, try linear(a, weight: wp, bias: bp, tape: t), tape: t)
            let h2 = try layerNorm(y, gamma: g2, beta: b2, eps: 1e-6, tape: t)
            let m = try linear(gelu(try linear(h2, weight: w1, bias: bb1, tape: t), tape: t), weight: w2, bias: bb2, tape: t)
            return try add(y, m, tape: t)
        }
    }

    /// An activation whose value no backward pass reads (here: the input of addBroadcast, then of a gather) is
    /// freed once the forward pass drops it, and its gradient still flows through its node; one that a backward
    /// pass reads (the input of gelu) lives until that pass has run; the tape frees each entry as it runs.
    func testActivationsLiveOnlyAsLongAsABackwardPassReadsThem() throws {
        let x = try param([2, 4, 3]), table = try param([4, 3])
        let mask = try TokenIndices(batch: 2, count: 2, indices: [0, 3, 1, 2])
        let tape = Tape(Engine())
        weak var routedOnly: Variable?, readBack: Variable?
        let out: Variable = try {
            let a = gelu(x, tape: tape)               // gelu keeps x; a is only routed by addBroadcast
            let b = try addBroadcast(a, table, tape: tape)
            let c = try gatherTokens(b, [mask], tape: tape)
            let d = gelu(c, tape: tape)               // gelu keeps c
            (routedOnly, readBack) = (a, c)
            return d
        }()
        XCTAssertNil(routedOnly, "a value that no backward pass reads must be freed after the forward pass")
        XCTAssertNotNil(readBack, "a value that gelu's backward pass reads must live until then")
        var seeds = RandomGenerator(seed: 9)
        try tape.backward(from: out, seed: try seeds.uniform(out.shape, low: -1, high: 1))
        XCTAssertNil(readBack, "the tape must drop each entry once it has run")
        XCTAssertEqual(tape.count, 0)
        XCTAssertNotNil(x.grad)
        XCTAssertNotNil(table.grad)
        // The same gradients as with every activation held by the caller.
        let heldTape = Tape(Engine())
        let a = gelu(x, tape: heldTape), b = try addBroadcast(a, table, tape: heldTape)
        let c = try gatherTokens(b, [mask], tape: heldTape), d = gelu(c, tape: heldTape)
        let (gx, gt) = (x.grad!.scalars, table.grad!.scalars)
        x.zeroGrad(); table.zeroGrad()
        seeds = RandomGenerator(seed: 9)
        try heldTape.backward(from: d, seed: try seeds.uniform(d.shape, low: -1, high: 1))
        XCTAssertEqual(x.grad!.scalars, gx)
        XCTAssertEqual(table.grad!.scalars, gt)
        withExtendedLifetime((a, b, c)) {}
    }

    func testNoGradModeRecordsNothing() throws {
        let x = try param([2, 3]), w = try param([4, 3])
        let tape = Tape(Engine())
        tape.isRecording = false
        _ = try linear(x, weight: w, bias: nil, tape: tape)
        XCTAssertEqual(tape.count, 0)
        tape.isRecording = true
        let frozen = Variable(w.value)  // no gradient wanted: nothing recorded either
        _ = try linear(Variable(x.value), weight: frozen, bias: nil, tape: tape)
        XCTAssertEqual(tape.count, 0)
        _ = try linear(x, weight: w, bias: nil, tape: tape)
        XCTAssertEqual(tape.count, 1)
    }

    func testShapeErrorsAreClear() throws {
        let x = try param([2, 3]), w = try param([4, 5])
        XCTAssertThrowsError(try linear(x, weight: w, bias: nil, tape: Engine().noGrad)) {
            XCTAssert("\($0)".contains("linear: x (..., in) and weight (out, in): incompatible shapes [2, 3] and [4, 5]"), "\($0)")
        }
        XCTAssertThrowsError(try attention(try param([1, 2, 9]), heads: 2, tape: Engine().noGrad)) {
            XCTAssert("\($0)".contains("D divisible by heads 2"), "\($0)")
        }
        XCTAssertThrowsError(try Tape(Engine()).backward(from: x)) { XCTAssert("\($0)".contains("scalar loss"), "\($0)") }
    }
}
