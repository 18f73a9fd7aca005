/// One AdamW step over a flat parameter buffer, in a single pass, with PyTorch's `torch.optim.AdamW` arithmetic
/// (decoupled weight decay applied first, bias corrections folded into the step size and the denominator):
///
///     p *= 1 - lr * wd
///     m  = m + (1 - beta1) * (g - m)            (torch: exp_avg.lerp_(grad, 1 - beta1))
///     v  = beta2 * v + (1 - beta2) * g * g
///     p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
///
/// `step` is t, counted from 1.
public func adamwUpdate(
    param: UnsafeMutablePointer<Float>,        // (count)
    m: UnsafeMutablePointer<Float>,            // (count) first moment
    v: UnsafeMutablePointer<Float>,            // (count) second moment
    grad: UnsafePointer<Float>,                // (count)
    count: Int, lr: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, step: Int,
    context: KernelContext
) {
    let c = AdamWCoefficients(lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, step: step)
    forEachRowChunk(rows: (count + 7) / 8, cols: 8 * 8, context: context) { b0, b1 in
        let i = b0 * 8
        adamwSpan(param + i, m + i, v + i, grad + i, count: min(count, b1 * 8) - i, c)
    }
}

/// One parameter tensor for `adamwStep`: its buffers, its weight decay, and optionally the buffer that follows
/// it by EMA (the I-JEPA target encoder's copy).
public struct AdamWParameter {
    public var param: UnsafeMutablePointer<Float>  // (count)
    public var m: UnsafeMutablePointer<Float>      // (count) first moment
    public var v: UnsafeMutablePointer<Float>      // (count) second moment
    public var grad: UnsafeMutablePointer<Float>   // (count)
    public var count: Int
    public var weightDecay: Float
    public var emaTarget: UnsafeMutablePointer<Float>?  // (count) or nil

    public init(param: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                grad: UnsafeMutablePointer<Float>, count: Int, weightDecay: Float, emaTarget: UnsafeMutablePointer<Float>? = nil) {
        (self.param, self.m, self.v, self.grad, self.count) = (param, m, v, grad, count)
        (self.weightDecay, self.emaTarget) = (weightDecay, emaTarget)
    }
}

/// The end of a training step over every parameter in one pass and one parallel region: the AdamW update
/// (`adamwUpdate`'s arithmetic), then, with `zeroGradients`, the gradient set to 0, then, where a parameter has
/// an `emaTarget`, `emaTarget = momentum * emaTarget + (1 - momentum) * param` with the updated parameter
/// (`emaUpdate`'s arithmetic). Element by element this is what the three separate passes compute, so the bits
/// are the same; each chunk of a tensor is read once while it is in cache, and the ~100 small parallel regions
/// of per-tensor passes (each waking the other threads) become one.
public func adamwStep(
    _ parameters: [AdamWParameter], lr: Float, beta1: Float, beta2: Float, eps: Float, step: Int,
    zeroGradients: Bool, emaMomentum: Float = 1, context: KernelContext
) {
    // Chunks of 16K floats (64 KiB per buffer, the five buffers in L2), cut from each tensor's size alone.
    let chunk = 16_384
    var starts: [(parameter: Int, offset: Int)] = []
    for (i, p) in parameters.enumerated() {
        var o = 0
        while o < p.count { starts.append((i, o)); o += chunk }
    }
    let w = 1 - emaMomentum
    let coefficients = parameters.map {
        AdamWCoefficients(lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: $0.weightDecay, step: step)
    }
    parameters.withUnsafeBufferPointer { ps in
        starts.withUnsafeBufferPointer { ss in
            context.forEach(tasks: ss.count) { t, _ in
                let (i, o) = ss[t]
                let p = ps[i]
                let n = min(chunk, p.count - o)
                adamwSpan(p.param + o, p.m + o, p.v + o, p.grad + o, count: n, coefficients[i])
                if zeroGradients && p.count < zeroByPagesMinFloats { (p.grad + o).update(repeating: 0, count: n) }
                if let target = p.emaTarget { emaSpan(target + o, p.param + o, count: n, momentum: emaMomentum, w: w) }
            }
        }
    }
    if zeroGradients {
        for p in parameters where p.count >= zeroByPagesMinFloats { zeroByReleasingPages(p.grad, count: p.count) }
    }
}

/// Gradients of at least this many floats (1 MiB) are zeroed by `zeroByReleasingPages`: between two steps
/// they then hold no memory. A training step's peak of memory is at the end of its forward pass, before any
/// gradient is written, and ViT-S/16's large gradients (qkv, fc1, fc2 of 18 blocks: ~117 MB) were resident
/// there for nothing. The smaller ones stay zeroed in place: their pages would cost a fault each for little.
let zeroByPagesMinFloats = 1 << 18

/// Sets `count` floats to 0: the whole pages inside the buffer through madvise(MADV_DONTNEED), which leaves
/// them mapped but takes them out of the resident set (the kernel maps zero pages in again when they are
/// next touched), and the partial pages at either end by plain stores. The buffer must be private anonymous
/// memory (malloc's), as every tensor's is.
func zeroByReleasingPages(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
    #if canImport(Glibc)
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = Int(bitPattern: buffer), end = start + count * 4
    let first = (start + page - 1) / page * page, last = end / page * page
    if last > first, madvise(UnsafeMutableRawPointer(bitPattern: first), last - first, MADV_DONTNEED) == 0 {
        buffer.update(repeating: 0, count: (first - start) / 4)
        UnsafeMutablePointer<Float>(bitPattern: last)!.update(repeating: 0, count: (end - last) / 4)
        return
    }
    #endif
    buffer.update(repeating: 0, count: count)
}

/// AdamW's per-step constants, as `torch.optim.AdamW` computes them.
struct AdamWCoefficients {
    var decay: Float, w1: Float, beta2: Float, w2: Float, eps: Float, stepSize: Float, invBc2Sqrt: Float

    init(lr: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, step: Int) {
        precondition(step >= 1, "adamwUpdate: step \(step) must be >= 1 (PyTorch counts from 1)")
        let bc1 = 1 - pow(Double(beta1), Double(step))
        let bc2 = 1 - pow(Double(beta2), Double(step))
        stepSize = Float(Double(lr) / bc1)
        invBc2Sqrt = Float(1 / bc2.squareRoot())
        decay = 1 - lr * weightDecay
        (w1, self.beta2, w2, self.eps) = (1 - beta1, beta2, 1 - beta2, eps)
    }
}

@inline(__always)
func adamwSpan(
    _ param: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>,
    _ grad: UnsafePointer<Float>, count: Int, _ c: AdamWCoefficients
) {
    var i = 0
    while i + 8 <= count {
        let g = load8(grad + i)
        let p = load8(param + i) * c.decay
        let mm = fmadd(load8(m + i), splat(c.w1), g - load8(m + i))
        let vv = fmadd(load8(v + i) * c.beta2, g * c.w2, g)
        let denom = vv.squareRoot() * c.invBc2Sqrt + c.eps
        store8(m + i, mm)
        store8(v + i, vv)
        store8(param + i, p - c.stepSize * mm / denom)
        i += 8
    }
    while i < count {
        let g = grad[i]
        let p = param[i] * c.decay
        let mm = fmadd(m[i], c.w1, g - m[i])
        let vv = fmadd(v[i] * c.beta2, g * c.w2, g)
        let denom = vv.squareRoot() * c.invBc2Sqrt + c.eps
        m[i] = mm
        v[i] = vv
        param[i] = p - c.stepSize * mm / denom
        i += 1
    }
}

/// The EMA of the I-JEPA target encoder, one pass: `target = m * target + (1 - m) * source`
/// (official train.py: `param_k.mul_(m).add_((1 - m) * param_q)`).
public func emaUpdate(
    target: UnsafeMutablePointer<Float>,       // (count) target-encoder parameter, updated in place
    source: UnsafePointer<Float>,              // (count) context-encoder parameter
    count: Int, momentum: Float, context: KernelContext
) {
    let w = 1 - momentum
    forEachRowChunk(rows: (count + 7) / 8, cols: 8 * 2, context: context) { b0, b1 in
        let i = b0 * 8
        emaSpan(target + i, source + i, count: min(count, b1 * 8) - i, momentum: momentum, w: w)
    }
}

@inline(__always)
func emaSpan(_ target: UnsafeMutablePointer<Float>, _ source: UnsafePointer<Float>, count: Int, momentum: Float, w: Float) {
    var i = 0
    while i + 8 <= count {
        store8(target + i, fmadd(load8(target + i) * momentum, splat(w), load8(source + i)))
        i += 8
    }
    while i < count { target[i] = fmadd(target[i] * momentum, w, source[i]); i += 1 }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
