import CPUKernels
import TensorCore

/// AdamW over named parameters with PyTorch's arithmetic (`adamwUpdate`), and the official I-JEPA parameter
/// groups: weight decay on every parameter except biases and 1-D parameters (LayerNorm weights).
package final class AdamW {
    package let parameters: [(String, Variable)]
    package var lr: Float
    package var weightDecay: Float
    package var beta1: Float, beta2: Float, eps: Float
    package private(set) var step = 0
    /// First and second moments, one tensor per parameter.
    package private(set) var m: [Tensor]
    package private(set) var v: [Tensor]
    let decays: [Bool]

    package init(
        _ parameters: [(String, Variable)], lr: Float, weightDecay: Float, beta1: Float = 0.9, beta2: Float = 0.999,
        eps: Float = 1e-8
    ) throws {
        self.parameters = parameters
        (self.lr, self.weightDecay, self.beta1, self.beta2, self.eps) = (lr, weightDecay, beta1, beta2, eps)
        m = try parameters.map { try Tensor(zeros: $0.1.shape) }
        v = try parameters.map { try Tensor(zeros: $0.1.shape) }
        decays = parameters.map { name, p in !name.hasSuffix(".bias") && name != "bias" && p.value.rank > 1 }
    }

    /// Restores the state saved from `step`, `m` and `v` (a checkpoint); every shape must match.
    package func restore(step: Int, m: [Tensor], v: [Tensor]) throws {
        guard step >= 0, m.count == parameters.count, v.count == parameters.count else {
            throw TensorError.countMismatch(shape: [parameters.count], expected: parameters.count, got: m.count)
        }
        for i in parameters.indices where m[i].shape != parameters[i].1.shape || v[i].shape != parameters[i].1.shape {
            throw TensorError.incompatibleShapes(
                operation: "AdamW.restore: moments of '\(parameters[i].0)'", m[i].shape, parameters[i].1.shape)
        }
        (self.step, self.m, self.v) = (step, m, v)
    }

    /// One step over every parameter that has a gradient, on `engine`'s kernels.
    package func update(engine: Engine) { update(zeroingGradients: false, engine: engine) }

    /// One step over every parameter that has a gradient, then, with `zeroingGradients`, every such gradient set
    /// to 0, then `emaTargets[i] = emaMomentum * emaTargets[i] + (1 - emaMomentum) * parameter i` for every
    /// parameter given a target (with or without a gradient): the bits of the three separate passes, in one
    /// pass and one parallel region (`adamwStep`).
    package func update(zeroingGradients: Bool, emaTargets: [Variable?] = [], emaMomentum: Float = 1, engine: Engine) {
        let context = engine.kernels
        step += 1
        var list: [AdamWParameter] = []
        var emaOnly: [(source: UnsafeMutablePointer<Float>, target: UnsafeMutablePointer<Float>, count: Int)] = []
        for i in parameters.indices {
            let p = parameters[i].1
            let (value, grad) = p.unsafeParameterBuffers()
            let target = i < emaTargets.count ? emaTargets[i]?.unsafeParameterBuffers().value : nil
            guard let grad else {
                if let target { emaOnly.append((value, target, p.value.count)) }
                continue
            }
            let mp = m[i].withUnsafeMutableBufferPointer { $0.baseAddress! }
            let vp = v[i].withUnsafeMutableBufferPointer { $0.baseAddress! }
            list.append(AdamWParameter(param: value, m: mp, v: vp, grad: grad, count: p.value.count,
                                       weightDecay: decays[i] ? weightDecay : 0, emaTarget: target))
        }
        adamwStep(list, lr: lr, beta1: beta1, beta2: beta2, eps: eps, step: step, zeroGradients: zeroingGradients,
                  emaMomentum: emaMomentum, context: context)
        if zeroingGradients { for (_, p) in parameters where p.grad != nil { p.noteGradientZeroed() } }
        for e in emaOnly { emaUpdate(target: e.target, source: e.source, count: e.count, momentum: emaMomentum, context: context) }
        withExtendedLifetime(m) {}
        withExtendedLifetime(v) {}
    }
}
