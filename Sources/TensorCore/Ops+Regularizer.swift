import CPUKernels

/// VICReg's variance and covariance terms (Bardes, Ponce & LeCun, ICLR 2022) over the rows of x (..., D), the
/// regulariser C-JEPA (arXiv 2410.19560) adds to I-JEPA against collapse:
///   varianceWeight * (1/D) sum_j max(0, gamma - sqrt(Var_j + eps))
/// + covarianceWeight * (1/D) sum_{i != j} Cov_ij^2,
/// with the unbiased covariance of the rows (n >= 2 of them). Scalar output. The covariance and the gradient
/// are GEMMs over the centred rows (2 n D^2 FLOPs each); the small D x D part is done in Double.
package func varianceCovarianceLoss(
    _ x: Variable, varianceWeight: Float, covarianceWeight: Float, gamma: Float = 1, eps: Float = 1e-4, tape: Tape
) throws -> Variable {
    let kernels = tape.engine.kernels
    let d = x.shape.last ?? 0, n = d > 0 ? x.value.count / d : 0
    try check(d > 0 && n >= 2, "varianceCovarianceLoss: (..., D) with at least 2 rows", x.shape, [])
    // Centred rows (n, D), means accumulated in Double.
    var centred = try Tensor(uninitialized: [n, d], pool: tape.engine.storage)
    x.withValue { p in
        centred.withUnsafeMutableBufferPointer { c in
            var mean = [Double](repeating: 0, count: d)
            for r in 0..<n { for j in 0..<d { mean[j] += Double(p[r * d + j]) } }
            for j in 0..<d { mean[j] /= Double(n) }
            for r in 0..<n { for j in 0..<d { c[r * d + j] = Float(Double(p[r * d + j]) - mean[j]) } }
        }
    }
    // (D, D) covariance: centred^T centred / (n - 1).
    var cov = try Tensor(uninitialized: [d, d], pool: tape.engine.storage)
    cov.withUnsafeMutableBufferPointer { c in
        centred.withUnsafeBufferPointer { a in
            sgemm(c: c.baseAddress!, ldc: d, a: a.baseAddress!, lda: d, transA: true, b: a.baseAddress!, ldb: d,
                  transB: false, m: d, n: d, k: n, alpha: 1 / Float(n - 1), context: kernels)
        }
    }
    // The loss, and G = dLoss/dCov (symmetric), from which dLoss/dx = 2 / (n - 1) centred G. The centring adds
    // nothing to the gradient: the columns of centred G sum to zero as those of centred do.
    var g = try Tensor(zeros: [d, d])
    var variance = 0.0, covariance = 0.0
    let wv = Double(varianceWeight), wc = Double(covarianceWeight), dd = Double(d)
    cov.withUnsafeBufferPointer { c in
        g.withUnsafeMutableBufferPointer { gm in
            for i in 0..<d {
                for j in 0..<d where j != i {
                    let cij = Double(c[i * d + j])
                    covariance += cij * cij
                    gm[i * d + j] = Float(wc * 2 * cij / dd)
                }
                let std = (Double(c[i * d + i]) + Double(eps)).squareRoot()
                if std < Double(gamma) {
                    variance += Double(gamma) - std
                    gm[i * d + i] = Float(-wv / (2 * dd * std))
                }
            }
        }
    }
    let value = wv * variance / dd + wc * covariance / dd
    let t = recording(tape, x)
    let out = output(try Tensor(shape: [1], values: [Float(value)]), t)
    let flops = 2 * Double(n) * Double(d) * Double(d)
    let run = profiled(tape.engine.profiler, "varianceCovarianceLoss", cost: OpCost(forward: flops, backward: flops), bytes: 8 * n * d) {
        [weak node = out.node] in
        guard let up = node?.grad?.scalars.first, x.requiresGrad else { return }
        centred.withUnsafeBufferPointer { a in
            g.withUnsafeBufferPointer { gm in
                x.withGradForWrite { dx, fresh in
                    sgemm(c: dx, ldc: d, a: a.baseAddress!, lda: d, transA: false, b: gm.baseAddress!, ldb: d,
                          transB: false, m: n, n: d, k: d, alpha: up * 2 / Float(n - 1), beta: fresh ? 0 : 1, context: kernels)
                }
            }
        }
    }
    t?.record(releasing: out, inputs: [x], run)
    return out
}
