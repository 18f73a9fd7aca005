import CPUKernels
import Foundation
import TensorCore
import XCTest

@testable import LinearEval

/// Gaussian blobs: class centres ~ N(0, separation^2) per coordinate, points = centre + N(0, noise^2).
/// Labels cycle through the classes so rows of one class are not contiguous.
func blobs(
    classes: Int, rows: Int, dim: Int, separation: Float, noise: Float, seed: UInt64, centresSeed: UInt64 = 99
) -> (Tensor, [Int]) {
    var centreRNG = RandomGenerator(seed: centresSeed)
    let centres = try! centreRNG.normal([classes, dim], std: separation).scalars
    var rng = RandomGenerator(seed: seed)
    var x = try! rng.normal([rows, dim], std: noise)
    let labels = (0..<rows).map { $0 % classes }
    x.withUnsafeMutableBufferPointer { p in
        for i in 0..<rows {
            for j in 0..<dim { p[i * dim + j] += centres[labels[i] * dim + j] }
        }
    }
    return (x, labels)
}

/// Plain-loop Double softmax regression by full-batch gradient descent (the reference the probe must match).
func referenceGradientDescent(
    _ x: [Float], labels: [Int], rows n: Int, cols d: Int, classes c: Int, weightDecay: Double,
    learningRate: Double, iterations: Int
) -> (w: [Double], b: [Double], loss: Double) {
    var w = [Double](repeating: 0, count: d * c), b = [Double](repeating: 0, count: c)
    func lossAndGradient() -> (Double, [Double], [Double]) {
        var loss = 0.0
        var gw = [Double](repeating: 0, count: d * c), gb = [Double](repeating: 0, count: c)
        for i in 0..<n {
            var z = b
            for k in 0..<c {
                for j in 0..<d { z[k] += Double(x[i * d + j]) * w[j * c + k] }
            }
            let m = z.max()!
            let s = z.reduce(0) { $0 + Foundation.exp($1 - m) }
            loss += m + Foundation.log(s) - z[labels[i]]
            for k in 0..<c {
                let g = (Foundation.exp(z[k] - m) / s - (k == labels[i] ? 1 : 0)) / Double(n)
                gb[k] += g
                for j in 0..<d { gw[j * c + k] += Double(x[i * d + j]) * g }
            }
        }
        var penalty = 0.0
        for j in 0..<(d * c) {
            penalty += w[j] * w[j]
            gw[j] += weightDecay * w[j]
        }
        return (loss / Double(n) + 0.5 * weightDecay * penalty, gw, gb)
    }
    for _ in 0..<iterations {
        let (_, gw, gb) = lossAndGradient()
        for j in 0..<(d * c) { w[j] -= learningRate * gw[j] }
        for k in 0..<c { b[k] -= learningRate * gb[k] }
    }
    return (w, b, lossAndGradient().0)
}

/// Brute-force k-NN in Double: cosine similarities, full sort (similarity descending, index ascending),
/// weighted vote with exp(sim / 0.07), ties to the smallest class.
func referenceKNN(train: [Float], labels: [Int], query: [Float], dim d: Int, classes: Int, k: Int) -> [Int] {
    func unit(_ v: ArraySlice<Float>) -> [Double] {
        let n = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        return v.map { Double($0) / max(n, 1e-12) }
    }
    let nTrain = train.count / d, nQuery = query.count / d
    let t = (0..<nTrain).map { unit(train[($0 * d)..<(($0 + 1) * d)]) }
    return (0..<nQuery).map { qi in
        let q = unit(query[(qi * d)..<((qi + 1) * d)])
        let sims = t.map { row in zip(row, q).reduce(0.0) { $0 + $1.0 * $1.1 } }
        let order = (0..<nTrain).sorted { sims[$0] != sims[$1] ? sims[$0] > sims[$1] : $0 < $1 }
        var votes = [Double](repeating: 0, count: classes)
        for j in order.prefix(k) { votes[labels[j]] += Foundation.exp(sims[j] / 0.07) }
        var best = 0
        for c in 1..<classes where votes[c] > votes[best] { best = c }
        return best
    }
}

final class LinearProbeTests: XCTestCase {
    func testSeparableBlobsReachFullAccuracy() throws {
        let (train, yTrain) = blobs(classes: 5, rows: 1000, dim: 10, separation: 6, noise: 1, seed: 1)
        let (test, yTest) = blobs(classes: 5, rows: 500, dim: 10, separation: 6, noise: 1, seed: 2)
        let r = try linearProbe(train: train, trainLabels: yTrain, test: test, testLabels: yTest, classes: 5)
        XCTAssertEqual(r.trainAccuracy, 1.0)
        XCTAssertEqual(r.testAccuracy, 1.0)
        XCTAssertLessThan(r.finalLoss, 0.05)
        XCTAssertGreaterThan(r.iterations, 0)
        XCTAssertLessThanOrEqual(r.iterations, 100)
        XCTAssertGreaterThanOrEqual(r.seconds, 0)
    }

    func testMatchesDoubleGradientDescentReference() throws {
        let (n, d, c) = (450, 6, 3)
        let (train, yTrain) = blobs(classes: c, rows: n, dim: d, separation: 0.7, noise: 1, seed: 3)
        let (test, yTest) = blobs(classes: c, rows: 300, dim: d, separation: 0.7, noise: 1, seed: 4)
        let wd: Float = 1e-2
        let options = ProbeOptions(epochs: 200, weightDecay: wd, standardize: false)
        let fit = try fitLinearProbe(features: train, labels: yTrain, classes: c, options: options)
        let ref = referenceGradientDescent(train.scalars, labels: yTrain, rows: n, cols: d, classes: c,
                                           weightDecay: Double(wd), learningRate: 0.5, iterations: 4000)
        XCTAssertEqual(fit.finalLoss, ref.loss, accuracy: 1e-5 * ref.loss)
        for j in 0..<(d * c) { XCTAssertEqual(Double(fit.model.weights[j]), ref.w[j], accuracy: 2e-3) }
        for k in 0..<c { XCTAssertEqual(Double(fit.model.bias[k]), ref.b[k], accuracy: 2e-3) }

        // Noisy problem: accuracy well below 1, and the same as the reference's predictions give.
        let predicted = try fit.model.predict(test)
        let xs = test.scalars
        var agree = 0, correct = 0, refCorrect = 0
        for i in 0..<yTest.count {
            var z = ref.b
            for k in 0..<c { for j in 0..<d { z[k] += Double(xs[i * d + j]) * ref.w[j * c + k] } }
            let refPrediction = z.indices.max { z[$0] < z[$1] || (z[$0] == z[$1] && $0 > $1) }!
            if refPrediction == predicted[i] { agree += 1 }
            if predicted[i] == yTest[i] { correct += 1 }
            if refPrediction == yTest[i] { refCorrect += 1 }
        }
        XCTAssertGreaterThanOrEqual(Double(agree) / Double(yTest.count), 0.99)
        XCTAssertEqual(Double(correct), Double(refCorrect), accuracy: 3)
        let accuracy = Double(correct) / Double(yTest.count)
        XCTAssertGreaterThan(accuracy, 0.45)
        XCTAssertLessThan(accuracy, 0.95)
    }

    func testGradientMatchesFiniteDifferences() throws {
        let (n, d, c) = (7, 3, 4)
        let (x, y) = blobs(classes: c, rows: n, dim: d, separation: 1, noise: 1, seed: 5)
        let values = x.scalars
        try values.withUnsafeBufferPointer { xp in
            let f = SoftmaxObjective(x: xp.baseAddress!, labels: y, rows: n, cols: d, classes: c,
                                     weightDecay: 0.3, threads: 1)
            var rng = RandomGenerator(seed: 6)
            let params = try rng.normal([f.parameterCount], std: 0.5).scalars.map { Double($0) }
            _ = f.value(at: params)
            let g = f.gradient(at: params)
            let h = 1e-3
            for p in 0..<f.parameterCount {
                var plus = params, minus = params
                plus[p] += h
                minus[p] -= h
                let numeric = (f.value(at: plus) - f.value(at: minus)) / (2 * h)
                XCTAssertEqual(g[p], numeric, accuracy: 2e-4, "parameter \(p)")
            }
        }
    }

    func testLossStartsAtLogClassesAndDecreases() throws {
        let (x, y) = blobs(classes: 4, rows: 400, dim: 8, separation: 0.8, noise: 1, seed: 7)
        let fit = try fitLinearProbe(features: x, labels: y, classes: 4, options: ProbeOptions(epochs: 30))
        XCTAssertEqual(fit.lossHistory.first!, Foundation.log(4.0), accuracy: 1e-12)
        XCTAssertEqual(fit.lossHistory.count, fit.iterations + 1)
        XCTAssertEqual(fit.lossHistory.last!, fit.finalLoss)
        for (a, b) in zip(fit.lossHistory, fit.lossHistory.dropFirst()) { XCTAssertLessThan(b, a) }
        XCTAssertLessThan(fit.finalLoss, 0.9 * Foundation.log(4.0))

        var previous = Double.infinity
        for epochs in [0, 1, 5, 25] {
            let r = try fitLinearProbe(features: x, labels: y, classes: 4, options: ProbeOptions(epochs: epochs))
            // 25 may stop early at the gradient tolerance; the first steps are always taken.
            if epochs <= 5 { XCTAssertEqual(r.iterations, epochs) } else { XCTAssertLessThanOrEqual(r.iterations, epochs) }
            XCTAssertLessThan(r.finalLoss, previous)
            previous = r.finalLoss
        }
    }

    func testIdenticalForOneAndTwoThreads() throws {
        // Large enough that the GEMMs and the row passes split into several tasks.
        let (train, yTrain) = blobs(classes: 10, rows: 6000, dim: 48, separation: 0.4, noise: 1, seed: 8)
        let (test, yTest) = blobs(classes: 10, rows: 1000, dim: 48, separation: 0.4, noise: 1, seed: 9)
        var o1 = ProbeOptions(epochs: 15)
        o1.threads = 1
        var o2 = o1
        o2.threads = 2
        let a = try fitLinearProbe(features: train, labels: yTrain, classes: 10, options: o1)
        let b = try fitLinearProbe(features: train, labels: yTrain, classes: 10, options: o2)
        XCTAssertEqual(a.model, b.model)
        XCTAssertEqual(a.lossHistory, b.lossHistory)
        let r1 = try linearProbe(train: train, trainLabels: yTrain, test: test, testLabels: yTest, classes: 10, options: o1)
        let r2 = try linearProbe(train: train, trainLabels: yTrain, test: test, testLabels: yTest, classes: 10, options: o2)
        XCTAssertEqual(r1.finalLoss, r2.finalLoss)
        XCTAssertEqual(r1.trainAccuracy, r2.trainAccuracy)
        XCTAssertEqual(r1.testAccuracy, r2.testAccuracy)
        XCTAssertEqual(r1.iterations, r2.iterations)
        XCTAssertGreaterThan(r1.testAccuracy, 0.3)  // chance is 0.1
    }

    func testStandardizationUndoesFeatureScaling() throws {
        let (train, yTrain) = blobs(classes: 3, rows: 600, dim: 5, separation: 1, noise: 1, seed: 10)
        let (test, yTest) = blobs(classes: 3, rows: 300, dim: 5, separation: 1, noise: 1, seed: 11)
        // Columns scaled by 1e-3 ... 1e3 and shifted, plus a constant column (std 0).
        func distort(_ t: Tensor) -> Tensor {
            let v = t.scalars, n = t.shape[0]
            let scales: [Float] = [1e-3, 1, 1e3, 30, 0.05]
            var out = [Float]()
            for i in 0..<n {
                for j in 0..<5 { out.append(v[i * 5 + j] * scales[j] + Float(j) * 100) }
                out.append(7)
            }
            return try! Tensor(shape: [n, 6], values: out)
        }
        let plain = try linearProbe(train: train, trainLabels: yTrain, test: test, testLabels: yTest, classes: 3)
        let scaled = try linearProbe(train: distort(train), trainLabels: yTrain, test: distort(test),
                                     testLabels: yTest, classes: 3)
        XCTAssertTrue(scaled.finalLoss.isFinite)
        XCTAssertEqual(scaled.finalLoss, plain.finalLoss, accuracy: 1e-3)
        XCTAssertEqual(scaled.testAccuracy, plain.testAccuracy, accuracy: 0.01)
        XCTAssertEqual(scaled.trainAccuracy, plain.trainAccuracy, accuracy: 0.01)
    }

    func testOptionsDecodeWithDefaults() throws {
        let o = try JSONDecoder().decode(ProbeOptions.self, from: Data(#"{"epochs": 7, "standardize": false}"#.utf8))
        var expected = ProbeOptions()
        expected.epochs = 7
        expected.standardize = false
        XCTAssertEqual(o, expected)
        let roundTrip = try JSONDecoder().decode(ProbeOptions.self, from: JSONEncoder().encode(o))
        XCTAssertEqual(roundTrip, o)
    }

    func testBadInputThrows() throws {
        let x = try Tensor(shape: [4, 2], values: [0, 1, 1, 0, 1, 1, 0, 0])
        let y = [0, 1, 1, 0]
        func expect(_ expected: LinearEvalError, _ body: () throws -> Void, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { error in
                XCTAssertEqual(error as? LinearEvalError, expected, line: line)
                XCTAssertFalse("\(error)".isEmpty, line: line)
            }
        }
        func probe(_ train: Tensor = x, _ trainLabels: [Int] = y, _ test: Tensor = x, _ testLabels: [Int] = y,
                   classes: Int = 2, options: ProbeOptions = .init()) throws {
            _ = try linearProbe(train: train, trainLabels: trainLabels, test: test, testLabels: testLabels,
                                classes: classes, options: options)
        }
        expect(.labelCountMismatch(name: "train", rows: 4, labels: 3)) { try probe(x, [0, 1, 1]) }
        expect(.labelCountMismatch(name: "test", rows: 4, labels: 5)) { try probe(x, y, x, [0, 1, 1, 0, 0]) }
        expect(.labelOutOfRange(name: "train", index: 2, label: 2, classes: 2)) { try probe(x, [0, 1, 2, 0]) }
        expect(.labelOutOfRange(name: "test", index: 0, label: -1, classes: 2)) { try probe(x, y, x, [-1, 1, 1, 0]) }
        expect(.empty(name: "train", shape: [0, 2])) { try probe(Tensor(zeros: [0, 2]), []) }
        expect(.empty(name: "test", shape: [0, 2])) { try probe(x, y, Tensor(zeros: [0, 2]), []) }
        expect(.notMatrix(name: "train", shape: [8])) { try probe(x.reshaped([8]), y) }
        let wide = try Tensor(zeros: [4, 3])
        expect(.featureDimensionMismatch(train: 2, other: 3, otherName: "test")) { try probe(x, y, wide, y) }
        var bad = x
        bad[2, 1] = .nan
        func expectNaN(_ name: String, _ body: () throws -> Void, line: UInt = #line) {
            // NaN != NaN, so match the case instead of comparing errors.
            XCTAssertThrowsError(try body(), line: line) { error in
                guard case let .nonFiniteFeature(n, row, column, value) = error as? LinearEvalError else {
                    return XCTFail("unexpected \(error)", line: line)
                }
                XCTAssertEqual([n, "\(row)", "\(column)"], [name, "2", "1"], line: line)
                XCTAssertTrue(value.isNaN, line: line)
                XCTAssertEqual("\(error)", "\(name) feature at row 2, column 1 is not finite (nan)", line: line)
            }
        }
        expectNaN("train") { try probe(bad, y) }
        var inf = x
        inf[3, 0] = -.infinity
        expect(.nonFiniteFeature(name: "test", row: 3, column: 0, value: -.infinity)) { try probe(x, y, inf, y) }
        // A value past the last full 8-lane block of the scan.
        var tail = try Tensor(zeros: [3, 3])
        tail[2, 2] = .infinity
        expect(.nonFiniteFeature(name: "input", row: 2, column: 2, value: .infinity)) {
            _ = try fitLinearProbe(features: x, labels: y, classes: 2).model.predict(try Tensor(zeros: [3, 2]))
            _ = try LinearProbeModel(inputDimension: 3, classes: 2, weights: [Float](repeating: 0, count: 6),
                                     bias: [0, 0]).predict(tail)
        }
        expect(.invalidClassCount(0)) { try probe(classes: 0) }
        expect(.invalidOption("epochs must be >= 0, got -1")) { try probe(options: ProbeOptions(epochs: -1)) }
        expect(.invalidOption("learningRate must be finite and > 0, got 0.0")) {
            try probe(options: ProbeOptions(learningRate: 0))
        }
        expect(.invalidOption("weightDecay must be finite and >= 0, got nan")) {
            try probe(options: ProbeOptions(weightDecay: .nan))
        }
        expect(.invalidOption("threads must be nil or >= 1, got 0")) { try probe(options: ProbeOptions(threads: 0)) }

        func knn(_ train: Tensor = x, _ trainLabels: [Int] = y, _ test: Tensor = x, _ testLabels: [Int] = y,
                 classes: Int = 2, k: Int = 1, threads: Int? = nil) throws {
            _ = try knnAccuracy(train: train, trainLabels: trainLabels, test: test, testLabels: testLabels,
                                classes: classes, k: k, threads: threads)
        }
        expect(.invalidK(k: 5, trainRows: 4)) { try knn(k: 5) }
        expect(.invalidK(k: 0, trainRows: 4)) { try knn(k: 0) }
        expect(.labelOutOfRange(name: "train", index: 1, label: 3, classes: 2)) { try knn(x, [0, 3, 1, 0]) }
        expect(.labelCountMismatch(name: "test", rows: 4, labels: 1)) { try knn(x, y, x, [0]) }
        expect(.featureDimensionMismatch(train: 2, other: 3, otherName: "query")) { try knn(x, y, wide, y) }
        expectNaN("train") { try knn(bad, y) }
        expectNaN("query") { _ = try knnPredict(train: x, trainLabels: y, queries: bad, classes: 2, k: 1) }
        expect(.empty(name: "test", shape: [0, 2])) { try knn(x, y, Tensor(zeros: [0, 2]), []) }
        expect(.invalidClassCount(-3)) { try knn(classes: -3) }
        expect(.invalidOption("threads must be nil or >= 1, got -2")) { try knn(threads: -2) }
    }
}

final class KNNTests: XCTestCase {
    func testMatchesBruteForceReference() throws {
        let (d, classes) = (12, 5)
        var rng = RandomGenerator(seed: 20)
        let train = try rng.normal([300, d])
        let query = try rng.normal([90, d])
        let labels = (0..<300).map { _ in rng.nextInt(below: classes) }
        for k in [1, 5, 20] {
            let expected = referenceKNN(train: train.scalars, labels: labels, query: query.scalars, dim: d,
                                        classes: classes, k: k)
            let got = try knnPredict(train: train, trainLabels: labels, queries: query, classes: classes, k: k)
            XCTAssertEqual(got, expected, "k \(k)")
            // Tiles of 7 query rows give the same answer as one tile.
            let tiled = try knnPredict(train: train, trainLabels: labels, queries: query, classes: classes, k: k,
                                       threads: nil, tileRows: 7)
            XCTAssertEqual(tiled, expected, "k \(k), tiles of 7")
            let accuracy = try knnAccuracy(train: train, trainLabels: labels, test: query,
                                           testLabels: expected, classes: classes, k: k)
            XCTAssertEqual(accuracy, KNNResult(k: k, accuracy: 1))
        }
    }

    func testK1OnTrainSetIsPerfect() throws {
        let (x, y) = blobs(classes: 6, rows: 500, dim: 16, separation: 0.3, noise: 1, seed: 21)
        let r = try knnAccuracy(train: x, trainLabels: y, test: x, testLabels: y, classes: 6, k: 1)
        XCTAssertEqual(r.accuracy, 1)
        // The same noisy blobs held out: well above chance (1/6), well below 1.
        let (test, yTest) = blobs(classes: 6, rows: 300, dim: 16, separation: 0.3, noise: 1, seed: 26)
        let held = try knnAccuracy(train: x, trainLabels: y, test: test, testLabels: yTest, classes: 6, k: 1)
        XCTAssertGreaterThan(held.accuracy, 0.25)
        XCTAssertLessThan(held.accuracy, 0.9)
    }

    func testSeparableBlobs() throws {
        let (train, yTrain) = blobs(classes: 4, rows: 400, dim: 8, separation: 5, noise: 1, seed: 22)
        let (test, yTest) = blobs(classes: 4, rows: 200, dim: 8, separation: 5, noise: 1, seed: 23)
        let r = try knnAccuracy(train: train, trainLabels: yTrain, test: test, testLabels: yTest, classes: 4)
        XCTAssertEqual(r, KNNResult(k: 20, accuracy: 1))
    }

    func testTiesGoToEarlierRowAndSmallerClass() throws {
        // Rows 0 and 1 point the same way (equal similarity to the query); row 2 points away.
        let train = try Tensor(shape: [3, 2], values: [1, 0, 2, 0, -1, 0.1])
        let query = try Tensor(shape: [1, 2], values: [3, 0])
        XCTAssertEqual(try knnPredict(train: train, trainLabels: [2, 0, 1], queries: query, classes: 3, k: 1), [2])
        // k 2: classes 2 and 0 get equal votes, the smaller class wins.
        XCTAssertEqual(try knnPredict(train: train, trainLabels: [2, 0, 1], queries: query, classes: 3, k: 2), [0])
        // A zero query row has similarity 0 to everything: still a valid answer, no NaN.
        let zero = try Tensor(zeros: [1, 2])
        XCTAssertEqual(try knnPredict(train: train, trainLabels: [2, 0, 1], queries: zero, classes: 3, k: 1), [2])
    }

    func testIdenticalForOneAndTwoThreads() throws {
        let (train, yTrain) = blobs(classes: 10, rows: 5000, dim: 32, separation: 0.5, noise: 1, seed: 24)
        let (test, _) = blobs(classes: 10, rows: 700, dim: 32, separation: 0.5, noise: 1, seed: 25)
        let a = try knnPredict(train: train, trainLabels: yTrain, queries: test, classes: 10, k: 20, threads: 1)
        let b = try knnPredict(train: train, trainLabels: yTrain, queries: test, classes: 10, k: 20, threads: 2)
        XCTAssertEqual(a, b)
    }

    func testTileHeightBoundsMemory() {
        // 60,000 train rows: tiles of 139 query rows, 32 MiB of similarities, not 2.4 GB.
        XCTAssertEqual(knnTileFloats / 60_000, 139)
        XCTAssertLessThanOrEqual(knnTileFloats * 4, 32 << 20)
    }
}
