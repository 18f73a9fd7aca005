import CPUKernels

/// Patch embedding, the official `Conv2d(C, D, kernel = stride = P)` followed by `flatten(2).transpose(1, 2)`,
/// computed as a Linear on each patch flattened in (channel, ky, kx) order.
///
/// images (B, C, H, W), weight (D, C, P, P), bias (D) -> (B, N, D) with N = (H/P)(W/P), token k = i (W/P) + j
/// (row-major over the patch grid).
package func patchEmbed(_ images: Variable, weight: Variable, bias: Variable?, patch: Int, tape: Tape) throws -> Variable {
    let kernels = tape.engine.kernels
    try check(images.shape.count == 4 && weight.shape.count == 4, "patchEmbed: images (B, C, H, W), weight (D, C, P, P)",
              images.shape, weight.shape)
    let (batch, ch, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
    let d = weight.shape[0]
    try check(patch > 0 && h % patch == 0 && w % patch == 0 && weight.shape[1] == ch && weight.shape[2] == patch
              && weight.shape[3] == patch, "patchEmbed: H, W multiples of the patch \(patch), weight (D, C, P, P)",
              images.shape, weight.shape)
    let (gh, gw) = (h / patch, w / patch)
    let cols = ch * patch * patch
    // im2col: (B gh gw, C P P)
    var patches = try Tensor(uninitialized: [batch, gh * gw, cols], pool: tape.engine.storage)
    let pp = mutablePointer(&patches)
    images.withValue { src in
        forEachPatchElement(batch: batch, ch: ch, h: h, w: w, patch: patch) { dst, s in pp[dst] = src[s] }
    }
    let patchVar = Variable(patches, requiresGrad: images.requiresGrad && recording(tape, images) != nil)
    let w2 = Variable(try weight.value.reshaped([d, cols]), requiresGrad: weight.requiresGrad)
    let t = recording(tape, images, weight, bias)
    // Route the gradient of the (D, C P P) view back to the (D, C, P, P) weight, and of the patches to the
    // images. Recorded before the linear op, so it runs after linear's backward (entries run newest first).
    t?.record(inputs: [weight, images]) {
        if weight.requiresGrad, let g = w2.grad {
            weight.withGrad { dw in g.withUnsafeBufferPointer { accumulate(dw, $0.baseAddress!, count: g.count, context: kernels) } }
            w2.zeroGrad()
        }
        if images.requiresGrad, let g = patchVar.grad {
            images.withGrad { dimg in
                g.withUnsafeBufferPointer { gp in
                    forEachPatchElement(batch: batch, ch: ch, h: h, w: w, patch: patch) { dst, s in dimg[s] += gp[dst] }
                }
            }
        }
    }
    let y = try linear(patchVar, weight: w2, bias: bias, tape: tape)  // records only where t does: its inputs want gradients only then
    return y
}

/// Visits every (patch-matrix index, image index) pair of the im2col mapping.
@inline(__always)
func forEachPatchElement(batch: Int, ch: Int, h: Int, w: Int, patch: Int, _ body: (Int, Int) -> Void) {
    let (gh, gw) = (h / patch, w / patch)
    let cols = ch * patch * patch
    for b in 0..<batch {
        for i in 0..<gh {
            for j in 0..<gw {
                let row = (b * gh * gw + i * gw + j) * cols
                for c in 0..<ch {
                    for ky in 0..<patch {
                        let s = ((b * ch + c) * h + i * patch + ky) * w + j * patch
                        let dst = row + (c * patch + ky) * patch
                        for kx in 0..<patch { body(dst + kx, s + kx) }
                    }
                }
            }
        }
    }
}
