import CPUKernels

/// Smooth-L1 loss with beta 1, mean over all elements (`F.smooth_l1_loss(pred, target)`, the I-JEPA loss):
/// 0.5 d^2 where |d| < 1, |d| - 0.5 elsewhere. Sums in Double.
package func smoothL1Loss(_ pred: Variable, _ target: Variable, tape: Tape) throws -> Variable {
    try elementwiseLoss(pred, target, tape: tape, SmoothL1.self)
}

/// Mean squared error over all elements.
package func mseLoss(_ pred: Variable, _ target: Variable, tape: Tape) throws -> Variable {
    try elementwiseLoss(pred, target, tape: tape, SquaredError.self)
}

/// A loss applied to each difference d = pred - target, in Double. A type rather than a closure so that the
/// per-element loops are specialised: through a closure the backward pass took 3 ms of the Fashion-MNIST step
/// (12 ns per element), as long as the loss's forward and the EMA update together.
protocol PointwiseLoss {
    static var name: String { get }
    static func value(_ d: Double) -> Double
    static func derivative(_ d: Double) -> Double
}

enum SmoothL1: PointwiseLoss {
    static let name = "smoothL1Loss"
    @inline(__always) static func value(_ d: Double) -> Double { abs(d) < 1 ? 0.5 * d * d : abs(d) - 0.5 }
    @inline(__always) static func derivative(_ d: Double) -> Double { abs(d) < 1 ? d : (d > 0 ? 1 : -1) }
}

enum SquaredError: PointwiseLoss {
    static let name = "mseLoss"
    @inline(__always) static func value(_ d: Double) -> Double { d * d }
    @inline(__always) static func derivative(_ d: Double) -> Double { 2 * d }
}

/// mean_i L(pred_i - target_i).
func elementwiseLoss<L: PointwiseLoss>(_ pred: Variable, _ target: Variable, tape: Tape, _: L.Type) throws -> Variable {
    let kernels = tape.engine.kernels
    try check(pred.shape == target.shape && pred.value.count > 0, "\(L.name): same non-empty shapes", pred.shape, target.shape)
    let n = pred.value.count
    var sum = 0.0
    pred.withValue { p in target.withValue { q in for i in 0..<n { sum += L.value(Double(p[i]) - Double(q[i])) } } }
    let t = recording(tape, pred, target)
    let out = output(try Tensor(shape: [1], values: [Float(sum / Double(n))]), t)
    let run = profiled(tape.engine.profiler, L.name, cost: .elementwise(n, 4, 4), bytes: 8 * n) { [weak node = out.node] in
        guard let g = node?.grad?.scalars.first else { return }
        let scale = Double(g) / Double(n)
        pred.withValue { p in
            target.withValue { q in
                if pred.requiresGrad {
                    pred.withGradForWrite { lossGradient(L.self, $0, p, q, count: n, scale: scale, sign: 1, fresh: $1, kernels: kernels) }
                }
                if target.requiresGrad {
                    target.withGradForWrite { lossGradient(L.self, $0, p, q, count: n, scale: scale, sign: -1, fresh: $1, kernels: kernels) }
                }
            }
        }
    }
    t?.record(releasing: out, inputs: [pred, target], run)
    return out
}

/// dx[i] += sign * Float(scale * L'(Double(p[i]) - Double(q[i]))), in chunks cut by the count alone (each
/// element on its own, so any thread count gives the same bits). A fresh buffer gets 0 + (...) without being
/// read: the bits of adding into a zeroed buffer (-0 becomes +0), which is what the loss did before.
@inline(__always)
func lossGradient<L: PointwiseLoss>(
    _: L.Type, _ dx: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>, _ q: UnsafePointer<Float>,
    count n: Int, scale: Double, sign: Float, fresh: Bool, kernels: KernelContext
) {
    let (chunks, size) = Parallel.chunking(count: n, minChunk: 1 << 15)
    kernels.forEach(tasks: chunks) { c, _ in
        let lo = c * size, hi = min(n, lo + size)
        if fresh {
            for i in lo..<hi { dx[i] = 0 + sign * Float(scale * L.derivative(Double(p[i]) - Double(q[i]))) }
        } else {
            for i in lo..<hi { dx[i] += sign * Float(scale * L.derivative(Double(p[i]) - Double(q[i]))) }
        }
    }
}

/// Softmax cross-entropy with integer labels, mean over rows: logits (N, C), labels N values in 0..<C.
package func softmaxCrossEntropy(_ logits: Variable, labels: [Int], tape: Tape) throws -> Variable {
    let kernels = tape.engine.kernels
    try check(logits.shape.count == 2 && logits.shape[0] == labels.count && logits.shape[0] > 0,
              "softmaxCrossEntropy: logits (N, C) and N labels", logits.shape, [labels.count])
    let (rows, classes) = (logits.shape[0], logits.shape[1])
    if let bad = labels.first(where: { $0 < 0 || $0 >= classes }) {
        throw TensorError.incompatibleShapes(operation: "softmaxCrossEntropy: label \(bad) out of range 0..<\(classes)",
                                             logits.shape, [labels.count])
    }
    var probs = try Tensor(uninitialized: logits.shape, pool: tape.engine.storage)
    let pp = mutablePointer(&probs)
    logits.withValue { softmaxForward(pp, $0, rows: rows, cols: classes, context: kernels) }
    var loss = 0.0
    for r in 0..<rows { loss -= Foundation_log(max(Double(pp[r * classes + labels[r]]), 1e-45)) }
    let t = recording(tape, logits)
    let out = output(try Tensor(shape: [1], values: [Float(loss / Double(rows))]), t)
    t?.record(releasing: out, inputs: [logits]) { [weak node = out.node] in
        guard let g = node?.grad?.scalars.first else { return }
        _ = probs
        let scale = g / Float(rows)
        logits.withGrad { dx in
            for r in 0..<rows {
                for c in 0..<classes {
                    dx[r * classes + c] += scale * (pp[r * classes + c] - (c == labels[r] ? 1 : 0))
                }
            }
        }
    }
    return out
}

#if canImport(Glibc)
import Glibc
@inline(__always) func Foundation_log(_ x: Double) -> Double { Glibc.log(x) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) func Foundation_log(_ x: Double) -> Double { Darwin.log(x) }
#endif
