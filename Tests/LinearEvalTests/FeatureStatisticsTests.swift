import Foundation
import TensorCore
import XCTest

@testable import LinearEval

final class FeatureStatisticsTests: XCTestCase {
    /// Q diag(lambda) Q^T for a random orthogonal Q (Gram-Schmidt of Gaussian columns): Jacobi must return lambda.
    func testJacobiEigenvaluesOfAKnownSpectrum() throws {
        var g = RandomGenerator(seed: 3)
        for n in [1, 2, 5, 17, 40] {
            var q = try g.normal([n * n]).scalars.map(Double.init)
            for j in 0..<n {
                for k in 0..<j {
                    let dot = (0..<n).reduce(0.0) { $0 + q[$1 * n + j] * q[$1 * n + k] }
                    for i in 0..<n { q[i * n + j] -= dot * q[i * n + k] }
                }
                let norm = (0..<n).reduce(0.0) { $0 + q[$1 * n + j] * q[$1 * n + j] }.squareRoot()
                for i in 0..<n { q[i * n + j] /= norm }
            }
            let lambda = (0..<n).map { Double($0 * $0) - 3.5 }  // distinct, some negative, one repeated sign change
            var a = [Double](repeating: 0, count: n * n)
            for i in 0..<n { for j in 0..<n { for k in 0..<n { a[i * n + j] += q[i * n + k] * lambda[k] * q[j * n + k] } } }
            let got = symmetricEigenvalues(a, n: n)
            for (x, y) in zip(got, lambda.sorted()) { XCTAssertEqual(x, y, accuracy: 1e-9 * Double(n * n), "n \(n)") }
        }
    }

    /// Isotropic features use every direction; features on one line use one; the stds are the columns' stds.
    func testEffectiveRankAndStds() throws {
        var g = RandomGenerator(seed: 5)
        let n = 4000, d = 12
        let z = try g.normal([n * d]).scalars, noise = try g.normal([n * d]).scalars, t = try g.normal([n]).scalars
        let direction = try g.normal([d]).scalars
        var iso = [Float](repeating: 0, count: n * d), line = iso
        for r in 0..<n {
            for j in 0..<d {
                iso[r * d + j] = z[r * d + j] * (j == 0 ? 3 : 1)
                line[r * d + j] = t[r] * direction[j] + 1e-4 * noise[r * d + j]
            }
        }
        let a = try featureStatistics(try Tensor(shape: [n, d], values: iso))
        XCTAssertEqual(a.dimensions, d)
        XCTAssertEqual(a.maxStd, 3, accuracy: 0.1)
        XCTAssertEqual(a.minStd, 1, accuracy: 0.05)
        XCTAssertEqual(a.meanStd, (3 + 11) / 12.0, accuracy: 0.05)
        // Singular values 3, 1 x 11: p = 3/14, 1/14 x 11 -> exp(entropy) = 10.1.
        let p = [3.0 / 14] + Array(repeating: 1.0 / 14, count: 11)
        XCTAssertEqual(a.effectiveRank, exp(-p.reduce(0) { $0 + $1 * log($1) }), accuracy: 0.2)
        let b = try featureStatistics(try Tensor(shape: [n, d], values: line))
        XCTAssertLessThan(b.effectiveRank, 1.05)
        XCTAssertGreaterThanOrEqual(b.effectiveRank, 1)
        // Constant features: no spread at all.
        let c = try featureStatistics(try Tensor(shape: [3, 4], repeating: 2))
        XCTAssertEqual(c.meanStd, 0)
        XCTAssertEqual(c.effectiveRank, 0)
        XCTAssertThrowsError(try featureStatistics(try Tensor(shape: [1, 4], repeating: 2)))
    }
}
