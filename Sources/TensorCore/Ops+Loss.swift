import CPUKernels

/// Smooth-L1 loss with beta 1, mean over all elements (`F.smooth_l1_loss(pred, target)`, the I-JEPA loss):
/// 0.5 d^2 where |d| < 1, |d| - 0.5 elsewhere. Sums in Double.
public func smoothL1Loss(_ pred: Variable, _ target: Variable, tape: Tape?) throws -> Variable {
    try elementwiseLoss(pred, target, tape: tape, name: "smoothL1Loss") { d in
        let a = abs(d)
        return a < 1 ? (0.5 * d * d, d) : (a - 0.5, d > 0 ? 1 : -1)
    }
}

/// Mean squared error over all elements.
public func mseLoss(_ pred: Variable, _ target: Variable, tape: Tape?) throws -> Variable {
    try elementwiseLoss(pred, target, tape: tape, name: "mseLoss") { d in (d * d, 2 * d) }
}

/// mean_i f(pred_i - target_i); `f` returns the value and its derivative at d.
func elementwiseLoss(
    _ pred: Variable, _ target: Variable, tape: Tape?, name: String, _ f: @escaping (Double) -> (Double, Double)
) throws -> Variable {
    try check(pred.shape == target.shape && pred.value.count > 0, "\(name): same non-empty shapes", pred.shape, target.shape)
    let n = pred.value.count
    var sum = 0.0
    pred.withValue { p in target.withValue { q in for i in 0..<n { sum += f(Double(p[i]) - Double(q[i])).0 } } }
    let t = recording(tape, pred, target)
    let out = output(try Tensor(shape: [1], values: [Float(sum / Double(n))]), t)
    let run = profiled(name, cost: .elementwise(n, 4, 4), bytes: 8 * n) { [weak out] in
        guard let g = out?.grad?.scalars.first else { return }
        let scale = Double(g) / Double(n)
        pred.withValue { p in
            target.withValue { q in
                if pred.requiresGrad {
                    pred.withGrad { dp in for i in 0..<n { dp[i] += Float(scale * f(Double(p[i]) - Double(q[i])).1) } }
                }
                if target.requiresGrad {
                    target.withGrad { dq in for i in 0..<n { dq[i] -= Float(scale * f(Double(p[i]) - Double(q[i])).1) } }
                }
            }
        }
    }
    t?.record(releasing: out, run)
    return out
}

/// Softmax cross-entropy with integer labels, mean over rows: logits (N, C), labels N values in 0..<C.
public func softmaxCrossEntropy(_ logits: Variable, labels: [Int], tape: Tape?) throws -> Variable {
    try check(logits.shape.count == 2 && logits.shape[0] == labels.count && logits.shape[0] > 0,
              "softmaxCrossEntropy: logits (N, C) and N labels", logits.shape, [labels.count])
    let (rows, classes) = (logits.shape[0], logits.shape[1])
    if let bad = labels.first(where: { $0 < 0 || $0 >= classes }) {
        throw TensorError.incompatibleShapes(operation: "softmaxCrossEntropy: label \(bad) out of range 0..<\(classes)",
                                             logits.shape, [labels.count])
    }
    var probs = try Tensor(uninitialized: logits.shape)
    let pp = mutablePointer(&probs)
    logits.withValue { softmaxForward(pp, $0, rows: rows, cols: classes) }
    var loss = 0.0
    for r in 0..<rows { loss -= Foundation_log(max(Double(pp[r * classes + labels[r]]), 1e-45)) }
    let t = recording(tape, logits)
    let out = output(try Tensor(shape: [1], values: [Float(loss / Double(rows))]), t)
    t?.record(releasing: out) { [weak out] in
        guard let g = out?.grad?.scalars.first else { return }
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
