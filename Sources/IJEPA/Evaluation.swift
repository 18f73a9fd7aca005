import Foundation
import CPUKernels
import ImageData
import JEPA
import LinearEval
import TensorCore

/// Frozen-feature evaluation as the paper does it (arXiv 2301.08243, App. A.2): average-pooled patch outputs of the
/// target encoder, a linear probe fitted on the train split and scored on the test split, plus k-NN; the same
/// for a randomly initialised encoder and for raw pixels, side by side.
package struct EvaluationReport: Codable, Sendable {
    package var probe: [String: Double]
    package var knn: [String: Double]
    /// Collapse diagnostics of the encoders' train features (per-dimension std, effective rank).
    package var features: [String: FeatureStatistics]?
    package var trainSamples: Int
    package var testSamples: Int
    /// "test", or "validation" when the scores come from images carved from the train split
    /// (`evaluation.validation_samples`).
    package var evaluatedOn: String?
    package var seconds: Double
}

/// (n, layers D): average-pooled outputs of the last `layers` blocks of `encoder` over `data` (evaluation
/// transform), each through the encoder's final LayerNorm as the last one is, concatenated last block first;
/// no autograd. layers = 1 is the encoder's output; 4 is the paper's other probe representation ("the
/// concatenation of the last 4 layers' average-pooled patch representations", paper Appendix A.2).
/// With `tokens`, nothing is pooled: (n, layers N D), each block's N output tokens in raster order (a linear
/// probe on them can use where things are, which the average discards).
package func encoderFeatures(
    _ encoder: VisionTransformer, data: ImageDataset, augmentation: Augmentation, layers: Int = 1, tokens: Bool = false,
    batchSize: Int = 250, engine: Engine = Engine()
) throws -> Tensor {
    let depth = encoder.blocks.count
    guard layers >= 1 && layers <= max(depth, 1) else {
        throw ConfigError(source: "evaluation.layers", problem: "must be in 1...\(depth) (the encoder's depth), got \(layers)")
    }
    let a = augmentation.evaluation
    let wrapped = Encoder(encoder, preprocessing: Encoder.Preprocessing(size: a.outputSize, channels: data.channels, mean: a.mean,
                                                                        std: a.std, resize: .stretch), source: data.name)
    wrapped.batchSize = batchSize
    wrapped.engine = engine
    return try wrapped.features(count: data.count, layers: layers, tokens: tokens) { range in
        evaluationTensor(data, augmentation: a, range: range, threads: engine.threads)
    }
}

/// (n, C S S): the normalised pixels themselves (the raw-pixel baseline).
package func pixelFeatures(_ data: ImageDataset, augmentation: Augmentation, threads: Int) throws -> Tensor {
    let t = evaluationTensor(data, augmentation: augmentation, range: 0..<data.count, threads: threads)
    return try t.reshaped([data.count, t.count / max(data.count, 1)])
}

/// The first `n` images of a seeded permutation (all of them for n = 0 or n >= count): a fixed, unbiased
/// subset so that probes on a budget stay comparable between runs. `split` 0 is the probes' train split, 1
/// their test split: each has a stream of its own.
package func evaluationSubset(_ data: ImageDataset, samples n: Int, seed: UInt64, split: UInt64) -> ImageDataset {
    guard n > 0, n < data.count else { return data }
    var g = RandomGenerator(seed: seed).stream(.probeSubset, split)
    return data.subset(Array(g.permutation(data.count).prefix(n)).sorted())
}

package struct Evaluator {
    package let train: ImageDataset
    package let test: ImageDataset
    package let augmentation: Augmentation
    package let options: TrainingConfig.Evaluation
    package var log: (String) -> Void = { print($0); fflush(stdout) }
    /// Threads and kernels of the encoders' forward passes.
    package var engine = Engine()

    /// "test" or "validation" (see `TrainingConfig.Evaluation.validationSamples`).
    package let evaluatedOn: String

    /// With `options.validationSamples` > 0, `test` is not used: the images scored are carved from `train`.
    package init(train: ImageDataset, test: ImageDataset, augmentation: Augmentation, options: TrainingConfig.Evaluation, seed: UInt64) {
        var (fit, scored) = (train, test)
        if options.validationSamples > 0 {
            var g = RandomGenerator(seed: 0).stream(.validationSplit)  // the same images for every run and seed
            let order = g.permutation(train.count)
            let cut = min(options.validationSamples, train.count - 1)
            (fit, scored) = (train.subset(Array(order[cut...]).sorted()), train.subset(Array(order[..<cut]).sorted()))
        }
        evaluatedOn = options.validationSamples > 0 ? "validation" : "test"
        self.train = evaluationSubset(fit, samples: options.trainSamples, seed: seed, split: 0)
        self.test = evaluationSubset(scored, samples: options.testSamples, seed: seed, split: 1)
        self.augmentation = augmentation.evaluation
        self.options = options
    }

    var classes: Int { max(train.labels.max() ?? 0, test.labels.max() ?? 0) + 1 }

    /// Probe and k-NN accuracy of one feature set.
    package func score(_ name: String, train xtr: Tensor, test xte: Tensor) throws -> (probe: Double, knn: Double) {
        let t0 = Date()
        let wd = try chooseWeightDecay(xtr)
        let opts = ProbeOptions(epochs: options.probeIterations, weightDecay: wd, threads: engine.threads)
        let p = try linearProbe(train: xtr, trainLabels: train.labels, test: xte, testLabels: test.labels,
                                classes: classes, options: opts)
        let k = try knnAccuracy(train: xtr, trainLabels: train.labels, test: xte, testLabels: test.labels,
                                classes: classes, k: min(options.knnK, train.count), threads: engine.threads)
        log(String(format: "  %-12@ probe %.4f (train %.4f, wd %.0e, %d iterations)  %d-NN %.4f  [%.1f s]",
                   name as NSString, p.testAccuracy, p.trainAccuracy, wd, p.iterations, k.k, k.accuracy,
                   Date().timeIntervalSince(t0)))
        return (p.testAccuracy, k.accuracy)
    }

    /// The probe's L2 weight decay: `evaluation.probe_weight_decay`, or with `probe_sweep` the best of
    /// {1e-5, 1e-4, 1e-3, 1e-2} on a fixed held-out tenth of the train split (the paper sweeps its probe's
    /// settings too); the test split is never looked at.
    func chooseWeightDecay(_ x: Tensor) throws -> Float {
        guard options.probeSweep, train.count >= 20 else { return Float(options.probeWeightDecay) }
        var g = RandomGenerator(seed: 0).stream(.probeValidation)  // the same tenth for every run
        let order = g.permutation(train.count)
        let cut = train.count / 10
        let val = Array(order[..<cut]).sorted(), fit = Array(order[cut...]).sorted()
        let xf = try rows(x, fit), xv = try rows(x, val)
        let yf = fit.map { train.labels[$0] }, yv = val.map { train.labels[$0] }
        var best: (Float, Double) = (Float(options.probeWeightDecay), -1)
        for wd: Float in [1e-5, 1e-4, 1e-3, 1e-2] {
            let r = try linearProbe(train: xf, trainLabels: yf, test: xv, testLabels: yv, classes: classes,
                                    options: ProbeOptions(epochs: options.probeIterations, weightDecay: wd,
                                                          threads: engine.threads))
            if r.testAccuracy > best.1 { best = (wd, r.testAccuracy) }
        }
        return best.0
    }

    package func features(_ encoder: VisionTransformer) throws -> (Tensor, Tensor) {
        let tokens = options.pooling == "none"
        return (try encoderFeatures(encoder, data: train, augmentation: augmentation, layers: options.layers, tokens: tokens,
                                    engine: engine),
                try encoderFeatures(encoder, data: test, augmentation: augmentation, layers: options.layers, tokens: tokens,
                                    engine: engine))
    }

    /// I-JEPA (the target encoder) vs the same architecture at initialisation vs raw pixels.
    package func compare(trained: VisionTransformer, randomInit: VisionTransformer) throws -> EvaluationReport {
        let t0 = Date()
        log("evaluation: linear probe and k-NN on \(train.count) train / \(test.count) \(evaluatedOn) images (\(train.name)); features: \(options.pooling == "none" ? "every output token" : "average-pooled") \(options.layers == 1 ? "output" : "outputs of the last \(options.layers) blocks, concatenated")")
        var probe: [String: Double] = [:], knn: [String: Double] = [:], stats: [String: FeatureStatistics] = [:]
        let (a, b) = try features(trained)
        (probe["ijepa"], knn["ijepa"]) = try score("I-JEPA", train: a, test: b)
        stats["ijepa"] = try diagnose(a)
        let (c, d) = try features(randomInit)
        (probe["randomInit"], knn["randomInit"]) = try score("random init", train: c, test: d)
        stats["randomInit"] = try diagnose(c)
        (probe["rawPixels"], knn["rawPixels"]) = try score(
            "raw pixels", train: try pixelFeatures(train, augmentation: augmentation, threads: engine.threads),
            test: try pixelFeatures(test, augmentation: augmentation, threads: engine.threads))
        return EvaluationReport(probe: probe, knn: knn, features: stats, trainSamples: train.count,
                                testSamples: test.count, evaluatedOn: evaluatedOn, seconds: Date().timeIntervalSince(t0))
    }

    /// Collapse diagnostics of train features (at most 5000 rows, evenly strided: folders of images come
    /// ordered by class), logged under the scores.
    func diagnose(_ x: Tensor) throws -> FeatureStatistics? {
        guard x.shape[1] <= 2048 else { return nil }  // every token of every image: a covariance too large to decompose
        let n = x.shape[0], stride = (n + 4999) / 5000
        let s = try featureStatistics(stride > 1 ? rows(x, Array(Swift.stride(from: 0, to: n, by: stride))) : x)
        log(String(format: "  %-12@ feature std mean %.3f (min %.3f, max %.3f), effective rank %.1f of %d", "" as NSString,
                   s.meanStd, s.minStd, s.maxStd, s.effectiveRank, s.dimensions))
        return s
    }
}

/// The rows `indices` of an (n, d) matrix.
func rows(_ x: Tensor, _ indices: [Int]) throws -> Tensor {
    let d = x.shape[1]
    var out = try Tensor(zeros: [indices.count, d])
    out.withUnsafeMutableBufferPointer { o in
        x.withUnsafeBufferPointer { s in
            for (r, i) in indices.enumerated() { (o.baseAddress! + r * d).update(from: s.baseAddress! + i * d, count: d) }
        }
    }
    return out
}
