// Collapse diagnostics of a feature set: how much each dimension varies, and how many dimensions the features
// really use. A joint-embedding method that collapses maps every image to nearly the same vector (all stds
// near 0) or onto a few directions (a low effective rank) while its loss still falls.

import Foundation
import TensorCore

/// Spread of an (n, d) feature matrix over its rows.
package struct FeatureStatistics: Sendable, Codable, Equatable {
    /// Standard deviation of each dimension over the rows: their mean, smallest and largest.
    package var meanStd: Double
    package var minStd: Double
    package var maxStd: Double
    /// Effective rank (Roy & Vetterli, EUSIPCO 2007): exp of the entropy of the singular values of the centred
    /// matrix, normalised to sum 1. Between 1 (one direction) and d (every direction equally).
    package var effectiveRank: Double
    /// Columns of the matrix (the largest possible effective rank).
    package var dimensions: Int
}

/// The collapse diagnostics of `features` (n, d), n >= 2. The covariance is accumulated in Double and its
/// eigenvalues found by cyclic Jacobi rotations (d of a few hundred: well under a second).
package func featureStatistics(_ features: Tensor) throws -> FeatureStatistics {
    let (n, d) = try validateMatrix(features, name: "statistics")
    guard n >= 2 else { throw LinearEvalError.invalidOption("feature statistics need at least 2 rows, got \(n)") }
    var mean = [Double](repeating: 0, count: d)
    var cov = [Double](repeating: 0, count: d * d)
    features.withUnsafeBufferPointer { x in
        for r in 0..<n { for j in 0..<d { mean[j] += Double(x[r * d + j]) } }
        for j in 0..<d { mean[j] /= Double(n) }
        var row = [Double](repeating: 0, count: d)
        for r in 0..<n {
            for j in 0..<d { row[j] = Double(x[r * d + j]) - mean[j] }
            for i in 0..<d where row[i] != 0 {
                let ri = row[i]
                for j in i..<d { cov[i * d + j] += ri * row[j] }
            }
        }
    }
    for i in 0..<d {
        for j in i..<d {
            cov[i * d + j] /= Double(n - 1)
            cov[j * d + i] = cov[i * d + j]
        }
    }
    let stds = (0..<d).map { cov[$0 * d + $0].squareRoot() }
    let singular = symmetricEigenvalues(cov, n: d).map { max($0, 0).squareRoot() }
    let total = singular.reduce(0, +)
    var entropy = 0.0
    if total > 0 {
        for s in singular where s > 0 {
            let p = s / total
            entropy -= p * Foundation.log(p)
        }
    }
    return FeatureStatistics(meanStd: stds.reduce(0, +) / Double(d), minStd: stds.min() ?? 0, maxStd: stds.max() ?? 0,
                             effectiveRank: total > 0 ? Foundation.exp(entropy) : 0, dimensions: d)
}

/// Eigenvalues of the symmetric n x n matrix `a` (row-major), ascending: cyclic Jacobi rotations until the
/// off-diagonal part is below 1e-13 of the matrix's norm (or 100 sweeps).
func symmetricEigenvalues(_ matrix: [Double], n: Int) -> [Double] {
    var a = matrix
    let norm = a.reduce(0) { $0 + $1 * $1 }.squareRoot()
    guard n > 1, norm > 0 else { return (0..<n).map { a[$0 * n + $0] }.sorted() }
    for _ in 0..<100 {
        var off = 0.0
        for p in 0..<n { for q in (p + 1)..<n { off += a[p * n + q] * a[p * n + q] } }
        if off.squareRoot() <= 1e-13 * norm { break }
        for p in 0..<n {
            for q in (p + 1)..<n {
                let apq = a[p * n + q]
                if apq == 0 { continue }
                let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                // A <- J^T A J with J the rotation in the (p, q) plane: rows, then columns.
                for k in 0..<n {
                    let akp = a[k * n + p], akq = a[k * n + q]
                    a[k * n + p] = c * akp - s * akq
                    a[k * n + q] = s * akp + c * akq
                }
                for k in 0..<n {
                    let apk = a[p * n + k], aqk = a[q * n + k]
                    a[p * n + k] = c * apk - s * aqk
                    a[q * n + k] = s * apk + c * aqk
                }
            }
        }
    }
    return (0..<n).map { a[$0 * n + $0] }.sorted()
}
