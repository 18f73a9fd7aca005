import XCTest
@testable import CPUKernels

/// Deterministic test data: a small LCG, so tests need nothing but the kernels under test.
struct TestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 6364136223846793005 &+ 1442695040888963407 }
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 11
    }
    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(Double(next()) / Double(1 << 53) * 2 - 1) }
    mutating func floats(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in float() * scale } }
}

/// Distance in float ulps between a Float result and a Double reference (measured at the reference).
func ulpError(_ y: Float, _ ref: Double) -> Double {
    if y.isNaN || ref.isNaN { return y.isNaN && ref.isNaN ? 0 : .infinity }
    let r = Float(ref)
    if r.isInfinite || y.isInfinite { return r == y ? 0 : .infinity }
    let ulp = Double(max(r.magnitude.ulp, Float.leastNormalMagnitude.ulp))
    return abs(Double(y) - ref) / ulp
}

/// Central-difference gradient of sum(w * f(x)) against an analytic gradient, in Double.
/// f is evaluated in Float, so the step is large-ish and the tolerance is relative to the largest gradient.
func checkGradient(
    _ name: String, x: [Float], weights: [Float], step: Float = 1e-2, tolerance: Double = 2e-3,
    forward: ([Float]) -> [Float], analytic: [Float], file: StaticString = #filePath, line: UInt = #line
) {
    func loss(_ v: [Float]) -> Double {
        zip(forward(v), weights).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    var worst = 0.0
    let scale = max(1e-3, analytic.map { Double(abs($0)) }.max() ?? 0)
    for i in x.indices {
        var xp = x, xm = x
        xp[i] += step
        xm[i] -= step
        let h = Double(xp[i]) - Double(xm[i])  // the step actually taken in Float
        let num = (loss(xp) - loss(xm)) / h
        worst = max(worst, abs(num - Double(analytic[i])) / scale)
    }
    XCTAssertLessThan(worst, tolerance, "\(name): finite-difference mismatch \(worst) (relative to max |grad| \(scale))",
                      file: file, line: line)
}
