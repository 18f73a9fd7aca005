import Foundation
import XCTest
import CPUKernels
@testable import TensorCore

final class RandomGeneratorTests: XCTestCase {
    /// Known-answer test from the Random123 distribution (kat_vectors: philox4x32 10 rounds, counter 0, key 0).
    func testPhiloxKnownAnswer() {
        let zero = RandomGenerator.philox(seed: 0, block: 0)
        XCTAssertEqual(zero, SIMD4(0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8))
    }

    func testSameSeedSameStreamDifferentSeedDifferentStream() throws {
        var g1 = RandomGenerator(seed: 7), g2 = RandomGenerator(seed: 7), g3 = RandomGenerator(seed: 8)
        let a = try g1.normal([1000]).scalars, b = try g2.normal([1000]).scalars, c = try g3.normal([1000]).scalars
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertEqual(g1, g2, "the state advances identically")
        // Draws continue the stream: two fills of 500 + 500 equal one fill of 1000 when 500 is a multiple of 4.
        var g4 = RandomGenerator(seed: 7)
        let first = try g4.normal([500]).scalars, second = try g4.normal([500]).scalars
        XCTAssertEqual(first + second, a)
    }

    func testStreamDoesNotDependOnThreadCount() {
        let n = 200_003
        var out1 = [Float](repeating: 0, count: n), out2 = out1
        var g1 = RandomGenerator(seed: 11), g2 = RandomGenerator(seed: 11)
        g1.fillTruncatedNormal(&out1, count: n, std: 0.02, threads: 1)
        g2.fillTruncatedNormal(&out2, count: n, std: 0.02, threads: 2)
        XCTAssertEqual(out1.map(\.bitPattern), out2.map(\.bitPattern))
        g1.fillUniform(&out1, count: n, threads: 1)
        g2.fillUniform(&out2, count: n, threads: 2)
        XCTAssertEqual(out1.map(\.bitPattern), out2.map(\.bitPattern))
    }

    func testMomentsAndBounds() throws {
        var g = RandomGenerator(seed: 1)
        let n = 400_000
        let u = try g.uniform([n], low: -1, high: 3).scalars
        XCTAssert(u.allSatisfy { $0 >= -1 && $0 < 3 })
        XCTAssertEqual(u.map(Double.init).reduce(0, +) / Double(n), 1, accuracy: 0.01)
        let z = try g.normal([n], mean: 2, std: 3).scalars.map(Double.init)
        let mean = z.reduce(0, +) / Double(n)
        let std = (z.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)).squareRoot()
        XCTAssertEqual(mean, 2, accuracy: 0.03)
        XCTAssertEqual(std, 3, accuracy: 0.03)
        // The official trunc_normal_(std=0.02) with absolute bounds +-2 is in effect N(0, 0.02^2).
        let t = try g.truncatedNormal([n], std: 0.02).scalars.map(Double.init)
        let tm = t.reduce(0, +) / Double(n)
        let ts = (t.map { ($0 - tm) * ($0 - tm) }.reduce(0, +) / Double(n)).squareRoot()
        XCTAssertEqual(tm, 0, accuracy: 2e-4)
        XCTAssertEqual(ts, 0.02, accuracy: 2e-4)
        // A tight truncation is respected and has the truncated normal's variance: for [-1, 1] std 1, 0.2911.
        let tight = try g.truncatedNormal([n], std: 1, a: -1, b: 1).scalars.map(Double.init)
        XCTAssert(tight.allSatisfy { $0 >= -1 && $0 <= 1 })
        let tv = tight.map { $0 * $0 }.reduce(0, +) / Double(n)
        XCTAssertEqual(tv, 0.2911, accuracy: 0.005)
    }

    func testInverseErf() {
        for p in stride(from: -0.999_999, through: 0.999_999, by: 0.001_37) {
            XCTAssertEqual(erf(inverseErf(p)), p, accuracy: 1e-14)
        }
        XCTAssertEqual(inverseErf(1), .infinity)
        XCTAssertEqual(inverseErf(-1), -.infinity)
    }
}

final class RandomScalarTests: XCTestCase {
    func testScalarDrawsAreInRangeAndRoughlyUniform() {
        var g = RandomGenerator(seed: 7)
        var counts = [Int](repeating: 0, count: 7)
        var sum = 0.0
        for _ in 0..<70_000 {
            let u = g.nextUniform()
            XCTAssert(u >= 0 && u < 1)
            sum += u
            counts[g.nextInt(below: 7)] += 1
        }
        XCTAssertEqual(sum / 70_000, 0.5, accuracy: 0.01)
        for c in counts { XCTAssertEqual(Double(c), 10_000, accuracy: 400) }  // ~4 sigma
        XCTAssertEqual(g.offset, 140_000)
    }

    func testDerivedStreamsAreReproducibleAndDistinct() {
        let g = RandomGenerator(seed: 3)
        var a = g.derived(1, 2), b = g.derived(1, 2), c = g.derived(2, 1)
        let x = (0..<8).map { _ in a.nextUniform() }
        XCTAssertEqual(x, (0..<8).map { _ in b.nextUniform() })
        XCTAssertNotEqual(x, (0..<8).map { _ in c.nextUniform() })
        XCTAssertNotEqual(RandomGenerator(seed: 4).derived(1, 2).seed, g.derived(1, 2).seed)
    }

    /// Each input of the derivation counts on its own: seed s with key k is not seed s ^ k with key 0 (the
    /// derivation before checkpoint format v2 XORed them), nor seed s + k, and purposes are domains of their own.
    func testSeedsKeysAndPurposesGiveDistinctGenerators() {
        var seen: [UInt64: String] = [:]
        for s: UInt64 in 0..<16 {
            for k: UInt64 in 0..<64 {
                let keyed = [("derived", RandomGenerator(seed: s).derived(k).seed)]
                    + RandomPurpose.allCases.map { ("\($0)", RandomGenerator(seed: s).stream($0, k).seed) }
                for (what, key) in keyed {
                    let name = "\(what) seed \(s) key \(k)"
                    XCTAssertNil(seen[key], "\(name) gives the generator of \(seen[key] ?? "")")
                    seen[key] = name
                }
            }
        }
        XCTAssertEqual(seen.count, 16 * 64 * (1 + RandomPurpose.allCases.count))
        // More keys are another stream, not an extension of the shorter one.
        XCTAssertNotEqual(RandomGenerator(seed: 1).derived(2).seed, RandomGenerator(seed: 1).derived(2, 0).seed)
        XCTAssertNotEqual(RandomGenerator(seed: 1).stream(.masks).seed, RandomGenerator(seed: 1).stream(.masks, 0).seed)
    }

    func testPermutationIsAPermutation() {
        var g = RandomGenerator(seed: 11)
        let p = g.permutation(1000)
        XCTAssertEqual(p.sorted(), Array(0..<1000))
        XCTAssertNotEqual(p, Array(0..<1000))
        XCTAssertEqual(g.permutation(1), [0])
        XCTAssertEqual(g.permutation(0), [])
    }
}
