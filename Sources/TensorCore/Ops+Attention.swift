import CPUKernels

/// Multi-head self-attention core, fused per (batch, head): softmax(q k^T (D/h)^-0.5) v.
///
/// qkv (B, n, 3D) is the output of the qkv Linear; channel c = s D + head (D/h) + t with s in {q, k, v} (the
/// official reshape to (B, n, 3, h, D/h)). The output (B, n, D) has channel head (D/h) + t, ready for `proj`.
/// The attention probabilities (B, h, n, n) are kept for the backward pass.
public func attention(_ qkv: Variable, heads: Int, tape: Tape?) throws -> Variable {
    try check(qkv.shape.count == 3 && heads > 0 && qkv.shape[2] % (3 * heads) == 0,
              "attention: qkv (B, n, 3D) with D divisible by heads \(heads)", qkv.shape, [heads])
    let (batch, n, d) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
    let dh = d / heads
    let scale = 1 / Float(dh).squareRoot()
    var y = try Tensor(uninitialized: [batch, n, d])
    var probs = try Tensor(uninitialized: [batch, heads, n, n])
    let yp = mutablePointer(&y), pp = mutablePointer(&probs)
    let threads = 2 * batch * heads * n * n * dh < 4_000_000 ? 1 : Parallel.maxThreads
    qkv.withValue { x in
        Parallel.forEach(tasks: batch * heads, threads: threads) { task, _ in
            let (b, h) = (task / heads, task % heads)
            let q = x + b * n * 3 * d + h * dh, k = q + d, v = q + 2 * d
            let p = pp + task * n * n  // (n, n)
            sgemm(c: p, ldc: n, a: q, lda: 3 * d, transA: false, b: k, ldb: 3 * d, transB: true,
                  m: n, n: n, k: dh, alpha: scale, threads: 1)
            for r in 0..<n { softmaxRow(p + r * n, p + r * n, cols: n, scale: 1) }
            sgemm(c: yp + b * n * d + h * dh, ldc: d, a: p, lda: n, transA: false, b: v, ldb: 3 * d, transB: false,
                  m: n, n: dh, k: n, threads: 1)
        }
    }
    let scores = Double(batch * heads * n * n)
    return opOutput(y, inputs: qkv, tape: tape, op: "attention",
                    cost: OpCost(forward: 4 * scores * Double(dh) + 5 * scores, backward: 8 * scores * Double(dh) + 5 * scores)) { dy in
        _ = probs  // the saved probabilities live until the backward pass
        qkv.withGradForWrite { dx, fresh in
            // Every (batch, head) writes its q, k, v slices in full: the first contribution can overwrite.
            let acc: Float = fresh ? 0 : 1
            qkv.withValue { x in
                Parallel.forEach(tasks: batch * heads, threads: threads) { task, _ in
                    let (b, h) = (task / heads, task % heads)
                    let q = x + b * n * 3 * d + h * dh, k = q + d, v = q + 2 * d
                    let dq = dx + b * n * 3 * d + h * dh, dk = dq + d, dv = dq + 2 * d
                    let p = UnsafePointer(pp + task * n * n)
                    let dO = dy + b * n * d + h * dh  // (n, dh), row stride d
                    ScratchPool.shared.withFloats(2 * n * n) { scratch in
                        let dP = scratch, dS = scratch + n * n
                        // dV += P^T dO;  dP = dO V^T
                        sgemm(c: dv, ldc: 3 * d, a: p, lda: n, transA: true, b: dO, ldb: d, transB: false,
                              m: n, n: dh, k: n, beta: acc, threads: 1)
                        sgemm(c: dP, ldc: n, a: dO, lda: d, transA: false, b: v, ldb: 3 * d, transB: true,
                              m: n, n: n, k: dh, threads: 1)
                        // dS = scale * softmax'(dP)
                        dS.update(repeating: 0, count: n * n)
                        for r in 0..<n {
                            softmaxBackwardRow(dS + r * n, dP + r * n, p + r * n, cols: n, scale: scale)
                        }
                        // dQ += dS K;  dK += dS^T Q
                        sgemm(c: dq, ldc: 3 * d, a: dS, lda: n, transA: false, b: k, ldb: 3 * d, transB: false,
                              m: n, n: dh, k: n, beta: acc, threads: 1)
                        sgemm(c: dk, ldc: 3 * d, a: dS, lda: n, transA: true, b: q, ldb: 3 * d, transB: false,
                              m: n, n: dh, k: n, beta: acc, threads: 1)
                    }
                }
            }
        }
    }
}
