import CPUKernels

// MARK: - MLP

/// A transformer block's MLP as one op: y = fc2(GELU(fc1(x))), plus `residual` when given; weights (out, in)
/// as PyTorch stores them. The same bits as `linear`, `gelu`, `linear` in a row, in fewer passes over the
/// (tokens, hidden) activations, the widest tensors of a block:
/// - forward: GELU is fc1's GEMM epilogue (`GEMMEpilogue`), applied to each finished block of C while it is
///   in L2; the pre-activation is kept only when a gradient will need it, else GELU runs in place;
/// - backward: GELU's derivative is the epilogue of the GEMM that computes the hidden gradient (dy W2),
///   so that gradient is written once, already multiplied.
/// Faster than the separate ops forward, slower for forward + backward (`ijepa bench mlp`; docs/performance.md,
/// Decisions), so `MLP` uses this op only when no tape records.
package func mlp(
    _ x: Variable, fc1 w1: Variable, bias1 b1: Variable?, fc2 w2: Variable, bias2 b2: Variable?,
    residual r: Variable? = nil, tape: Tape
) throws -> Variable {
    let kernels = tape.engine.kernels
    try check(w1.shape.count == 2 && x.shape.last == w1.shape[1], "mlp: x (..., in) and fc1 (hidden, in)", x.shape, w1.shape)
    let (hidden, inF) = (w1.shape[0], w1.shape[1])
    try check(w2.shape.count == 2 && w2.shape[1] == hidden, "mlp: fc1 (hidden, in) and fc2 (out, hidden)", w1.shape, w2.shape)
    let outF = w2.shape[0]
    if let b1 { try check(b1.value.count == hidden, "mlp: bias1 (hidden)", b1.shape, w1.shape) }
    if let b2 { try check(b2.value.count == outF, "mlp: bias2 (out)", b2.shape, w2.shape) }
    let outShape = Array(x.shape.dropLast()) + [outF]
    if let r { try check(r.shape == outShape, "mlp: residual of the output's shape", r.shape, outShape) }
    let rows = x.value.count / max(1, inF)
    let hiddenShape = Array(x.shape.dropLast()) + [hidden]
    let recording = recordingTape(tape, [x, w1, b1, w2, b2, r]) != nil

    // a = x W1^T + b1 (kept only for the backward pass), h = GELU(a).
    var h = try Tensor(uninitialized: hiddenShape, pool: tape.engine.storage)
    let hp = mutablePointer(&h)
    var a: Tensor? = nil, ap = hp  // without a gradient, GELU runs in place
    if recording {
        var t = try Tensor(uninitialized: hiddenShape, pool: tape.engine.storage)
        ap = mutablePointer(&t)
        a = t
    }
    x.withValue { xp in
        w1.withWeightOperand(for: kernels) { wp, packed in
            withOptionalPointer(b1?.value) { bp in
                sgemm(c: ap, ldc: max(1, hidden), a: xp, lda: max(1, inF), transA: false, b: wp, ldb: max(1, inF),
                      transB: true, m: rows, n: hidden, k: inF, bias: bp, epilogue: .gelu(output: hp),
                      packedB: packed, context: kernels)
            }
        }
    }
    // y = h W2^T + b2 (+ r).
    var y = try Tensor(uninitialized: outShape, pool: tape.engine.storage)
    let yp = mutablePointer(&y)
    w2.withWeightOperand(for: kernels) { wp, packed in
        withOptionalPointer(b2?.value) { bp in
            withOptionalPointer(r?.value) { rp in
                sgemm(c: yp, ldc: max(1, outF), a: hp, lda: max(1, hidden), transA: false, b: wp, ldb: max(1, hidden),
                      transB: true, m: rows, n: outF, k: hidden, bias: bp, residual: rp, packedB: packed, context: kernels)
            }
        }
    }
    let mnk = 2 * Double(rows) * Double(hidden) * Double(inF + outF)
    let elementwise = Double(rows * hidden) * (b1 == nil ? 0 : 1) + Double(rows * outF) * Double((b2 == nil ? 0 : 1) + (r == nil ? 0 : 1))
    let gelu = OpCost.elementwise(rows * hidden, 20, 30)
    let hiddenVariable = Variable(h, requiresGrad: false)  // fc2's input, for `linearBackward`
    let residualNode = r?.node
    return opOutput(y, inputs: x, w1, b1, w2, b2, r, tape: tape, op: "mlp",
                    cost: OpCost(forward: mnk + elementwise + gelu.forward, backward: 2 * mnk + elementwise + gelu.backward)) { dy in
        if let residualNode { passGradient(dy, to: residualNode, kernels: kernels) }
        // In the separate ops' order: the hidden gradient first (while dy is in cache), then fc2's weights.
        let wantsHidden = x.requiresGrad || w1.requiresGrad || b1?.requiresGrad == true
        var da: Tensor? = nil, dap: UnsafeMutablePointer<Float>? = nil
        if wantsHidden {
            guard var t = try? Tensor(uninitialized: hiddenShape, pool: tape.engine.storage) else { fatalError("mlp: no memory for the hidden gradient") }
            dap = mutablePointer(&t)
            da = t
        }
        if let dap {
            // da = (dy W2) * GELU'(a), in the GEMM's epilogue.
            w2.withValue { wp in
                sgemm(c: dap, ldc: max(1, hidden), a: dy, lda: max(1, outF), transA: false, b: wp, ldb: max(1, hidden),
                      transB: false, m: rows, n: hidden, k: outF, epilogue: .geluBackward(x: ap), context: kernels)
            }
        }
        linearBackward(dy: dy, x: hiddenVariable, weight: w2, bias: b2, rows: rows, kernels: kernels)
        if let dap { linearBackward(dy: dap, x: x, weight: w1, bias: b1, rows: rows, kernels: kernels) }
        withExtendedLifetime(da) {}
        withExtendedLifetime(a) {}  // the pre-activation lives until the backward pass
    }
}
