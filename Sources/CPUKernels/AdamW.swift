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
    threads: Int? = nil
) {
    precondition(step >= 1, "adamwUpdate: step \(step) must be >= 1 (PyTorch counts from 1)")
    let bc1 = 1 - pow(Double(beta1), Double(step))
    let bc2 = 1 - pow(Double(beta2), Double(step))
    let stepSize = Float(Double(lr) / bc1)
    let invBc2Sqrt = Float(1 / bc2.squareRoot())
    let decay = 1 - lr * weightDecay
    let w1 = 1 - beta1, w2 = 1 - beta2
    forEachRowChunk(rows: (count + 7) / 8, cols: 8 * 8, threads: threads) { b0, b1 in
        for blk in b0..<b1 {
            let i = blk * 8
            if i + 8 <= count {
                let g = load8(grad + i)
                let p = load8(param + i) * decay
                let mm = fmadd(load8(m + i), splat(w1), g - load8(m + i))
                let vv = fmadd(load8(v + i) * beta2, g * w2, g)
                let denom = vv.squareRoot() * invBc2Sqrt + eps
                store8(m + i, mm)
                store8(v + i, vv)
                store8(param + i, p - stepSize * mm / denom)
            } else {
                for t in i..<count {
                    let g = grad[t]
                    let p = param[t] * decay
                    let mm = fmadd(m[t], w1, g - m[t])
                    let vv = fmadd(v[t] * beta2, g * w2, g)
                    let denom = vv.squareRoot() * invBc2Sqrt + eps
                    m[t] = mm
                    v[t] = vv
                    param[t] = p - stepSize * mm / denom
                }
            }
        }
    }
}

/// The EMA of the I-JEPA target encoder, one pass: `target = m * target + (1 - m) * source`
/// (official train.py: `param_k.mul_(m).add_((1 - m) * param_q)`).
public func emaUpdate(
    target: UnsafeMutablePointer<Float>,       // (count) target-encoder parameter, updated in place
    source: UnsafePointer<Float>,              // (count) context-encoder parameter
    count: Int, momentum: Float, threads: Int? = nil
) {
    let w = 1 - momentum
    forEachRowChunk(rows: (count + 7) / 8, cols: 8 * 2, threads: threads) { b0, b1 in
        for blk in b0..<b1 {
            let i = blk * 8
            if i + 8 <= count {
                store8(target + i, fmadd(load8(target + i) * momentum, splat(w), load8(source + i)))
            } else {
                for t in i..<count { target[t] = fmadd(target[t] * momentum, w, source[t]) }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
