import CPUKernels

/// Multi-head self-attention core, fused per (batch, head): softmax(q k^T (D/h)^-0.5) v.
///
/// qkv (B, n, 3D) is the output of the qkv Linear; channel c = s D + head (D/h) + t with s in {q, k, v} (the
/// official reshape to (B, n, 3, h, D/h)). The output (B, n, D) has channel head (D/h) + t, ready for `proj`.
/// The backward pass recomputes the attention probabilities from q and k (the forward pass's own code, so the
/// same bits) unless the engine's `attentionKeepsProbabilities`: keeping them (B, h, n, n) costs memory (ViT-S/16:
/// ~125 MB) and saves no measurable time (docs/performance.md, Decisions).
package func attention(_ qkv: Variable, heads: Int, tape: Tape) throws -> Variable {
    let kernels = tape.engine.kernels
    try check(qkv.shape.count == 3 && heads > 0 && qkv.shape[2] % (3 * heads) == 0,
              "attention: qkv (B, n, 3D) with D divisible by heads \(heads)", qkv.shape, [heads])
    let (batch, n, d) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
    let dh = d / heads
    let scale = 1 / Float(dh).squareRoot()
    var y = try Tensor(uninitialized: [batch, n, d], pool: tape.engine.storage)
    let keeps = tape.engine.attentionKeepsProbabilities && recording(tape, qkv) != nil
    var probs = keeps ? try Tensor(uninitialized: [batch, heads, n, n], pool: tape.engine.storage) : nil
    let yp = mutablePointer(&y), pp = keeps ? mutablePointer(&probs!) : nil
    qkv.withValue { x in
        attentionForward(out: yp, probs: pp, qkv: x, batch: batch, n: n, heads: heads, dh: dh, scale: scale, context: kernels)
    }
    let scores = Double(batch * heads * n * n)
    return opOutput(y, inputs: qkv, tape: tape, op: "attention",
                    cost: OpCost(forward: 4 * scores * Double(dh) + 5 * scores, backward: 8 * scores * Double(dh) + 5 * scores)) { dy in
        _ = probs  // the saved probabilities (if any) live until the backward pass
        qkv.withGradForWrite { dx, fresh in
            // Every (batch, head) writes its q, k, v slices in full: the first contribution can overwrite.
            qkv.withValue { x in
                attentionBackward(dqkv: dx, accumulate: !fresh, dOut: dy, probs: pp.map { UnsafePointer($0) }, qkv: x, batch: batch, n: n,
                                  heads: heads, dh: dh, scale: scale, context: kernels)
            }
        }
    }
}
