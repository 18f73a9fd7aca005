import CPUKernels
import Foundation
import IJEPA
import JEPA
import TensorCore

/// The I-JEPA training step (target encoder + context encoder + predictor + loss + backward + AdamW + EMA)
/// on synthetic images with the official masks, for the two configurations of the performance issue.
package enum IJEPABench {
    package struct Case: Sendable {
        package var name: String
        package var vit: ViTConfig
        package var predictorDim: Int
        package var predictorDepth: Int
        package var batch: Int
        package var masks: MaskConfig
        /// Activation checkpointing of the trained blocks (`Engine.recomputeBlocks`).
        package var recomputeBlocks = false
    }

    /// (a) the default Fashion-MNIST model (ViT-Tiny/4 at 28 px, depth 6, predictor 96 x 4, batch 64, npred 4,
    /// min_keep 4); (b) ViT-S/16 at 224 px with the official masks and predictor 384 x 6, batch 16; and each
    /// again with its blocks recomputed in the backward pass (`-recompute`: the same step, less memory).
    package static var standard: [Case] {
        let plain = [
            Case(name: "ijepa-fmnist", vit: ViTConfig(imageSize: 28, patchSize: 4, inChannels: 1, embedDim: 192, depth: 6, heads: 3),
                 predictorDim: 96, predictorDepth: 4, batch: 64, masks: MaskConfig()),
            Case(name: "ijepa-vits16", vit: .small(), predictorDim: 384, predictorDepth: 6, batch: 16,
                 masks: .official),
        ]
        return plain + plain.map { c in
            var r = c
            r.name += "-recompute"
            r.recomputeBlocks = true
            return r
        }
    }

    /// The masks of steps 0..<steps (seed 0): what the benchmark runs, and what `--dump-masks` writes.
    package static func masks(_ c: Case, steps: Int) throws -> [MaskBatch] {
        let collator = try MaskCollator(c.masks, inputSize: c.vit.imageSize)
        return (0..<steps).map { collator.sample(batch: c.batch, step: $0, seed: 0) }
    }

    /// Writes the masks of `steps` steps as (B, K) float tensors `step{s}.context.{i}` / `step{s}.target.{j}`,
    /// with the configuration in the metadata, for tools/ijepa_vs_pytorch.py.
    package static func dumpMasks(_ c: Case, steps: Int, to path: String) throws {
        var tensors: [(String, Tensor)] = []
        for (s, m) in try masks(c, steps: steps).enumerated() {
            for (i, t) in m.context.enumerated() {
                tensors.append(("step\(s).context.\(i)", try Tensor(shape: [t.batch, t.count], values: t.indices.map(Float.init))))
            }
            for (j, t) in m.targets.enumerated() {
                tensors.append(("step\(s).target.\(j)", try Tensor(shape: [t.batch, t.count], values: t.indices.map(Float.init))))
            }
        }
        let cfg = """
            {"name": "\(c.name)", "image": \(c.vit.imageSize), "channels": \(c.vit.inChannels), "patch": \(c.vit.patchSize), \
            "dim": \(c.vit.embedDim), "depth": \(c.vit.depth), "heads": \(c.vit.heads), "pred_dim": \(c.predictorDim), \
            "pred_depth": \(c.predictorDepth), "batch": \(c.batch), "nenc": \(c.masks.numEncMasks), "npred": \(c.masks.numPredMasks), "steps": \(steps)}
            """
        try SafeTensors.write(tensors, metadata: ["config": cfg], to: path)
    }

    /// A fresh model (seed 1) and trainer for the case, and its fixed batch of N(0, 1) images (seed 2).
    static func trainerAndImages(_ c: Case, engine: Engine) throws -> (IJEPATrainer, Tensor) {
        let model = try IJEPAModel(c.vit, predictorDim: c.predictorDim, predictorDepth: c.predictorDepth, seed: 1)
        let schedules = Schedules(itersPerEpoch: 1000, epochs: 10, warmupEpochs: 1, startLR: 2e-4, refLR: 1e-3,
                                  finalLR: 1e-6, refWD: 0.04, finalWD: 0.4, ema: (0.996, 1.0))
        var rng = RandomGenerator(seed: 2)
        var engine = engine
        engine.recomputeBlocks = c.recomputeBlocks
        return (try IJEPATrainer(model: model, schedules: schedules, engine: engine),
                try rng.normal([c.batch, c.vit.inChannels, c.vit.imageSize, c.vit.imageSize]))
    }

    /// Median of `steps` timed steps after one warm-up step, cycling through the masks of steps 0..<steps.
    /// With `profiler`, the timed steps are profiled per op into it.
    package static func run(_ c: Case, threads: Int, peakPerCore: Double, steps: Int = 5,
                           profiler: OpProfiler? = nil) throws -> BenchResult {
        ProcessMemory.resetPeak()
        let (trainer, images) = try trainerAndImages(c, engine: Engine(threads: threads))
        let all = try masks(c, steps: max(steps, 1))
        let cost = StepCost(vit: c.vit, predictorDim: c.predictorDim, predictorDepth: c.predictorDepth)
        let warm = try trainer.step(images: images, context: all[0].context, targets: all[0].targets)
        guard warm.loss.isFinite else {
            throw TensorError.incompatibleShapes(operation: "I-JEPA bench \(c.name): the warm-up step gave loss \(warm.loss)", [c.batch], [])
        }
        var samples: [(seconds: Double, flops: Double)] = []
        trainer.engine.profiler = profiler
        for s in 0..<max(steps, 1) {
            let m = all[s]
            let t0 = monotonicSeconds()
            try trainer.step(images: images, context: m.context, targets: m.targets)
            let dt = monotonicSeconds() - t0
            samples.append((dt, cost.step(batch: c.batch, nenc: m.context.count, npred: m.targets.count,
                                          kc: m.context[0].count, kp: m.targets[0].count)))
        }
        // Steps differ in mask sizes, so rate = total FLOPs / total time; the median step time is reported too.
        let total = samples.reduce(0) { $0 + $1.seconds }, flops = samples.reduce(0) { $0 + $1.flops }
        let median = samples.map(\.seconds).sorted()[samples.count / 2]
        let gflops = flops / total / 1e9
        return BenchResult(
            name: c.name, kind: "ijepa", threads: threads, medianMs: median * 1e3,
            bestMs: samples.map(\.seconds).min()! * 1e3, gflops: gflops,
            pctPeak: 100 * gflops / (peakPerCore * Double(threads)), gbPerSecond: 0, validationError: 0,
            extra: [("batch", .int(c.batch)), ("imagesPerSecond", .double(Double(c.batch * samples.count) / total)),
                    ("peakRSSBytes", .int(ProcessMemory.peakResidentBytes())),
                    ("meanContextTokens", .double(Double(all.reduce(0) { $0 + $1.context[0].count }) / Double(all.count))),
                    ("meanTargetTokens", .double(Double(all.reduce(0) { $0 + $1.targets[0].count }) / Double(all.count)))])
    }

    /// `bench ijepa --ab`: one training run whose steps alternate between the built-in setting (A) and a variant
    /// (B) that `set(&engine, true)` selects and `set(&engine, false)` undoes. The variant must give the same bits (the training
    /// state then evolves the same whichever side runs a step). Each round runs one mask batch on both sides, in
    /// alternating order, after a warm-up step of each; the result carries both median step times and the median
    /// of the per-round speed ratios B/A (> 1: the variant is faster).
    package static func ab(
        _ c: Case, threads: Int, rounds: Int, variant: String, set: (inout Engine, Bool) -> Void
    ) throws -> BenchResult {
        let (trainer, images) = try trainerAndImages(c, engine: Engine(threads: threads))
        let all = try masks(c, steps: min(max(rounds, 1), 8))
        for side in [false, true] {
            set(&trainer.engine, side)
            let warm = try trainer.step(images: images, context: all[0].context, targets: all[0].targets)
            guard warm.loss.isFinite else {
                throw TensorError.incompatibleShapes(operation: "I-JEPA A/B \(c.name): the warm-up step gave loss \(warm.loss)", [c.batch], [])
            }
        }
        var times: [[Double]] = [[], []], ratios: [Double] = []
        for r in 0..<max(rounds, 1) {
            let m = all[r % all.count]
            var t = [0.0, 0.0]
            for side in r % 2 == 0 ? [0, 1] : [1, 0] {
                set(&trainer.engine, side == 1)
                let t0 = monotonicSeconds()
                try trainer.step(images: images, context: m.context, targets: m.targets)
                t[side] = monotonicSeconds() - t0
            }
            times[0].append(t[0]); times[1].append(t[1]); ratios.append(t[0] / t[1])
        }
        func median(_ x: [Double]) -> Double { x.sorted()[x.count / 2] }
        let a = median(times[0]), b = median(times[1])
        return BenchResult(
            name: c.name, kind: "ijepa-ab", threads: threads, medianMs: a * 1e3, bestMs: times[0].min()! * 1e3,
            gflops: 0, pctPeak: 0, gbPerSecond: 0, validationError: 0,
            extra: [("variant", .string(variant)), ("variantMedianMs", .double(b * 1e3)), ("rounds", .int(ratios.count)),
                    ("variantSpeedup", .double(median(ratios))),
                    ("variantSpeedupMin", .double(ratios.min()!)), ("variantSpeedupMax", .double(ratios.max()!))])
    }

}
