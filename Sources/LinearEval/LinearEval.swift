// Frozen-feature evaluation: multinomial logistic-regression probe and k-NN.
//
// Inputs are feature matrices as `Tensor`s of shape (n, d), row-major, and labels in 0..<classes. Everything
// that can go wrong with them is checked up front and reported as a `LinearEvalError`; nothing here stops the
// process on bad input.

import CPUKernels
import TensorCore

/// What was wrong with the input of a probe or a k-NN evaluation.
package enum LinearEvalError: Error, CustomStringConvertible, Equatable {
    /// A feature tensor that is not a matrix (rank 2).
    case notMatrix(name: String, shape: [Int])
    /// A feature matrix with no rows or no columns.
    case empty(name: String, shape: [Int])
    /// Train and test (or query) features with different widths.
    case featureDimensionMismatch(train: Int, other: Int, otherName: String)
    /// A label array whose length is not the number of feature rows.
    case labelCountMismatch(name: String, rows: Int, labels: Int)
    /// A label outside 0..<classes.
    case labelOutOfRange(name: String, index: Int, label: Int, classes: Int)
    /// A NaN or infinite feature value.
    case nonFiniteFeature(name: String, row: Int, column: Int, value: Float)
    /// A class count below 1.
    case invalidClassCount(Int)
    /// k below 1 or above the number of train rows.
    case invalidK(k: Int, trainRows: Int)
    /// An option outside its valid range.
    case invalidOption(String)

    package var description: String {
        switch self {
        case let .notMatrix(name, shape):
            return "\(name) features must be a matrix (n, d), got shape \(shape)"
        case let .empty(name, shape):
            return "\(name) features are empty (shape \(shape)): need at least one row and one column"
        case let .featureDimensionMismatch(train, other, otherName):
            return "\(otherName) features have \(other) columns, train features have \(train)"
        case let .labelCountMismatch(name, rows, labels):
            return "\(name) has \(rows) feature rows but \(labels) labels"
        case let .labelOutOfRange(name, index, label, classes):
            return "\(name) label \(label) at index \(index) is outside 0..<\(classes)"
        case let .nonFiniteFeature(name, row, column, value):
            return "\(name) feature at row \(row), column \(column) is not finite (\(value))"
        case let .invalidClassCount(c):
            return "classes must be >= 1, got \(c)"
        case let .invalidK(k, n):
            return "k must be in 1...\(n) (the number of train rows), got \(k)"
        case let .invalidOption(message):
            return message
        }
    }
}

/// Checks that `features` is a non-empty, finite (n, d) matrix with `labels.count == n` and every label in
/// 0..<classes; returns (n, d).
func validate(
    _ features: Tensor, labels: [Int], classes: Int, name: String
) throws -> (rows: Int, cols: Int) {
    let (n, d) = try validateMatrix(features, name: name)
    guard labels.count == n else { throw LinearEvalError.labelCountMismatch(name: name, rows: n, labels: labels.count) }
    for (i, y) in labels.enumerated() where y < 0 || y >= classes {
        throw LinearEvalError.labelOutOfRange(name: name, index: i, label: y, classes: classes)
    }
    return (n, d)
}

/// Checks that `features` is a non-empty, finite (n, d) matrix; returns (n, d).
func validateMatrix(_ features: Tensor, name: String) throws -> (rows: Int, cols: Int) {
    guard features.rank == 2 else { throw LinearEvalError.notMatrix(name: name, shape: features.shape) }
    let n = features.shape[0], d = features.shape[1]
    guard n > 0, d > 0 else { throw LinearEvalError.empty(name: name, shape: features.shape) }
    let bad: Int? = features.withUnsafeBufferPointer { p in
        // Sum of x * 0 is NaN exactly when some x is NaN or infinite: a branch-free pass (8 lanes), then a search.
        let base = UnsafeRawPointer(p.baseAddress!)
        var lanes = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= p.count {
            lanes += base.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) * 0
            i += 8
        }
        var acc = lanes.sum()
        while i < p.count {
            acc += p[i] * 0
            i += 1
        }
        if acc == 0 { return nil }
        return p.firstIndex { !$0.isFinite }
    }
    if let i = bad {
        let value = features.withUnsafeBufferPointer { $0[i] }
        throw LinearEvalError.nonFiniteFeature(name: name, row: i / d, column: i % d, value: value)
    }
    return (n, d)
}

/// Validates `threads` (nil or >= 1).
func validateThreads(_ threads: Int?) throws {
    if let t = threads, t < 1 { throw LinearEvalError.invalidOption("threads must be nil or >= 1, got \(t)") }
}

/// Index of the largest value, the smallest index on ties.
@inline(__always)
func argmax(_ p: UnsafePointer<Float>, count: Int) -> Int {
    var best = 0
    var bestValue = p[0]
    for j in 1..<max(1, count) where p[j] > bestValue {
        best = j
        bestValue = p[j]
    }
    return best
}

/// A kernel context for an optional thread count (nil: every hardware thread).
func kernelContext(_ threads: Int?) -> KernelContext {
    KernelContext(threads: threads ?? Parallel.hardwareThreads)
}
