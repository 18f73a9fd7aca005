// SIMD8<Float> approximations of exp, erf, tanh and 1/sqrt, for the row kernels (softmax, GELU, LayerNorm).
// Coefficients: tools/fit_vector_math.py (least squares on Chebyshev nodes) and Cephes' expf polynomial.
// Measured max errors against libm (in Double, rounded) over dense sweeps are asserted in
// Tests/CPUKernelsTests/VectorMathTests.swift and listed in docs/vector-math.md.

public typealias Float8 = SIMD8<Float>

@usableFromInline enum VM {
    // exp
    @usableFromInline static let log2e: Float = 1.442_695_04
    @usableFromInline static let ln2Hi: Float = 0.693_359_375     // few mantissa bits: n * ln2Hi is exact
    @usableFromInline static let ln2Lo: Float = -2.121_944_40e-4
    @usableFromInline static let roundMagic: Float = 12_582_912   // 1.5 * 2^23: adding it rounds to an integer
    @usableFromInline static let expP: (Float, Float, Float, Float, Float, Float) =
        (1.987_569_150_0e-4, 1.398_199_950_7e-3, 8.333_451_907_3e-3, 4.166_579_589_4e-2, 1.666_666_545_9e-1, 5.000_000_120_1e-1)
    // erf(x) = x * P(x^2), |x| < 1
    @usableFromInline static let erfSmall: (Float, Float, Float, Float, Float, Float, Float) =
        (1.128379167e+00, -3.761262988e-01, 1.128362573e-01, -2.685539945e-02, 5.191218374e-03, -8.034846623e-04, 7.933493808e-05)
    // erfc(x) = exp(-x^2) * Q(1/x), 1 <= x <= 4
    @usableFromInline static let erfcLarge: (Float, Float, Float, Float, Float, Float, Float, Float, Float, Float, Float) =
        (2.596134825e-05, 5.637192283e-01, 3.015458261e-03, -2.851863087e-01, -6.926850837e-02, 8.994859738e-01,
         -1.524053959e+00, 1.424004875e+00, -8.106041742e-01, 2.646626336e-01, -3.821760485e-02)
    // tanh(x) = x + x^3 * P(x^2), |x| < 0.625
    @usableFromInline static let tanhSmall: (Float, Float, Float, Float, Float, Float) =
        (-3.333333101e-01, 1.333321258e-01, -5.394746204e-02, 2.170403794e-02, -8.184744453e-03, 2.149052865e-03)
}

@inlinable @inline(__always)
func splat(_ x: Float) -> Float8 { Float8(repeating: x) }

/// e^x, 8 lanes. Cody-Waite reduction x = n ln2 + r, degree-7 polynomial for e^r, 2^n applied in two halves so
/// that results from the subnormal range up to overflow (x > 88.72 gives +inf) come out right. NaN propagates.
@_transparent
public func vexp(_ x: Float8) -> Float8 {
    let xc = vclamp(x, -104, 89)
    let t = fmadd(splat(VM.roundMagic), xc, splat(VM.log2e))  // magic + round(x log2 e) in the low bits
    let n = t - splat(VM.roundMagic)
    var r = fmadd(xc, n, splat(-VM.ln2Hi))
    r = fmadd(r, n, splat(-VM.ln2Lo))
    let c = VM.expP
    var p = fmadd(splat(c.1), splat(c.0), r)
    p = fmadd(splat(c.2), p, r)
    p = fmadd(splat(c.3), p, r)
    p = fmadd(splat(c.4), p, r)
    p = fmadd(splat(c.5), p, r)
    p = fmadd(r + 1, p, r * r)
    let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- unsafeBitCast(splat(VM.roundMagic), to: SIMD8<Int32>.self)
    let n1 = ni &>> 1
    let n2 = ni &- n1
    let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: Float8.self)
    let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: Float8.self)
    let y = p * s1 * s2
    return y.replacing(with: x, where: x .!= x)
}

/// e^x on 16 lanes, `vexp`'s arithmetic lane for lane (the same bits), for AVX-512 builds. The clamp and the NaN
/// test compare the bit patterns as integers: in Swift 6.3 a comparison of two `SIMD16<Float>` compiles to 16 scalar
/// compares, one of two `SIMD16<Int32>` to a zmm `vpmaxsd` / `vpcmpgtd`. `key` orders non-NaN floats as integers
/// (negative patterns reversed); a NaN leaves the clamp as a bound and is put back at the end, as in `vexp`.
/// A change to either exp must go to both: `testExp16EqualsExpBitForBit` compares them over 1M bit patterns.
@_transparent
func vexp16(_ x: SIMD16<Float>) -> SIMD16<Float> {
    typealias I16 = SIMD16<Int32>
    @_transparent func key(_ b: I16) -> I16 { b ^ ((b &>> 31) & 0x7fff_ffff) }  // its own inverse
    let bits = unsafeBitCast(x, to: I16.self)
    let lo = key(I16(repeating: Int32(bitPattern: Float(-104).bitPattern)))
    let hi = key(I16(repeating: Int32(bitPattern: Float(89).bitPattern)))
    var k = key(bits)
    k = k.replacing(with: lo, where: k .< lo)
    k = k.replacing(with: hi, where: k .> hi)
    let xc = unsafeBitCast(key(k), to: SIMD16<Float>.self)
    typealias F16 = SIMD16<Float>
    let magic = F16(repeating: VM.roundMagic)
    let t = fmadd(magic, xc, F16(repeating: VM.log2e))
    let n = t - magic
    var r = fmadd(xc, n, F16(repeating: -VM.ln2Hi))
    r = fmadd(r, n, F16(repeating: -VM.ln2Lo))
    let c = VM.expP
    var p = fmadd(F16(repeating: c.1), F16(repeating: c.0), r)
    p = fmadd(F16(repeating: c.2), p, r)
    p = fmadd(F16(repeating: c.3), p, r)
    p = fmadd(F16(repeating: c.4), p, r)
    p = fmadd(F16(repeating: c.5), p, r)
    p = fmadd(r + 1, p, r * r)
    let ni = unsafeBitCast(t, to: I16.self) &- unsafeBitCast(magic, to: I16.self)
    let n1 = ni &>> 1
    let n2 = ni &- n1
    let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: F16.self)
    let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: F16.self)
    let y = unsafeBitCast(p * s1 * s2, to: I16.self)
    let isNaN = (bits & 0x7fff_ffff) .> I16(repeating: 0x7f80_0000)
    return unsafeBitCast(y.replacing(with: bits, where: isNaN), to: F16.self)
}

/// erf(x), 8 lanes: x P(x^2) below |x| = 1, 1 - e^{-x^2} Q(1/|x|) above (erf rounds to +-1 past 3.92).
@_transparent
public func verf(_ x: Float8) -> Float8 {
    let ax = vabs(x)
    let a = vclamp(ax, 1, 4)
    let large = 1 - vexp(-(a * a)) * erfcLargeQ(a)
    return erfSmallBranch(x).replacing(with: copySign(large, x), where: ax .>= 1)
}

/// erf(x) and e^{-x^2}, which the large branch of erf computes anyway: GELU's derivative needs both, and
/// sharing the exp took its backward from 12.8 to 10.6 ms on 4096x768 values. (A separate form: in `verf`
/// the unclamped exp measured 13 % slower.)
@_transparent
public func verfAndGaussian(_ x: Float8) -> (erf: Float8, gaussian: Float8) {
    let ax = vabs(x)
    let gaussian = vexp(-(x * x))  // Q's argument is clamped to [1, 4]; e^{-x^2} is not (it underflows to 0)
    let large = 1 - gaussian * erfcLargeQ(vclamp(ax, 1, 4))
    return (erfSmallBranch(x).replacing(with: copySign(large, x), where: ax .>= 1), gaussian)
}

/// x P(x^2): erf for |x| < 1.
@_transparent @usableFromInline
func erfSmallBranch(_ x: Float8) -> Float8 {
    let z = x * x
    let s = VM.erfSmall
    var p = fmadd(splat(s.5), splat(s.6), z)
    p = fmadd(splat(s.4), p, z)
    p = fmadd(splat(s.3), p, z)
    p = fmadd(splat(s.2), p, z)
    p = fmadd(splat(s.1), p, z)
    return x * fmadd(splat(s.0), p, z)
}

/// Q(1/a) with erfc(a) = e^{-a^2} Q(1/a), for a in [1, 4].
@_transparent @usableFromInline
func erfcLargeQ(_ a: Float8) -> Float8 {
    let t = 1 / a
    let l = VM.erfcLarge
    var q = fmadd(splat(l.9), splat(l.10), t)
    q = fmadd(splat(l.8), q, t)
    q = fmadd(splat(l.7), q, t)
    q = fmadd(splat(l.6), q, t)
    q = fmadd(splat(l.5), q, t)
    q = fmadd(splat(l.4), q, t)
    q = fmadd(splat(l.3), q, t)
    q = fmadd(splat(l.2), q, t)
    q = fmadd(splat(l.1), q, t)
    return fmadd(splat(l.0), q, t)
}

/// tanh(x), 8 lanes: x + x^3 P(x^2) below |x| = 0.625, 1 - 2 / (e^{2|x|} + 1) above.
@inlinable @inline(__always)
public func vtanh(_ x: Float8) -> Float8 {
    let z = x * x
    let c = VM.tanhSmall
    var p = fmadd(splat(c.4), splat(c.5), z)
    p = fmadd(splat(c.3), p, z)
    p = fmadd(splat(c.2), p, z)
    p = fmadd(splat(c.1), p, z)
    p = fmadd(splat(c.0), p, z)
    let small = fmadd(x, x * z, p)
    let ax = vmin(vabs(x), splat(44))
    let large = copySign(1 - 2 / (vexp(ax + ax) + 1), x)
    return small.replacing(with: large, where: vabs(x) .>= 0.625)
}

/// 1 / sqrt(x), 8 lanes: correctly rounded sqrt and one division (<= 1.5 ulps; a single call per LayerNorm row
/// makes the faster rsqrt-estimate-plus-Newton form not worth its 2-3 ulps).
@inlinable @inline(__always)
public func vrsqrt(_ x: Float8) -> Float8 {
    1 / x.squareRoot()
}

/// The exact (erf) GELU, as `nn.GELU()` in the official code: 0.5 x (1 + erf(x / sqrt 2)).
@_transparent
public func vgelu(_ x: Float8) -> Float8 {
    geluFromErf(x, verf(x * 0.707_106_77))
}

/// d GELU / dx = Phi(x) + x phi(x) = 0.5 (1 + erf(x / sqrt 2)) + x e^{-x^2/2} / sqrt(2 pi).
@_transparent
public func vgeluDerivative(_ x: Float8) -> Float8 {
    let (e, g) = verfAndGaussian(x * 0.707_106_77)  // g = e^{-x^2/2}
    return geluDerivativeFrom(x, erf: e, gaussian: g)
}

/// `vgelu` of four vectors, the same values. When every lane has |x / sqrt 2| < 1, erf's polynomial branch
/// is all `verf` would select, so its other branch (an exp, a division and a degree-10 polynomial, most of the
/// work) is skipped. At initialisation a ViT's fc1 outputs have a standard deviation of about 0.3 (LayerNorm'd
/// inputs, weights of std 0.02, width 192), and in the short runs this engine is used for they stay there: nearly
/// every vector takes the short path; mixed vectors take the full one.
@_transparent
public func vgelu4(_ x0: Float8, _ x1: Float8, _ x2: Float8, _ x3: Float8) -> (Float8, Float8, Float8, Float8) {
    let s0 = x0 * 0.707_106_77, s1 = x1 * 0.707_106_77, s2 = x2 * 0.707_106_77, s3 = x3 * 0.707_106_77
    if erfPolynomialCovers(s0, s1, s2, s3) {
        return (geluFromErf(x0, erfSmallBranch(s0)), geluFromErf(x1, erfSmallBranch(s1)),
                geluFromErf(x2, erfSmallBranch(s2)), geluFromErf(x3, erfSmallBranch(s3)))
    }
    return (geluFromErf(x0, verf(s0)), geluFromErf(x1, verf(s1)), geluFromErf(x2, verf(s2)), geluFromErf(x3, verf(s3)))
}

/// `vgeluDerivative` of four vectors, the same values; the short path of `vgelu4` (the Gaussian is needed
/// either way, so only erf's division and polynomial are skipped).
@_transparent
public func vgeluDerivative4(
    _ x0: Float8, _ x1: Float8, _ x2: Float8, _ x3: Float8
) -> (Float8, Float8, Float8, Float8) {
    let s0 = x0 * 0.707_106_77, s1 = x1 * 0.707_106_77, s2 = x2 * 0.707_106_77, s3 = x3 * 0.707_106_77
    if erfPolynomialCovers(s0, s1, s2, s3) {
        @_transparent func d(_ x: Float8, _ s: Float8) -> Float8 {
            geluDerivativeFrom(x, erf: erfSmallBranch(s), gaussian: vexp(-(s * s)))
        }
        return (d(x0, s0), d(x1, s1), d(x2, s2), d(x3, s3))
    }
    @_transparent func d(_ x: Float8, _ s: Float8) -> Float8 {
        let (e, g) = verfAndGaussian(s)
        return geluDerivativeFrom(x, erf: e, gaussian: g)
    }
    return (d(x0, s0), d(x1, s1), d(x2, s2), d(x3, s3))
}

@_transparent @usableFromInline
func geluFromErf(_ x: Float8, _ e: Float8) -> Float8 {
    let h = 0.5 * x
    return fmadd(h, h, e)
}

@_transparent @usableFromInline
func geluDerivativeFrom(_ x: Float8, erf e: Float8, gaussian g: Float8) -> Float8 {
    let cdf = fmadd(splat(0.5), splat(0.5), e)
    return fmadd(cdf, x, g * 0.398_942_28)
}

/// True when no lane of the four vectors reaches |s| >= 1, where `verf` switches to its second branch
/// (NaN lanes count as covered, as `verf` sends them to the polynomial too).
@_transparent @usableFromInline
func erfPolynomialCovers(_ s0: Float8, _ s1: Float8, _ s2: Float8, _ s3: Float8) -> Bool {
    let one = Float8(repeating: 1)
    return !any((vabs(s0) .>= one) .| (vabs(s1) .>= one) .| (vabs(s2) .>= one) .| (vabs(s3) .>= one))
}

/// Lane-wise min / max / clamp through compare + select. The stdlib's `pointwiseMin`/`pointwiseMax` (and so
/// `clamped`) were not inlined and ran lane by lane: GELU at 3 GFLOP/s instead of 20+.
@inlinable @inline(__always)
func vmin(_ a: Float8, _ b: Float8) -> Float8 { a.replacing(with: b, where: b .< a) }
@inlinable @inline(__always)
func vmax(_ a: Float8, _ b: Float8) -> Float8 { a.replacing(with: b, where: b .> a) }
@inlinable @inline(__always)
func vclamp(_ x: Float8, _ lo: Float, _ hi: Float) -> Float8 { vmin(vmax(x, splat(lo)), splat(hi)) }

@inlinable @inline(__always)
func vabs(_ x: Float8) -> Float8 {
    unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7fff_ffff, to: Float8.self)
}

@inlinable @inline(__always)
func copySign(_ magnitude: Float8, _ sign: Float8) -> Float8 {
    let m = unsafeBitCast(magnitude, to: SIMD8<UInt32>.self) & 0x7fff_ffff
    let s = unsafeBitCast(sign, to: SIMD8<UInt32>.self) & 0x8000_0000
    return unsafeBitCast(m | s, to: Float8.self)
}

// Scalar forms for tails and tests: the same arithmetic on lane 0, so a row's tail matches its body.
@inlinable @inline(__always) public func vexp(_ x: Float) -> Float { vexp(Float8(repeating: x))[0] }
@inlinable @inline(__always) public func verf(_ x: Float) -> Float { verf(Float8(repeating: x))[0] }
@inlinable @inline(__always) public func vtanh(_ x: Float) -> Float { vtanh(Float8(repeating: x))[0] }
@inlinable @inline(__always) public func vgelu(_ x: Float) -> Float { vgelu(Float8(repeating: x))[0] }
@inlinable @inline(__always) public func vgeluDerivative(_ x: Float) -> Float { vgeluDerivative(Float8(repeating: x))[0] }
