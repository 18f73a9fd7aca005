import Foundation
import XCTest
@testable import CPUKernels

/// Max error of the SIMD approximations against libm (Double, so the reference is exact to Float precision),
/// over dense sweeps. The bounds here are the ones stated in docs/vector-math.md.
final class VectorMathTests: XCTestCase {
    /// Evaluates `f` 8 lanes at a time over `n` evenly spaced points of [lo, hi] and returns the max ulp error.
    func sweep(_ lo: Float, _ hi: Float, n: Int, _ f: (Float8) -> Float8, _ ref: (Double) -> Double,
               where include: (Double) -> Bool = { _ in true }) -> (ulps: Double, at: Float) {
        var worst = (0.0, Float(0))
        var i = 0
        while i < n {
            var x = Float8()
            for l in 0..<8 { x[l] = lo + (hi - lo) * Float(min(i + l, n - 1)) / Float(n - 1) }
            let y = f(x)
            for l in 0..<8 {
                let r = ref(Double(x[l]))
                guard include(r) else { continue }
                let e = ulpError(y[l], r)
                if e > worst.0 { worst = (e, x[l]) }
            }
            i += 8
        }
        return worst
    }

    func testExpWithinTwoUlps() {
        // Normal results: x in [-87.3, 88.7].
        let e = sweep(-87.3, 88.72, n: 2_000_000, vexp, Foundation.exp)
        XCTAssertLessThanOrEqual(e.ulps, 2, "exp: \(e.ulps) ulps at x = \(e.at)")
        let small = sweep(-2, 2, n: 1_000_000, vexp, Foundation.exp)
        XCTAssertLessThanOrEqual(small.ulps, 2, "exp near 0: \(small.ulps) ulps at x = \(small.at)")
        print("vexp max error: \(max(e.ulps, small.ulps)) ulps")
        // Edges: overflow to +inf, underflow to 0, subnormal results within a subnormal ulp or two, NaN.
        let edges = vexp(Float8(89, 100, -104, -200, .nan, 0, -.infinity, .infinity))
        XCTAssertEqual(edges[0], .infinity)
        XCTAssertEqual(edges[1], .infinity)
        XCTAssertEqual(edges[2], 0)
        XCTAssertEqual(edges[3], 0)
        XCTAssert(edges[4].isNaN)
        XCTAssertEqual(edges[5], 1)
        XCTAssertEqual(edges[6], 0)
        XCTAssertEqual(edges[7], .infinity)
        for x: Float in [-88, -90, -95, -100, -103] {
            let y = vexp(x), r = Foundation.exp(Double(x))
            XCTAssertLessThanOrEqual(abs(Double(y) - r), 2 * Double(Float.leastNonzeroMagnitude) + r * 1e-6,
                                     "subnormal exp(\(x)) = \(y), expected \(r)")
        }
    }

    /// The 16-lane exp (AVX-512 builds' softmax) gives `vexp`'s bits on every lane: bit patterns spread over all
    /// 2^32 (NaNs with payloads and both signs, infinities, subnormals), and the clamp's bounds and neighbours.
    func testExp16EqualsExpBitForBit() {
        var patterns: [UInt32] = [0, 0x8000_0000, 0x7f80_0000, 0xff80_0000, 0x7fc0_0000, 0xffc0_0001, 0x7f80_0001, 1,
                                  0x8000_0001, 0x7f7f_ffff, 0xff7f_ffff]
        for bound: Float in [-104, 89, -87.3, 88.72, 0] {
            for d in -3...3 { patterns.append(UInt32(bitPattern: Int32(bitPattern: bound.bitPattern) &+ Int32(d))) }
        }
        var b: UInt32 = 0
        while true {
            patterns.append(b)
            let (next, overflow) = b.addingReportingOverflow(4093)
            if overflow { break }
            b = next
        }
        while patterns.count % 16 != 0 { patterns.append(0x3f80_0000) }
        var mismatches = 0, first = ""
        for i in stride(from: 0, to: patterns.count, by: 16) {
            var x = SIMD16<Float>()
            for l in 0..<16 { x[l] = Float(bitPattern: patterns[i + l]) }
            let y16 = vexp16(x), y8 = (vexp(x.lowHalf), vexp(x.highHalf))
            for l in 0..<16 where y16[l].bitPattern != (l < 8 ? y8.0[l] : y8.1[l - 8]).bitPattern {
                if mismatches == 0 { first = "x = \(x[l]) (0x\(String(patterns[i + l], radix: 16)))" }
                mismatches += 1
            }
        }
        XCTAssertEqual(mismatches, 0, "vexp16 differs from vexp on \(mismatches) of \(patterns.count) inputs, first \(first)")
        XCTAssertGreaterThan(patterns.count, 1_000_000)
    }

    func testErfWithinThreeUlps() {
        let e = sweep(-5, 5, n: 2_000_000, verf, Foundation.erf)
        XCTAssertLessThanOrEqual(e.ulps, 3, "erf: \(e.ulps) ulps at x = \(e.at)")
        let tiny = sweep(-1e-3, 1e-3, n: 100_000, verf, Foundation.erf)
        XCTAssertLessThanOrEqual(tiny.ulps, 3, "erf near 0: \(tiny.ulps) ulps at x = \(tiny.at)")
        print("verf max error: \(max(e.ulps, tiny.ulps)) ulps")
        let edges = verf(Float8(10, -10, .infinity, -.infinity, 0, -0.0, .nan, 1))
        XCTAssertEqual(Array(edges.indices.map { edges[$0] }.prefix(6)), [1, -1, 1, -1, 0, 0])
        XCTAssert(edges[6].isNaN)
    }

    func testTanhWithinThreeUlps() {
        let e = sweep(-10, 10, n: 2_000_000, vtanh, Foundation.tanh)
        XCTAssertLessThanOrEqual(e.ulps, 3, "tanh: \(e.ulps) ulps at x = \(e.at)")
        let tiny = sweep(-1e-2, 1e-2, n: 100_000, vtanh, Foundation.tanh)
        XCTAssertLessThanOrEqual(tiny.ulps, 3, "tanh near 0: \(tiny.ulps) ulps at x = \(tiny.at)")
        print("vtanh max error: \(max(e.ulps, tiny.ulps)) ulps")
        XCTAssertEqual(vtanh(100), 1)
        XCTAssertEqual(vtanh(-100), -1)
    }

    func testRsqrtWithinOneAndAHalfUlps() {
        let e = sweep(1e-6, 1e4, n: 1_000_000, vrsqrt, { 1 / $0.squareRoot() })
        XCTAssertLessThanOrEqual(e.ulps, 1.5, "rsqrt: \(e.ulps) ulps at x = \(e.at)")
    }

    /// GELU = 0.5 x (1 + erf(x / sqrt 2)) computed in Float loses relative accuracy for very negative x (as in
    /// PyTorch, which uses the same formula): the bound is absolute, scaled by |x|.
    func testGeluAndDerivativeMatchDouble() {
        func gelu(_ x: Double) -> Double { 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot())) }
        func dgelu(_ x: Double) -> Double {
            0.5 * (1 + Foundation.erf(x / 2.0.squareRoot())) + x * Foundation.exp(-x * x / 2) / (2 * Double.pi).squareRoot()
        }
        var worst = 0.0, worstD = 0.0
        for i in 0...200_000 {
            let x = Float(-10 + 20 * Double(i) / 200_000)
            worst = max(worst, abs(Double(vgelu(x)) - gelu(Double(x))) / max(1, Double(abs(x))))
            worstD = max(worstD, abs(Double(vgeluDerivative(x)) - dgelu(Double(x))))
        }
        XCTAssertLessThan(worst, 4e-7, "gelu error \(worst)")
        XCTAssertLessThan(worstD, 1e-6, "gelu derivative error \(worstD)")
    }

    /// The four-vector forms take a short path when every lane is in erf's polynomial branch; it must give the
    /// bits of the one-vector forms, on all-small groups, mixed groups and special values alike.
    func testFourVectorGeluEqualsOneVectorGeluBitForBit() {
        var rng = SystemRandomNumberGenerator()
        var groups: [[Float8]] = []
        for scale: Float in [0.3, 1.0, 1.4142, 3.0] {  // 0.3: all lanes small; larger: mixed groups
            for _ in 0..<2000 {
                groups.append((0..<4).map { _ in Float8((0..<8).map { _ in Float.random(in: -scale...scale, using: &rng) }) })
            }
        }
        let edge: Float = 1.4142135  // |x / sqrt 2| just below and above 1
        groups.append([Float8(repeating: edge.nextDown), Float8(repeating: -edge.nextDown), Float8(0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 1, -1),
                       Float8(.nan, 0, 0, 0, 0, 0, 0, 0)])
        groups.append([Float8(repeating: edge), Float8(.infinity, -.infinity, 10, -10, 0, 0, 0, 0), Float8(), Float8()])
        var shortPathGroups = 0
        for g in groups {
            let y = vgelu4(g[0], g[1], g[2], g[3]), d = vgeluDerivative4(g[0], g[1], g[2], g[3])
            let ys = [y.0, y.1, y.2, y.3], ds = [d.0, d.1, d.2, d.3]
            for v in 0..<4 {
                let want = vgelu(g[v]), wantD = vgeluDerivative(g[v])
                for l in 0..<8 {
                    XCTAssertEqual(ys[v][l].bitPattern, want[l].bitPattern, "gelu(\(g[v][l]))")
                    XCTAssertEqual(ds[v][l].bitPattern, wantD[l].bitPattern, "gelu'(\(g[v][l]))")
                }
            }
            if g.allSatisfy({ x in (0..<8).allSatisfy { abs(x[$0] * 0.707_106_77) < 1 || x[$0].isNaN } }) { shortPathGroups += 1 }
        }
        XCTAssertGreaterThan(shortPathGroups, 2000, "the short path was exercised")
        XCTAssertLessThan(shortPathGroups, groups.count - 2000, "the full path was exercised")
    }

    func testCompiledPathIsNamed() {
        XCTAssertFalse(SIMDPath.name.isEmpty)
        #if arch(x86_64)
        XCTAssert(SIMDPath.name.contains("fma") || SIMDPath.name.contains("mul+add"))
        #endif
        print("SIMD path under test: \(SIMDPath.name)")
    }
}
