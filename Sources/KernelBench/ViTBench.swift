import CPUKernels
import Foundation
import JEPA
import NNLayers
import TensorCore

/// ViT forward (inference) and training-step (forward + backward + AdamW) benchmarks.
package enum ViTBench {
    package struct Case: Sendable {
        package var name: String
        package var config: ViTConfig
        package var batch: Int
    }

    /// ViT-Tiny on 32 px (patch 4, 64 tokens, batch 64) and ViT-S/16 on 224 px (196 tokens, batch 16).
    package static var standard: [Case] {
        [Case(name: "tiny32", config: .tiny32(inChannels: 3, depth: 12), batch: 64),
         Case(name: "vit-s16", config: .small(), batch: 16)]
    }

    /// Forward FLOPs per image: 2 x (matmul parameters per token) x tokens + depth x 4 N^2 D (matmuls only).
    package static func forwardFlopsPerImage(_ c: ViTConfig) -> Double {
        let (n, d) = (Double(c.tokens), Double(c.embedDim))
        let perToken = Double(c.inChannels * c.patchSize * c.patchSize) * d + Double(c.depth) * (4 + 2 * Double(c.mlpRatio)) * d * d
        return 2 * perToken * n + Double(c.depth) * 4 * n * n * d
    }

    /// Median of `minRuns` timed steps after one warm-up step. With `profiler`, the timed steps are profiled per
    /// op into it.
    package static func run(_ c: Case, training: Bool, threads: Int, peakPerCore: Double, minRuns: Int = 3,
                           profiler: OpProfiler? = nil) throws -> BenchResult {
        var engine = Engine(threads: threads)
        ProcessMemory.resetPeak()
        var rng = RandomGenerator(seed: 1)
        let model = try VisionTransformer(c.config, rng: &rng)
        let params = model.namedParameters
        let optimizer = try AdamW(params, lr: 1e-4, weightDecay: 0.04)
        let parameterCount = params.reduce(0) { $0 + $1.1.value.count }
        let images = Variable(try rng.normal([c.batch, c.config.inChannels, c.config.imageSize, c.config.imageSize]))
        let zeros = Variable(try Tensor(zeros: [c.batch, c.config.tokens, c.config.embedDim]))
        var lossValue: Float = 0
        let step = {
            let profiler = engine.profiler
            profiler?.startStep()
            profiler?.begin("encoder")
            if training {
                let tape = Tape(engine)
                let y = try model(images, tape: tape)
                profiler?.begin("loss")
                let loss = try mseLoss(y, zeros, tape: tape)
                try OpProfiler.backwardPass(profiler) { try tape.backward(from: loss) }
                OpProfiler.measure(profiler, "optimizer", "adamw + zero grad", flops: 12 * Double(parameterCount)) {
                    optimizer.update(zeroingGradients: true, engine: engine)
                }
                lossValue = loss.value.scalars[0]
            } else {
                lossValue = try model(images, tape: engine.noGrad).value.scalars[0]
            }
            profiler?.begin("step")  // closes the last phase's glue
        }
        try step()  // warm-up; also checks the result is finite
        guard lossValue.isFinite else {
            throw TensorError.incompatibleShapes(operation: "ViT bench \(c.name): the warm-up step gave a non-finite value \(lossValue)",
                                                 [c.batch], [])
        }
        var samples: [Double] = []
        engine.profiler = profiler
        while samples.count < minRuns {
            let t0 = monotonicSeconds()
            try step()
            samples.append(monotonicSeconds() - t0)
        }
        samples.sort()
        let median = samples[samples.count / 2]
        let flops = forwardFlopsPerImage(c.config) * Double(c.batch) * (training ? 3 : 1)
        let gflops = flops / median / 1e9
        return BenchResult(
            name: "\(c.name).\(training ? "train" : "forward")", kind: "vit", threads: threads, medianMs: median * 1e3,
            bestMs: samples[0] * 1e3, gflops: gflops, pctPeak: 100 * gflops / (peakPerCore * Double(threads)),
            gbPerSecond: 0, validationError: 0,
            extra: [("batch", .int(c.batch)), ("imagesPerSecond", .double(Double(c.batch) / median)),
                    ("totalSeconds", .double(samples.reduce(0, +))),
                    ("peakRSSBytes", .int(ProcessMemory.peakResidentBytes()))])
    }
}
