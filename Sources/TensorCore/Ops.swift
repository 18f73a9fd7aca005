import CPUKernels

// Differentiable ops. Each takes its inputs as Variables and a Tape, whose engine runs its kernels; with a recording tape and an
// input that requires a gradient, it records a backward closure that ADDS into the inputs' gradients.
// Layouts are row-major; shapes are checked up front and mismatches throw TensorError with both shapes.

@inline(__always)
func output(_ t: Tensor, _ tape: Tape?) -> Variable {
    let v = Variable(t, requiresGrad: tape != nil)
    v.retainsGrad = false
    v.node.pool = tape?.engine.storage
    return v
}

@inline(__always)
func mutablePointer(_ t: inout Tensor) -> UnsafeMutablePointer<Float> {
    t.withUnsafeMutableBufferPointer { $0.baseAddress! }  // storage is uniquely owned by the op here
}

/// Wraps `value` as an op's output. With a recording tape and an input that wants a gradient, `backward(dy)`
/// runs in the backward pass with the output's gradient and adds into the inputs' gradients.
/// `op` and `cost` name the op and estimate its FLOPs for the profiler (`OpProfiler`), which also counts the
/// bytes of the inputs and the output as the bytes a pass moves.
func opOutput(
    _ value: Tensor, inputs: Variable?..., tape: Tape, op: String, cost: OpCost = .zero,
    backward: @escaping (_ dy: UnsafePointer<Float>) -> Void
) -> Variable {
    let t = recordingTape(tape, inputs)
    let out = output(value, t)
    let profiler = tape.engine.profiler
    let bytes = profiler == nil ? 0 : 4 * (value.count + inputs.reduce(0) { $0 + ($1?.value.count ?? 0) })
    let run = profiled(profiler, op, cost: cost, bytes: bytes) { [weak node = out.node] in
        guard let dyT = node?.grad else { return }
        dyT.withUnsafeBufferPointer { backward($0.baseAddress!) }
    }
    t?.record(releasing: out, inputs: inputs, run)
    return out
}

/// The tape when it records and some input wants a gradient (the op's backward will run), else nil.
func recordingTape(_ tape: Tape, _ inputs: [Variable?]) -> Tape? {
    tape.isRecording && inputs.contains { $0?.requiresGrad == true } ? tape : nil
}

/// `opOutput` for a one-input op: `backward(dx, dy)` adds into x's gradient (zeroed on first use).
func unaryOutput(
    _ value: Tensor, of x: Variable, tape: Tape, op: String, cost: OpCost = .zero,
    backward: @escaping (_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>) -> Void
) -> Variable {
    // x's node only: a backward that reads x's value captures x itself.
    let node = x.node
    return opOutput(value, inputs: x, tape: tape, op: op, cost: cost) { dy in node.withGrad { dx in backward(dx, dy) } }
}

func check(_ ok: Bool, _ op: String, _ a: [Int], _ b: [Int]) throws {
    if !ok { throw TensorError.incompatibleShapes(operation: op, a, b) }
}

// MARK: - Linear

/// y = x W^T + b over the last axis: x (..., in), W (out, in) as PyTorch stores it, b (out). y (..., out).
///
/// With `residual` (the shape of the output) the result is `residual + (x W^T + b)`: a transformer block's
/// `x + proj(...)` and `y + fc2(...)` in one op. The residual is added in the GEMM's last store, after the bias,
/// which gives the bits of a separate `add` while skipping its pass over memory (two reads and a write of the
/// block's width per token); its gradient is dy, as `add` would pass it.
package func linear(
    _ x: Variable, weight w: Variable, bias b: Variable?, residual r: Variable? = nil, tape: Tape
) throws -> Variable {
    let kernels = tape.engine.kernels
    let (outF, inF, outShape, rows) = try linearShapes("linear", x, w, b, r)
    var y = try Tensor(uninitialized: outShape, pool: tape.engine.storage)
    let yp = mutablePointer(&y)
    x.withValue { linearProduct(yp, x: $0, prologue: nil, weight: w, bias: b, residual: r, rows: rows, kernels: kernels) }
    let mnk = 2 * Double(rows) * Double(inF) * Double(outF)
    let epilogueOps = Double(rows * outF) * Double((b == nil ? 0 : 1) + (r == nil ? 0 : 1))
    let residualNode = r?.node  // the residual's gradient is dy: its value is not needed
    return opOutput(y, inputs: x, w, b, r, tape: tape, op: "linear",
                    cost: OpCost(forward: mnk + epilogueOps, backward: 2 * mnk + epilogueOps)) { dy in
        if let residualNode { passGradient(dy, to: residualNode, kernels: kernels) }
        linearBackward(dy: dy, x: x, weight: w, bias: b, rows: rows, kernels: kernels)
    }
}

/// The shapes of a Linear layer's call (x (..., in), weight (out, in), bias (out), residual of the output's
/// shape), checked with messages that name `op`: (out, in, the output's shape, rows).
func linearShapes(
    _ op: String, _ x: Variable, _ w: Variable, _ b: Variable?, _ r: Variable?
) throws -> (outF: Int, inF: Int, outShape: [Int], rows: Int) {
    try check(w.shape.count == 2 && x.shape.last == w.shape[1], "\(op): x (..., in) and weight (out, in)", x.shape, w.shape)
    let (outF, inF) = (w.shape[0], w.shape[1])
    if let b { try check(b.value.count == outF, "\(op): bias (out)", b.shape, w.shape) }
    let outShape = Array(x.shape.dropLast()) + [outF]
    if let r { try check(r.shape == outShape, "\(op): residual of the output's shape", r.shape, outShape) }
    return (outF, inF, outShape, x.value.count / max(1, inF))
}

/// y = f(x) W^T + b (+ residual), f the GEMM prologue that computes the Linear's input from x (nil: x itself).
/// The bias and the residual ride in the GEMM's store: same bits as separate passes, fewer trips through memory.
func linearProduct(
    _ y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, prologue: GEMMPrologue?, weight w: Variable,
    bias b: Variable?, residual r: Variable?, rows: Int, kernels: KernelContext
) {
    let (outF, inF) = (w.shape[0], w.shape[1])
    w.withWeightOperand(for: kernels) { wp, packed in
        withOptionalPointer(b?.value) { bp in
            withOptionalPointer(r?.value) { rp in
                sgemm(c: y, ldc: max(1, outF), a: x, lda: max(1, inF), transA: false, b: wp, ldb: max(1, inF),
                      transB: true, m: rows, n: outF, k: inF, bias: bp, residual: rp, aPrologue: prologue,
                      packedB: packed, context: kernels)
            }
        }
    }
}

/// The backward pass of y = x W^T + b given dy (rows, out): x's gradient (written when fresh, else added),
/// W's and b's (added), each only when wanted.
func linearBackward(dy: UnsafePointer<Float>, x: Variable, weight w: Variable, bias b: Variable?, rows: Int, kernels: KernelContext) {
    let (outF, inF) = (w.shape[0], w.shape[1])
    if x.requiresGrad {
        x.withGradForWrite { dx, fresh in
            w.withValue { wp in
                sgemm(c: dx, ldc: max(1, inF), a: dy, lda: max(1, outF), transA: false, b: wp, ldb: max(1, inF),
                      transB: false, m: rows, n: inF, k: outF, beta: fresh ? 0 : 1, context: kernels)
            }
        }
    }
    x.withValue { linearParameterGradients(dy: dy, x: $0, prologue: nil, weight: w, bias: b, rows: rows, kernels: kernels) }
}

/// W's gradient += dy^T f(x) and b's += the column sums of dy, each only when wanted; f is the GEMM prologue
/// that computed the Linear's input from x (nil: x itself).
func linearParameterGradients(
    dy: UnsafePointer<Float>, x: UnsafePointer<Float>, prologue: GEMMPrologue?, weight w: Variable, bias b: Variable?, rows: Int, kernels: KernelContext
) {
    let (outF, inF) = (w.shape[0], w.shape[1])
    if w.requiresGrad {
        // Written (beta 0) where the gradient is fresh: the first contribution of a step, after the optimizer
        // zeroed it (`GradNode.holdsZeros`); added otherwise (a weight shared by several calls).
        w.withGradForWrite { dw, fresh in
            sgemm(c: dw, ldc: max(1, inF), a: dy, lda: max(1, outF), transA: true, b: x, ldb: max(1, inF),
                  transB: false, m: outF, n: inF, k: rows, beta: fresh ? 0 : 1, bPrologue: prologue, context: kernels)
        }
    }
    if let b, b.requiresGrad { b.withGrad { biasBackward(dbias: $0, dy: dy, rows: rows, cols: outF, context: kernels) } }
}

// MARK: - LayerNorm

/// LayerNorm over the last axis, biased variance; gamma/beta nil for the non-affine form.
package func layerNorm(
    _ x: Variable, gamma: Variable?, beta: Variable?, eps: Float, tape: Tape
) throws -> Variable {
    let kernels = tape.engine.kernels
    let dim = x.shape.last ?? 0
    try check(dim > 0, "layerNorm: x (..., D) with D > 0", x.shape, [])
    if let gamma { try check(gamma.value.count == dim, "layerNorm: gamma (D)", gamma.shape, x.shape) }
    if let beta { try check(beta.value.count == dim, "layerNorm: beta (D)", beta.shape, x.shape) }
    let rows = x.value.count / dim
    var y = try Tensor(uninitialized: x.shape, pool: tape.engine.storage)
    var mean = try Tensor(uninitialized: [rows], pool: tape.engine.storage), rstd = try Tensor(uninitialized: [rows], pool: tape.engine.storage)
    let yp = mutablePointer(&y), mp = mutablePointer(&mean), rp = mutablePointer(&rstd)
    x.withValue { xp in
        let g = gamma?.value, b = beta?.value
        withOptionalPointer(g) { gp in
            withOptionalPointer(b) { bp in
                layerNormForward(yp, mean: mp, rstd: rp, xp, gamma: gp, beta: bp, rows: rows, dim: dim, eps: eps, context: kernels)
            }
        }
    }
    return opOutput(y, inputs: x, gamma, beta, tape: tape, op: "layerNorm", cost: .elementwise(x.value.count, 8, 12)) { dy in
        layerNormGradients(dy: dy, x: x, gamma: gamma, beta: beta, mean: mp, rstd: rp, rows: rows, dim: dim, kernels: kernels)
        _ = (mean, rstd)  // keep the saved statistics alive until the backward pass
    }
}

/// LayerNorm's backward pass: adds the gradients of x, gamma and beta (those that want one) from dy, the
/// gradient of the LayerNorm's output.
func layerNormGradients(
    dy: UnsafePointer<Float>, x: Variable, gamma: Variable?, beta: Variable?,
    mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int, dim: Int, kernels: KernelContext
) {
    withGradOrNil(x) { dx in
        withGradOrNil(gamma) { dg in
            withGradOrNil(beta) { db in
                withOptionalPointer(gamma?.value) { gp in
                    x.withValue { xp in
                        kernels.scratch.withFloats(dx == nil ? x.value.count : 0) { sink in
                            layerNormBackward(dx: dx ?? sink, dgamma: dg, dbeta: db, dy: dy, x: xp,
                                              mean: mean, rstd: rstd, gamma: gp, rows: rows, dim: dim, context: kernels)
                        }
                    }
                }
            }
        }
    }
}

@inline(__always)
func withOptionalPointer<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let t else { return body(nil) }
    return t.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Calls body with the variable's gradient buffer when it wants one, else nil.
@inline(__always)
func withGradOrNil(_ v: Variable?, _ body: (UnsafeMutablePointer<Float>?) -> Void) {
    guard let v, v.requiresGrad else { return body(nil) }
    v.withGrad { body($0) }
}

// MARK: - Elementwise

/// Exact-erf GELU.
package func gelu(_ x: Variable, tape: Tape) -> Variable {
    let kernels = tape.engine.kernels
    var y = (try? Tensor(uninitialized: x.shape, pool: tape.engine.storage)) ?? Tensor.zeros(like: x.value)
    let yp = mutablePointer(&y)
    x.withValue { geluForward(yp, $0, count: x.value.count, context: kernels) }
    return opOutput(y, inputs: x, tape: tape, op: "gelu", cost: .elementwise(x.value.count, 20, 30)) { dy in
        x.withGradForWrite { dx, fresh in
            x.withValue { geluBackward(dx: dx, dy: dy, x: $0, count: x.value.count, accumulate: !fresh, context: kernels) }
        }
    }
}

/// a + b, same shapes (the residual connection).
package func add(_ a: Variable, _ b: Variable, tape: Tape) throws -> Variable {
    let kernels = tape.engine.kernels
    try check(a.shape == b.shape, "add: same shapes", a.shape, b.shape)
    var y = try Tensor(uninitialized: a.shape, pool: tape.engine.storage)
    let yp = mutablePointer(&y)
    a.withValue { ap in b.withValue { bp in addElementwise(yp, ap, bp, count: a.value.count, context: kernels) } }
    let (an, bn) = (a.node, b.node)
    return opOutput(y, inputs: a, b, tape: tape, op: "add", cost: .elementwise(a.value.count, 1, 2)) { dy in
        passGradient(dy, to: an, kernels: kernels)
        passGradient(dy, to: bn, kernels: kernels)
    }
}

/// v.grad += dy (dy copied into a fresh gradient): the backward pass of an identity path (`add`, a residual).
func passGradient(_ dy: UnsafePointer<Float>, to v: GradNode, kernels: KernelContext) {
    guard v.requiresGrad else { return }
    let count = v.count
    v.withGradForWrite { g, fresh in
        if fresh { g.update(from: dy, count: count) } else { accumulate(g, dy, count: count, context: kernels) }
    }
}
