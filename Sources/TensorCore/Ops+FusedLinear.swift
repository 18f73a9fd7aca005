import CPUKernels

// Linear layers whose input is computed while the GEMM packs it (`GEMMPrologue`): the input is never
// written out, neither in the forward pass nor for the backward pass, which computes it again the same way
// for the weight gradient. Same bits as the separate ops (tested).

/// fc2 applied to GELU(h), plus `residual` when given: `linear(gelu(h), ...)` that keeps only h (fc1's
/// output) for the backward pass. GELU's output, as wide as h, was the largest activation a block kept.
/// The input gradient takes GELU's derivative in its GEMM's epilogue (as `mlp` does): dh = (dy W) * GELU'(h).
package func geluLinear(
    _ h: Variable, weight w: Variable, bias b: Variable?, residual r: Variable? = nil, tape: Tape
) throws -> Variable {
    let kernels = tape.engine.kernels
    let (outF, inF, outShape, rows) = try linearShapes("geluLinear", h, w, b, r)
    let count = h.value.count
    var y = try Tensor(uninitialized: outShape, pool: tape.engine.storage)
    let yp = mutablePointer(&y)
    h.withValue { linearProduct(yp, x: $0, prologue: .gelu, weight: w, bias: b, residual: r, rows: rows, kernels: kernels) }
    let mnk = 2 * Double(rows) * Double(inF) * Double(outF)
    let epilogueOps = Double(rows * outF) * Double((b == nil ? 0 : 1) + (r == nil ? 0 : 1))
    let gelu = OpCost.elementwise(count, 20, 30)
    let residualNode = r?.node
    return opOutput(y, inputs: h, w, b, r, tape: tape, op: "geluLinear",
                    cost: OpCost(forward: mnk + epilogueOps + gelu.forward,
                                 backward: 2 * mnk + epilogueOps + gelu.forward + gelu.backward)) { dy in
        if let residualNode { passGradient(dy, to: residualNode, kernels: kernels) }
        h.withValue { hp in
            if h.requiresGrad {
                h.withGradForWrite { dh, fresh in
                    w.withValue { wp in
                        kernels.scratch.withFloats(fresh ? 0 : count) { t in
                            sgemm(c: fresh ? dh : t, ldc: max(1, inF), a: dy, lda: max(1, outF), transA: false, b: wp,
                                  ldb: max(1, inF), transB: false, m: rows, n: inF, k: outF, epilogue: .geluBackward(x: hp), context: kernels)
                            if !fresh { accumulate(dh, UnsafePointer(t), count: count, context: kernels) }
                        }
                    }
                }
            }
            linearParameterGradients(dy: dy, x: hp, prologue: .gelu, weight: w, bias: b, rows: rows, kernels: kernels)
        }
    }
}

/// A Linear layer on LayerNorm(x): `linear(layerNorm(x, ...), ...)` with the same bits, that keeps only the
/// row statistics (mean, rstd) beside x, which the LayerNorm's backward pass needs anyway. A pre-norm block's
/// norm1 -> qkv and norm2 -> fc1.
package func layerNormLinear(
    _ x: Variable, gamma: Variable?, beta: Variable?, eps: Float, weight w: Variable, bias b: Variable?, tape: Tape
) throws -> Variable {
    let kernels = tape.engine.kernels
    let dim = x.shape.last ?? 0
    try check(dim > 0, "layerNormLinear: x (..., D) with D > 0", x.shape, [])
    if let gamma { try check(gamma.value.count == dim, "layerNormLinear: gamma (D)", gamma.shape, x.shape) }
    if let beta { try check(beta.value.count == dim, "layerNormLinear: beta (D)", beta.shape, x.shape) }
    let (outF, _, outShape, rows) = try linearShapes("layerNormLinear", x, w, b, nil)
    var mean = try Tensor(uninitialized: [rows], pool: tape.engine.storage), rstd = try Tensor(uninitialized: [rows], pool: tape.engine.storage)
    let mp = mutablePointer(&mean), rp = mutablePointer(&rstd)
    var y = try Tensor(uninitialized: outShape, pool: tape.engine.storage)
    let yp = mutablePointer(&y)
    // The prologue on x: as `layerNormForward`, the affine form only with both gamma and beta.
    func withNorm<R>(_ body: (GEMMPrologue) -> R) -> R {
        withOptionalPointer(gamma?.value) { gp in
            withOptionalPointer(beta?.value) { bp in
                body(.layerNorm(mean: mp, rstd: rp, gamma: gp, beta: bp))
            }
        }
    }
    x.withValue { xp in
        layerNormStatistics(mean: mp, rstd: rp, xp, rows: rows, dim: dim, eps: eps, context: kernels)
        withNorm { linearProduct(yp, x: xp, prologue: $0, weight: w, bias: b, residual: nil, rows: rows, kernels: kernels) }
    }
    let mnk = 2 * Double(rows) * Double(dim) * Double(outF)
    let norm = OpCost.elementwise(x.value.count, 8, 12)
    let biasOps = b == nil ? 0 : Double(rows * outF)
    return opOutput(y, inputs: x, gamma, beta, w, b, tape: tape, op: "layerNormLinear",
                    cost: OpCost(forward: mnk + biasOps + norm.forward,
                                 backward: 2 * mnk + biasOps + norm.forward + norm.backward)) { dy in
        // In the separate ops' order: the Linear's gradients (input, weight, bias), then the LayerNorm's.
        let wantsNorm = x.requiresGrad || gamma?.requiresGrad == true || beta?.requiresGrad == true
        kernels.scratch.withFloats(wantsNorm ? rows * dim : 0) { dn in  // gradient of the LayerNorm's output
            if wantsNorm {
                w.withValue { wp in
                    sgemm(c: dn, ldc: dim, a: dy, lda: max(1, outF), transA: false, b: wp, ldb: dim, transB: false,
                          m: rows, n: dim, k: outF, context: kernels)
                }
            }
            x.withValue { xp in
                withNorm { linearParameterGradients(dy: dy, x: xp, prologue: $0, weight: w, bias: b, rows: rows, kernels: kernels) }
            }
            if wantsNorm {
                layerNormGradients(dy: dn, x: x, gamma: gamma, beta: beta, mean: mp, rstd: rp, rows: rows, dim: dim, kernels: kernels)
            }
        }
        _ = (mean, rstd)  // keep the saved statistics alive until the backward pass
    }
}
