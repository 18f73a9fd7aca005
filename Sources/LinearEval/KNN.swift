// Cosine-similarity k-nearest-neighbour classification, as DINO's k-NN evaluation: features L2-normalised,
// the k most similar train rows vote for their class with weight exp(similarity / 0.07).
//
// Similarities come from the GEMM, (tile, d) x (d, nTrain), a tile of query rows at a time, so the memory is
// bounded by `knnTileFloats` whatever the query count (60,000 x 10,000 would be 2.4 GB at once).
// Determinism: each query row is handled by one task from start to end; the GEMM is bit-identical for any
// thread count; the tile height depends on the train-set size only.

import CPUKernels
import Foundation
import TensorCore

/// Outcome of `knnAccuracy`.
package struct KNNResult: Sendable, Codable, Equatable {
    package var k: Int
    package var accuracy: Double

    package init(k: Int, accuracy: Double) {
        self.k = k
        self.accuracy = accuracy
    }
}

/// Temperature of the vote weights exp(similarity / T), DINO's default.
package let knnTemperature: Double = 0.07

/// Similarity floats held at once: 8M floats = 32 MiB (139 query rows against 60,000 train rows).
let knnTileFloats = 1 << 23

/// Cosine-similarity k-NN (features L2-normalised), majority vote weighted by exp(sim / 0.07) as in DINO's
/// k-NN evaluation; ties broken by the smallest class index. Returns the accuracy on `test`.
package func knnAccuracy(
    train: Tensor, trainLabels: [Int], test: Tensor, testLabels: [Int], classes: Int, k: Int = 20,
    threads: Int? = nil
) throws -> KNNResult {
    guard classes >= 1 else { throw LinearEvalError.invalidClassCount(classes) }
    _ = try validate(test, labels: testLabels, classes: classes, name: "test")
    let predicted = try knnPredict(train: train, trainLabels: trainLabels, queries: test, classes: classes, k: k,
                                   threads: threads)
    var correct = 0
    for (p, y) in zip(predicted, testLabels) where p == y { correct += 1 }
    return KNNResult(k: k, accuracy: Double(correct) / Double(testLabels.count))
}

/// The k-NN class of every row of `queries` (same vote as `knnAccuracy`). Among train rows with equal
/// similarity the one with the smaller index ranks first.
package func knnPredict(
    train: Tensor, trainLabels: [Int], queries: Tensor, classes: Int, k: Int = 20, threads: Int? = nil
) throws -> [Int] {
    try knnPredict(train: train, trainLabels: trainLabels, queries: queries, classes: classes, k: k,
                   threads: threads, tileRows: nil)
}

/// `tileRows` overrides the tile height (tests check that it does not change the result).
func knnPredict(
    train: Tensor, trainLabels: [Int], queries: Tensor, classes: Int, k: Int, threads: Int?, tileRows: Int?
) throws -> [Int] {
    guard classes >= 1 else { throw LinearEvalError.invalidClassCount(classes) }
    try validateThreads(threads)
    let context = kernelContext(threads)  // one for every query tile: its scratch pool stays warm
    let (nTrain, d) = try validate(train, labels: trainLabels, classes: classes, name: "train")
    let (nQuery, dQuery) = try validateMatrix(queries, name: "query")
    guard dQuery == d else { throw LinearEvalError.featureDimensionMismatch(train: d, other: dQuery, otherName: "query") }
    guard k >= 1, k <= nTrain else { throw LinearEvalError.invalidK(k: k, trainRows: nTrain) }

    let trainUnit = UnsafeMutablePointer<Float>.allocate(capacity: nTrain * d)  // (nTrain, d), unit rows
    defer { trainUnit.deallocate() }
    train.withUnsafeBufferPointer { normalizeRows(from: $0.baseAddress!, to: trainUnit, rows: nTrain, cols: d, threads: threads) }

    let tile = max(1, min(nQuery, tileRows ?? knnTileFloats / nTrain))
    let queryUnit = UnsafeMutablePointer<Float>.allocate(capacity: tile * d)        // (tile, d)
    let similarity = UnsafeMutablePointer<Float>.allocate(capacity: tile * nTrain)  // (tile, nTrain)
    defer {
        queryUnit.deallocate()
        similarity.deallocate()
    }
    var predictions = [Int](repeating: 0, count: nQuery)
    queries.withUnsafeBufferPointer { qp in
        trainLabels.withUnsafeBufferPointer { lp in
            predictions.withUnsafeMutableBufferPointer { pp in
                let labels = lp.baseAddress!, out = pp.baseAddress!
                var r0 = 0
                while r0 < nQuery {
                    let rows = min(tile, nQuery - r0)
                    normalizeRows(from: qp.baseAddress! + r0 * d, to: queryUnit, rows: rows, cols: d, threads: threads)
                    sgemm(c: similarity, ldc: nTrain, a: queryUnit, lda: d, transA: false, b: trainUnit, ldb: d,
                          transB: true, m: rows, n: nTrain, k: d, context: context)
                    // About 64K similarities per task; each row belongs to exactly one task.
                    let (chunks, size) = Parallel.chunking(count: rows, minChunk: max(1, 65_536 / nTrain), maxChunks: 64)
                    context.forEach(tasks: chunks) { t, _ in
                        var top = TopK(k: k)
                        var votes = [Double](repeating: 0, count: classes)
                        for i in (t * size)..<min(rows, (t + 1) * size) {
                            top.reset()
                            let s = similarity + i * nTrain
                            for j in 0..<nTrain { top.offer(s[j], index: j) }
                            for c in 0..<classes { votes[c] = 0 }
                            for r in 0..<top.count {
                                votes[labels[top.indices[r]]] += exp(Double(top.values[r]) / knnTemperature)
                            }
                            var best = 0
                            for c in 1..<max(1, classes) where votes[c] > votes[best] { best = c }
                            out[r0 + i] = best
                        }
                    }
                    r0 += rows
                }
            }
        }
    }
    return predictions
}

/// The k largest values offered, in descending order; among equal values the first offered ranks first.
struct TopK {
    let k: Int
    private(set) var values: [Float]
    private(set) var indices: [Int]
    private(set) var count = 0

    init(k: Int) {
        self.k = k
        values = [Float](repeating: 0, count: k)
        indices = [Int](repeating: 0, count: k)
    }

    mutating func reset() { count = 0 }

    @inline(__always)
    mutating func offer(_ v: Float, index: Int) {
        if count == k {
            if !(v > values[k - 1]) { return }  // not strictly better than the last: an earlier index wins ties
        } else {
            count += 1
        }
        // Insert v at its place among the first count - 1 entries, moving smaller ones down.
        var p = count - 1
        while p > 0 && values[p - 1] < v {
            values[p] = values[p - 1]
            indices[p] = indices[p - 1]
            p -= 1
        }
        values[p] = v
        indices[p] = index
    }
}

/// dst row = src row / max(|src row|, 1e-12) (PyTorch's F.normalize), norms in Double.
func normalizeRows(
    from src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, rows n: Int, cols d: Int, threads: Int?
) {
    let (chunks, size) = Parallel.chunking(count: n, minChunk: max(1, 16_384 / d), maxChunks: 64)
    kernelContext(threads).forEach(tasks: chunks) { t, _ in
        for i in (t * size)..<min(n, (t + 1) * size) {
            let a = src + i * d, o = dst + i * d
            var sq = 0.0
            for j in 0..<d { sq += Double(a[j]) * Double(a[j]) }
            let inv = Float(1 / max(sq.squareRoot(), 1e-12))
            for j in 0..<d { o[j] = a[j] * inv }
        }
    }
}
