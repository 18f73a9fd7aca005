import CPUKernels
import DataParallel
import JEPA
import NNLayers
import TensorCore

/// What one training step reports.
public struct StepResult: Sendable, Equatable {
    public var step: Int          // optimizer steps done, counting this one (the schedules' k)
    public var loss: Float
    public var learningRate: Double
    public var weightDecay: Double
    public var momentum: Double
    public var contextTokens: Int // Kc (the official log's maskA)
    public var targetTokens: Int  // Kp (maskB)

    public init(step: Int, loss: Float, learningRate: Double, weightDecay: Double, momentum: Double,
                contextTokens: Int, targetTokens: Int) {
        (self.step, self.loss, self.learningRate, self.weightDecay, self.momentum) = (step, loss, learningRate, weightDecay, momentum)
        (self.contextTokens, self.targetTokens) = (contextTokens, targetTokens)
    }
}

/// One I-JEPA optimisation step in the official order (src/train.py L290-338):
/// schedules -> target encoder on the full image (no grad) + non-affine LayerNorm (eps 1e-5) + target blocks
/// -> context encoder on the context blocks -> predictor -> smooth-L1 -> backward -> AdamW -> zero grad -> EMA.
package final class IJEPATrainer {
    package let model: IJEPAModel
    package let optimizer: AdamW
    package let schedules: Schedules
    /// Optimizer steps done so far; the next step uses k = stepsDone + 1.
    package private(set) var stepsDone: Int = 0
    /// Threads, kernels, fusions and profiler of every step (`Engine`).
    package var engine: Engine
    /// Weights of VICReg's variance and covariance terms on the context encoder's output tokens, added to the
    /// loss (C-JEPA's regulariser, `varianceCovarianceLoss`); (0, 0), the official step, adds nothing.
    package var regularizer: (variance: Float, covariance: Float) = (0, 0)
    /// Gradient shards S, a power of two dividing the batch: the batch is cut into S equal parts of consecutive
    /// images, each part's loss and gradient computed on its own, and the S gradients summed along one fixed
    /// binary tree (leaves in order, `ShardTree`), then scaled by 1 / S (exact for a power of two). Processes
    /// that each compute a block of the shards and combine the subtrees in the same tree get these bits for
    /// any count that divides S. 1: the official step, one backward pass over the whole batch.
    package var gradientShards = 1
    /// The shards this process computes, a block of consecutive shards aligned to its length (a power of two):
    /// a whole subtree. Nil: all of them.
    package var localShards: Range<Int>?
    /// Turns this process's subtree sum into the whole tree's (the other processes' blocks, `ProcessGroup`).
    /// Nil: the process computes every shard.
    package var combineSubtrees: (([Tensor]) throws -> [Tensor])?
    /// Instead of `combineSubtrees`: an exchange made for each step that takes each tensor's subtree sum as
    /// soon as it is final, during the backward pass of the last local shard, so the messages overlap it.
    /// Nil, or a nil exchange: `combineSubtrees` after the backward pass.
    package var makeGradientExchange: (() throws -> GradientExchange?)?

    /// The parameter lists, built once (their names are string concatenations; not rebuilt every step).
    let trainable: [(String, Variable)]
    /// The target encoder's copy of each trainable parameter (nil for the predictor's). Every encoder parameter
    /// is trainable (`trainableParameters`), so these are all the EMA's pairs; the fixed position tables are
    /// buffers, not parameters, and equal in both encoders.
    let emaTargets: [Variable?]
    let trainableCount: Double
    let emaCount: Double

    package init(model: IJEPAModel, schedules: Schedules, engine: Engine = Engine()) throws {
        self.model = model
        self.schedules = schedules
        self.engine = engine
        trainable = model.trainableParameters
        let pairs = zip(model.encoder.namedParameters, model.target.namedParameters).map { ($0.1, $1.1) }
        let targetOf = Dictionary(uniqueKeysWithValues: pairs.map { (ObjectIdentifier($0.0), $0.1) })
        emaTargets = trainable.map { targetOf[ObjectIdentifier($0.1)] }
        precondition(emaTargets.compactMap { $0 }.count == pairs.count, "every encoder parameter must be trainable")
        trainableCount = Double(trainable.reduce(0) { $0 + $1.1.value.count })
        emaCount = Double(pairs.reduce(0) { $0 + $1.0.value.count })
        optimizer = try AdamW(trainable, lr: Float(schedules.learningRate(step: 1)),
                              weightDecay: Float(schedules.weightDecay(step: 1)))
    }

    /// images (B, C, H, W), normalised; `context` nenc masks (B, Kc), `targets` npred masks (B, Kp).
    @discardableResult
    package func step(images: Tensor, context: [TokenIndices], targets: [TokenIndices]) throws -> StepResult {
        let profiler = engine.profiler
        profiler?.startStep()
        let k = stepsDone + 1
        let lr = schedules.learningRate(step: k), wd = schedules.weightDecay(step: k)
        let loss = gradientShards == 1
            ? try lossAndPrediction(images: images, context: context, targets: targets, backward: true).0
            : try shardedLossAndGradients(images: images, context: context, targets: targets)
        optimizer.lr = Float(lr)
        optimizer.weightDecay = Float(wd)
        let m = schedules.momentum(step: k)
        // AdamW, zero grad and the target encoder's EMA in one pass over the parameters (`adamwStep`).
        OpProfiler.measure(profiler, "optimizer", "adamw + zero grad + ema", flops: 12 * trainableCount + 3 * emaCount) {
            optimizer.update(zeroingGradients: true, emaTargets: emaTargets, emaMomentum: Float(m), engine: engine)
        }
        profiler?.begin("step")  // closes the last phase's glue
        stepsDone = k
        return StepResult(step: k, loss: loss, learningRate: lr, weightDecay: wd, momentum: m,
                          contextTokens: context.first?.count ?? 0, targetTokens: targets.first?.count ?? 0)
    }

    /// The loss (and the predictor output); with `backward` the gradients are left in the parameters' `grad`.
    package func lossAndPrediction(
        images: Tensor, context: [TokenIndices], targets: [TokenIndices], backward: Bool
    ) throws -> (Float, Variable) {
        try lossAndPrediction(images: images, context: context, targets: targets, backward: backward, gradientReady: nil)
    }

    /// With `gradientReady`, the backward pass calls it with the index of each trainable parameter (in
    /// `trainable`) as soon as that parameter's gradient is final (`Tape.watch`).
    func lossAndPrediction(
        images: Tensor, context: [TokenIndices], targets: [TokenIndices], backward: Bool,
        gradientReady: ((Int) -> Void)?
    ) throws -> (Float, Variable) {
        let batch = images.shape.first ?? 0
        let x = Variable(images)
        let profiler = engine.profiler, noGrad = engine.noGrad
        profiler?.begin("target")
        var h = try model.target(x, tape: noGrad)
        h = try layerNorm(h, gamma: nil, beta: nil, eps: 1e-5, tape: noGrad)
        h = try gatherTokens(h, targets, tape: noGrad)
        let targetReps = Variable(try repeatInterleaveBatch(h.value, batch: batch, repeat: context.count))
        let tape = backward ? Tape(engine) : noGrad
        if backward, let gradientReady { tape.watch(trainable.map(\.1), ready: gradientReady) }
        profiler?.begin("context")
        let z = try model.encoder(x, masks: context, tape: tape)
        profiler?.begin("predictor")
        let prediction = try model.predictor(z, contextMasks: context, targetMasks: targets, tape: tape)
        profiler?.begin("loss")
        var loss = try smoothL1Loss(prediction, targetReps, tape: tape)
        if regularizer.variance != 0 || regularizer.covariance != 0 {
            let reg = try varianceCovarianceLoss(z, varianceWeight: regularizer.variance,
                                                 covarianceWeight: regularizer.covariance, tape: tape)
            loss = try add(loss, reg, tape: tape)
        }
        if backward { try OpProfiler.backwardPass(profiler) { try tape.backward(from: loss) } }
        return (loss.value.scalars[0], prediction)
    }

    /// The loss of the batch and, left in the parameters' `grad`, its gradient, computed shard by shard
    /// (`gradientShards`) and summed along the fixed tree; the loss is the tree's sum of the shards' losses / S.
    func shardedLossAndGradients(images: Tensor, context: [TokenIndices], targets: [TokenIndices]) throws -> Float {
        // The masks cover the whole batch; `images` is the whole batch too, or only this process's shards' rows.
        let shards = gradientShards, batch = context.first?.batch ?? images.shape.first ?? 0
        guard shards > 0, shards & (shards - 1) == 0, batch % shards == 0 else {
            throw TensorError.incompatibleShapes(
                operation: "gradient shards: a power of two that divides the batch", [shards], [batch])
        }
        let per = batch / shards
        let mine = localShards ?? 0..<shards
        guard mine.count > 0, mine.count & (mine.count - 1) == 0, mine.lowerBound % mine.count == 0,
              mine.upperBound <= shards else {
            throw TensorError.incompatibleShapes(operation: "local shards: a whole subtree of the shard tree",
                                                 [mine.lowerBound, mine.upperBound], [shards])
        }
        let imageRow0 = images.shape.first == batch ? 0 : mine.lowerBound * per
        guard images.shape.first == batch || images.shape.first == mine.count * per else {
            throw TensorError.incompatibleShapes(operation: "sharded step: the whole batch's images or this process's shards'",
                                                 images.shape, [batch, mine.count * per])
        }
        var tree = ShardTree()
        let exchange = try makeGradientExchange?() ?? nil
        var exchangeError: Error?
        for s in mine {
            let rows = s * per..<(s + 1) * per
            let isLast = s == mine.upperBound - 1
            // With an exchange, the last shard's gradients leave as they become final: each parameter's subtree
            // sum is finished on its own (`ShardTree.finalTotal`) and handed over while the backward goes on.
            let ready: ((Int) -> Void)? = exchange == nil || !isLast ? nil : { [trainable] i in
                guard exchangeError == nil else { return }
                do {
                    let leaf = try trainable[i].1.takeGrad() ?? Tensor(zeros: trainable[i].1.shape)
                    try exchange!.submit(i + 1, tree.finalTotal(i + 1, last: leaf))
                } catch { exchangeError = error }
            }
            let imageRows = rows.lowerBound - imageRow0..<rows.upperBound - imageRow0
            let (loss, _) = try lossAndPrediction(
                images: try images.batchRows(imageRows), context: try context.map { try $0.batchRows(rows) },
                targets: try targets.map { try $0.batchRows(rows) }, backward: true, gradientReady: ready)
            if let exchangeError { throw exchangeError }
            let lossLeaf = try Tensor(shape: [1], values: [loss])
            if let exchange, isLast {
                try exchange.submit(0, tree.finalTotal(0, last: lossLeaf))
            } else {
                // The shard's gradients are taken, not copied: the next shard's backward writes fresh buffers.
                tree.push([lossLeaf] + (try trainable.map { (_, p) in try p.takeGrad() ?? Tensor(zeros: p.shape) }))
            }
        }
        var sum = try exchange?.finish() ?? tree.total()
        if exchange == nil, let combineSubtrees { sum = try combineSubtrees(sum) }
        let scale = 1 / Float(shards)
        for i in sum.indices {
            sum[i].withUnsafeMutableBufferPointer { g in for j in 0..<g.count { g[j] *= scale } }
        }
        for (i, (_, p)) in trainable.enumerated() { try p.replaceGrad(sum[i + 1]) }
        return sum[0].scalars[0]
    }

    /// Restores the step count and the optimizer state (weights are loaded into `model` separately).
    package func restore(stepsDone: Int, adamStep: Int, m: [Tensor], v: [Tensor]) throws {
        try optimizer.restore(step: adamStep, m: m, v: v)
        self.stepsDone = stepsDone
    }
}

extension Tensor {
    /// Rows `rows` of the first axis, copied: (rows.count, ...).
    func batchRows(_ rows: Range<Int>) throws -> Tensor {
        let inner = shape.dropFirst().reduce(1, *)
        var out = try Tensor(zeros: [rows.count] + shape.dropFirst())
        out.withUnsafeMutableBufferPointer { o in
            withUnsafeBufferPointer { x in
                o.baseAddress!.update(from: x.baseAddress! + rows.lowerBound * inner, count: rows.count * inner)
            }
        }
        return out
    }
}

extension TokenIndices {
    /// The masks of images `rows` of the batch.
    func batchRows(_ rows: Range<Int>) throws -> TokenIndices {
        try TokenIndices(batch: rows.count, count: count,
                         indices: Array(indices[rows.lowerBound * count..<rows.upperBound * count]))
    }
}
