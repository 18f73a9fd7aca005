// Linear probe: multinomial logistic regression (softmax cross-entropy + L2 on the weights) on frozen features,
// trained full-batch with L-BFGS (LBFGS.swift says why). Each evaluation of the objective is one GEMM
// (logits = X W), a row-wise softmax in Double and, for the gradient, one more GEMM (dW = X^T G).
//
// Determinism: the GEMM is bit-identical for any thread count; the softmax and the bias-gradient sums are cut
// into chunks by the row count alone, and the per-chunk partial sums are added in chunk order.

import CPUKernels
import Foundation
import TensorCore

/// Settings of `linearProbe`.
package struct ProbeOptions: Sendable, Codable, Equatable {
    /// Maximum number of optimiser iterations (accepted L-BFGS steps; each is one full pass over the train set
    /// for the value plus one for the gradient, more when the line search backtracks). Training stops earlier
    /// when the gradient is below `gradientTolerance`, when a step lowers the loss by less than 2.2e-9
    /// relative (the Float noise floor), or when the line search finds no decrease.
    package var epochs: Int
    /// L2 penalty `weightDecay / 2 * |W|^2` added to the mean cross-entropy (weights only, not the bias).
    package var weightDecay: Float
    /// First trial step of each L-BFGS line search (1 is the natural quasi-Newton step; smaller values only
    /// slow it down, larger ones cost backtracks).
    package var learningRate: Float
    /// Recorded for reproducibility. The full-batch solver starts from zero weights and draws nothing, so the
    /// result does not depend on it.
    package var seed: UInt64
    /// Threads for the GEMMs and row passes; nil = all cores. Results are identical for any value.
    package var threads: Int?
    /// Z-score every feature with the train mean and standard deviation (constant features are only centred).
    package var standardize: Bool
    /// Stop early when the largest absolute gradient entry falls below this.
    package var gradientTolerance: Float

    package init(
        epochs: Int = 100, weightDecay: Float = 1e-4, learningRate: Float = 1, seed: UInt64 = 0,
        threads: Int? = nil, standardize: Bool = true, gradientTolerance: Float = 1e-6
    ) {
        self.epochs = epochs
        self.weightDecay = weightDecay
        self.learningRate = learningRate
        self.seed = seed
        self.threads = threads
        self.standardize = standardize
        self.gradientTolerance = gradientTolerance
    }

    enum CodingKeys: String, CodingKey {
        case epochs, weightDecay, learningRate, seed, threads, standardize, gradientTolerance
    }

    /// Missing keys take their defaults, so a config file may name only what it changes.
    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ProbeOptions()
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? d.weightDecay
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        threads = try c.decodeIfPresent(Int.self, forKey: .threads) ?? d.threads
        standardize = try c.decodeIfPresent(Bool.self, forKey: .standardize) ?? d.standardize
        gradientTolerance = try c.decodeIfPresent(Float.self, forKey: .gradientTolerance) ?? d.gradientTolerance
    }

    func validate() throws {
        guard epochs >= 0 else { throw LinearEvalError.invalidOption("epochs must be >= 0, got \(epochs)") }
        guard weightDecay.isFinite, weightDecay >= 0 else {
            throw LinearEvalError.invalidOption("weightDecay must be finite and >= 0, got \(weightDecay)")
        }
        guard learningRate.isFinite, learningRate > 0 else {
            throw LinearEvalError.invalidOption("learningRate must be finite and > 0, got \(learningRate)")
        }
        guard gradientTolerance.isFinite, gradientTolerance >= 0 else {
            throw LinearEvalError.invalidOption("gradientTolerance must be finite and >= 0, got \(gradientTolerance)")
        }
        try validateThreads(threads)
    }
}

/// Outcome of `linearProbe`.
package struct ProbeResult: Sendable, Codable, Equatable {
    package var trainAccuracy: Double
    package var testAccuracy: Double
    /// Objective at the end: mean cross-entropy + weightDecay / 2 * |W|^2.
    package var finalLoss: Double
    /// Accepted optimiser steps.
    package var iterations: Int
    /// Wall time of the whole probe (standardisation, training, both accuracies).
    package var seconds: Double

    package init(trainAccuracy: Double, testAccuracy: Double, finalLoss: Double, iterations: Int, seconds: Double) {
        self.trainAccuracy = trainAccuracy
        self.testAccuracy = testAccuracy
        self.finalLoss = finalLoss
        self.iterations = iterations
        self.seconds = seconds
    }
}

/// A trained linear classifier over (optionally standardised) features: logits = ((x - mean) * inverseStd) W + b.
package struct LinearProbeModel: Sendable, Codable, Equatable {
    package var inputDimension: Int
    package var classes: Int
    /// (inputDimension, classes), row-major.
    package var weights: [Float]
    /// (classes)
    package var bias: [Float]
    /// Train mean per feature, when standardising.
    package var mean: [Float]?
    /// 1 / train standard deviation per feature (1 for constant features), when standardising.
    package var inverseStd: [Float]?

    /// Logits (n, classes) of the rows of `features` (n, inputDimension).
    package func logits(_ features: Tensor, threads: Int? = nil) throws -> Tensor {
        try validateThreads(threads)
        let (n, d) = try validateMatrix(features, name: "input")
        guard d == inputDimension else {
            throw LinearEvalError.featureDimensionMismatch(train: inputDimension, other: d, otherName: "input")
        }
        var out = try Tensor(zeros: [n, classes])
        out.withUnsafeMutableBufferPointer { o in
            features.withUnsafeBufferPointer { x in
                forEachLogitTile(x.baseAddress!, rows: n, threads: threads) { r0, rows, z in
                    (o.baseAddress! + r0 * classes).update(from: z, count: rows * classes)
                }
            }
        }
        return out
    }

    /// Predicted class of each row: the largest logit, the smallest class index on ties.
    package func predict(_ features: Tensor, threads: Int? = nil) throws -> [Int] {
        try validateThreads(threads)
        let (n, d) = try validateMatrix(features, name: "input")
        guard d == inputDimension else {
            throw LinearEvalError.featureDimensionMismatch(train: inputDimension, other: d, otherName: "input")
        }
        var out = [Int](repeating: 0, count: n)
        features.withUnsafeBufferPointer { x in
            forEachLogitTile(x.baseAddress!, rows: n, threads: threads) { r0, rows, z in
                for i in 0..<rows { out[r0 + i] = argmax(z + i * classes, count: classes) }
            }
        }
        return out
    }

    /// Fraction of rows whose prediction equals the label.
    func accuracy(_ features: Tensor, labels: [Int], threads: Int?) throws -> Double {
        let predicted = try predict(features, threads: threads)
        var correct = 0
        for (p, y) in zip(predicted, labels) where p == y { correct += 1 }
        return Double(correct) / Double(labels.count)
    }

    /// Rows per tile of `forEachLogitTile`: bounds the standardised copy and the logits to a few MiB.
    static let tileRows = 4096

    /// Computes the logits of `rows` rows of `x` (rows, inputDimension) tile by tile and hands each tile
    /// (first row, row count, logits (count, classes)) to `body`, in order.
    private func forEachLogitTile(
        _ x: UnsafePointer<Float>, rows n: Int, threads: Int?,
        _ body: (Int, Int, UnsafePointer<Float>) -> Void
    ) {
        let d = inputDimension, c = classes
        let tile = min(n, Self.tileRows)
        let context = kernelContext(threads)  // one for every tile: its scratch pool stays warm
        let standardized = mean != nil ? UnsafeMutablePointer<Float>.allocate(capacity: tile * d) : nil
        let z = UnsafeMutablePointer<Float>.allocate(capacity: tile * c)
        defer {
            standardized?.deallocate()
            z.deallocate()
        }
        weights.withUnsafeBufferPointer { w in
            var r0 = 0
            while r0 < n {
                let rows = min(tile, n - r0)
                var a = x + r0 * d
                if let s = standardized, let mean, let inverseStd {
                    standardizeRows(from: a, to: s, rows: rows, cols: d, mean: mean, inverseStd: inverseStd,
                                    threads: threads)
                    a = UnsafePointer(s)
                }
                sgemm(c: z, ldc: c, a: a, lda: d, transA: false, b: w.baseAddress!, ldb: c, transB: false,
                      m: rows, n: c, k: d, context: context)
                for i in 0..<rows {
                    for j in 0..<c { z[i * c + j] += bias[j] }
                }
                body(r0, rows, z)
                r0 += rows
            }
        }
    }
}

/// A trained probe with how its training went.
package struct ProbeFit: Sendable {
    package var model: LinearProbeModel
    /// Objective at the end (mean cross-entropy + weightDecay / 2 * |W|^2).
    package var finalLoss: Double
    /// Accepted optimiser steps.
    package var iterations: Int
    /// Objective at the start (log(classes), all weights zero) and after every accepted step: non-increasing.
    package var lossHistory: [Double]
    /// Objective evaluations (one GEMM each; accepted steps cost one more for the gradient).
    package var evaluations: Int
}

/// Trains a multinomial logistic-regression probe on `features` (n, d) with `labels` in 0..<classes.
package func fitLinearProbe(
    features: Tensor, labels: [Int], classes: Int, options: ProbeOptions = .init()
) throws -> ProbeFit {
    guard classes >= 1 else { throw LinearEvalError.invalidClassCount(classes) }
    try options.validate()
    let (n, d) = try validate(features, labels: labels, classes: classes, name: "train")
    let threads = options.threads

    // The design matrix the optimiser sees: standardised copy, or the caller's storage as it is.
    var mean: [Float]? = nil, inverseStd: [Float]? = nil
    var owned: UnsafeMutablePointer<Float>? = nil
    defer { owned?.deallocate() }
    if options.standardize {
        let stats = features.withUnsafeBufferPointer {
            columnStatistics($0.baseAddress!, rows: n, cols: d, threads: threads)
        }
        mean = stats.mean
        inverseStd = stats.inverseStd
        let copy = UnsafeMutablePointer<Float>.allocate(capacity: n * d)
        features.withUnsafeBufferPointer {
            standardizeRows(from: $0.baseAddress!, to: copy, rows: n, cols: d, mean: stats.mean,
                            inverseStd: stats.inverseStd, threads: threads)
        }
        owned = copy
    }

    let outcome: LBFGSOutcome = features.withUnsafeBufferPointer { raw in
        let x = owned.map { UnsafePointer($0) } ?? raw.baseAddress!
        let objective = SoftmaxObjective(x: x, labels: labels, rows: n, cols: d, classes: classes,
                                         weightDecay: Double(options.weightDecay), threads: threads)
        let settings = LBFGSSettings(maxIterations: options.epochs, initialStep: Double(options.learningRate),
                                     gradientTolerance: Double(options.gradientTolerance))
        return minimizeLBFGS(objective, from: [Double](repeating: 0, count: objective.parameterCount),
                             settings: settings)
    }
    let model = LinearProbeModel(
        inputDimension: d, classes: classes,
        weights: outcome.x[0..<(d * classes)].map { Float($0) },
        bias: outcome.x[(d * classes)...].map { Float($0) },
        mean: mean, inverseStd: inverseStd)
    return ProbeFit(model: model, finalLoss: outcome.value, iterations: outcome.iterations,
                    lossHistory: outcome.history, evaluations: outcome.evaluations)
}

/// Multinomial logistic regression (softmax cross-entropy + L2), trained on train, accuracy on test.
package func linearProbe(
    train: Tensor, trainLabels: [Int], test: Tensor, testLabels: [Int], classes: Int,
    options: ProbeOptions = .init()
) throws -> ProbeResult {
    let clock = ContinuousClock()
    let start = clock.now
    guard classes >= 1 else { throw LinearEvalError.invalidClassCount(classes) }
    try options.validate()
    // Validate everything before the (long) training, so a bad test set fails fast.
    let (_, d) = try validate(train, labels: trainLabels, classes: classes, name: "train")
    let (_, dTest) = try validate(test, labels: testLabels, classes: classes, name: "test")
    guard dTest == d else { throw LinearEvalError.featureDimensionMismatch(train: d, other: dTest, otherName: "test") }

    let fit = try fitLinearProbe(features: train, labels: trainLabels, classes: classes, options: options)
    let trainAccuracy = try fit.model.accuracy(train, labels: trainLabels, threads: options.threads)
    let testAccuracy = try fit.model.accuracy(test, labels: testLabels, threads: options.threads)
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    return ProbeResult(trainAccuracy: trainAccuracy, testAccuracy: testAccuracy, finalLoss: fit.finalLoss,
                       iterations: fit.iterations, seconds: seconds)
}

// MARK: - Standardisation

/// Per-column mean and 1/std (population std, like sklearn's StandardScaler) in Double; constant columns get
/// 1/std = 1. Columns are split into blocks across tasks; each column is summed over rows in order.
func columnStatistics(
    _ x: UnsafePointer<Float>, rows n: Int, cols d: Int, threads: Int?
) -> (mean: [Float], inverseStd: [Float]) {
    let block = 64
    let blocks = (d + block - 1) / block
    var mean = [Double](repeating: 0, count: d)
    var variance = [Double](repeating: 0, count: d)
    mean.withUnsafeMutableBufferPointer { mp in
        variance.withUnsafeMutableBufferPointer { vp in
            let m = mp.baseAddress!, v = vp.baseAddress!
            kernelContext(threads).forEach(tasks: blocks, threads: n * d < 1 << 16 ? 1 : nil) { b, _ in
                let j0 = b * block, j1 = min(d, j0 + block)
                for i in 0..<n {
                    let row = x + i * d
                    for j in j0..<j1 { m[j] += Double(row[j]) }
                }
                for j in j0..<j1 { m[j] /= Double(n) }
                for i in 0..<n {
                    let row = x + i * d
                    for j in j0..<j1 {
                        let e = Double(row[j]) - m[j]
                        v[j] += e * e
                    }
                }
                for j in j0..<j1 { v[j] /= Double(n) }
            }
        }
    }
    let inverseStd = variance.map { v -> Float in
        let s = v.squareRoot()
        return s > 0 ? Float(1 / s) : 1
    }
    return (mean.map { Float($0) }, inverseStd)
}

/// dst[i, j] = (src[i, j] - mean[j]) * inverseStd[j] in Float, rows split into chunks across tasks.
func standardizeRows(
    from src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, rows n: Int, cols d: Int,
    mean: [Float], inverseStd: [Float], threads: Int?
) {
    let (chunks, size) = Parallel.chunking(count: n, minChunk: max(1, 16_384 / d), maxChunks: 64)
    mean.withUnsafeBufferPointer { mp in
        inverseStd.withUnsafeBufferPointer { sp in
            let m = mp.baseAddress!, s = sp.baseAddress!
            kernelContext(threads).forEach(tasks: chunks) { t, _ in
                for i in (t * size)..<min(n, (t + 1) * size) {
                    let a = src + i * d, o = dst + i * d
                    for j in 0..<d { o[j] = (a[j] - m[j]) * s[j] }
                }
            }
        }
    }
}

// MARK: - Objective

/// f(W, b) = mean_i [logsumexp(z_i) - z_i[y_i]] + weightDecay / 2 * |W|^2, z_i = x_i W + b.
/// Parameters as one vector: W (d, classes) row-major, then b (classes).
final class SoftmaxObjective: LBFGSObjective {
    let x: UnsafePointer<Float>   // (n, d) row-major
    let labels: [Int]             // (n)
    let n: Int, d: Int, c: Int
    let weightDecay: Double
    let context: KernelContext  // one for the whole fit: its scratch pool stays warm across evaluations
    private var weights: [Float]  // (d, c): Float copy of W for the GEMMs
    private var scores: [Float]   // (n, c): logits X W, then (softmax - onehot) / n after value(at:)
    private var biasGradient: [Double]  // (c), from the last value(at:)
    private let chunks: Int, chunkSize: Int
    private var partialLoss: [Double]   // (chunks)
    private var partialBias: [Double]   // (chunks, c)

    var parameterCount: Int { d * c + c }

    init(x: UnsafePointer<Float>, labels: [Int], rows: Int, cols: Int, classes: Int, weightDecay: Double,
         threads: Int?) {
        self.x = x
        self.labels = labels
        n = rows
        d = cols
        c = classes
        self.weightDecay = weightDecay
        context = kernelContext(threads)
        weights = [Float](repeating: 0, count: d * c)
        scores = [Float](repeating: 0, count: n * c)
        biasGradient = [Double](repeating: 0, count: c)
        (chunks, chunkSize) = Parallel.chunking(count: n, minChunk: 512, maxChunks: 64)
        partialLoss = [Double](repeating: 0, count: chunks)
        partialBias = [Double](repeating: 0, count: chunks * c)
    }

    func value(at params: [Double]) -> Double {
        let n = n, d = d, c = c, chunkSize = chunkSize
        var penalty = 0.0
        for j in 0..<(d * c) {
            weights[j] = Float(params[j])
            penalty += params[j] * params[j]
        }
        let bias = Array(params[(d * c)...])
        scores.withUnsafeMutableBufferPointer { zp in
            weights.withUnsafeBufferPointer { wp in
                sgemm(c: zp.baseAddress!, ldc: c, a: x, lda: d, transA: false, b: wp.baseAddress!, ldb: c,
                      transB: false, m: n, n: c, k: d, context: context)
            }
        }
        let scale = 1 / Double(n)
        scores.withUnsafeMutableBufferPointer { zp in
            partialLoss.withUnsafeMutableBufferPointer { lp in
                partialBias.withUnsafeMutableBufferPointer { bp in
                    labels.withUnsafeBufferPointer { yp in
                        let z = zp.baseAddress!, lossOut = lp.baseAddress!, biasOut = bp.baseAddress!
                        let y = yp.baseAddress!
                        context.forEach(tasks: chunks, threads: n * c < 1 << 14 ? 1 : nil) { t, _ in
                            var e = [Double](repeating: 0, count: c)
                            var colSum = [Double](repeating: 0, count: c)
                            var loss = 0.0
                            for i in (t * chunkSize)..<min(n, (t + 1) * chunkSize) {
                                let row = z + i * c
                                var top = -Double.infinity
                                for j in 0..<c {
                                    e[j] = Double(row[j]) + bias[j]
                                    top = max(top, e[j])
                                }
                                let target = e[y[i]]
                                var sum = 0.0
                                for j in 0..<c {
                                    e[j] = exp(e[j] - top)
                                    sum += e[j]
                                }
                                loss += top + log(sum) - target
                                let inv = 1 / sum
                                for j in 0..<c {
                                    let g = e[j] * inv - (j == y[i] ? 1 : 0)
                                    colSum[j] += g
                                    row[j] = Float(g * scale)
                                }
                            }
                            lossOut[t] = loss
                            for j in 0..<c { biasOut[t * c + j] = colSum[j] }
                        }
                    }
                }
            }
        }
        var loss = 0.0
        for j in 0..<c { biasGradient[j] = 0 }
        for t in 0..<chunks {
            loss += partialLoss[t]
            for j in 0..<c { biasGradient[j] += partialBias[t * c + j] }
        }
        for j in 0..<c { biasGradient[j] *= scale }
        return loss * scale + 0.5 * weightDecay * penalty
    }

    /// Gradient at the point of the last `value(at:)` (whose scores now hold (softmax - onehot) / n).
    func gradient(at params: [Double]) -> [Double] {
        var gw = [Float](repeating: 0, count: d * c)
        gw.withUnsafeMutableBufferPointer { gp in
            scores.withUnsafeBufferPointer { zp in
                sgemm(c: gp.baseAddress!, ldc: c, a: x, lda: d, transA: true, b: zp.baseAddress!, ldb: c,
                      transB: false, m: d, n: c, k: n, context: context)
            }
        }
        var g = [Double](repeating: 0, count: parameterCount)
        for j in 0..<(d * c) { g[j] = Double(gw[j]) + weightDecay * params[j] }
        for j in 0..<c { g[d * c + j] = biasGradient[j] }
        return g
    }
}
