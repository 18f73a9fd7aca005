import SIMDProbe

/// Which SIMD instruction set this build of the kernels was compiled for.
///
/// Decided by the compiler flags of the build (see docs/building.md), read through the `SIMDProbe` header.
public enum SIMDPath {
    /// True when fused multiply-add instructions were compiled in (`-Xcc -mfma` or a `-target-cpu` with FMA).
    @inlinable @inline(__always) public static var hasFMA: Bool { IJEPA_SIMD_HAS_FMA != 0 }
    @inlinable @inline(__always) public static var hasAVX2: Bool { IJEPA_SIMD_HAS_AVX2 != 0 }
    @inlinable @inline(__always) public static var hasAVX: Bool { IJEPA_SIMD_HAS_AVX != 0 }
    @inlinable @inline(__always) public static var hasAVX512F: Bool { IJEPA_SIMD_HAS_AVX512F != 0 }
    @inlinable @inline(__always) public static var hasNEON: Bool { IJEPA_SIMD_HAS_NEON != 0 }

    /// A short name of the compiled path, printed by every benchmark, e.g. "avx2+fma".
    public static var name: String {
        var parts: [String] = []
        if hasAVX512F { parts.append("avx512f") } else if hasAVX2 { parts.append("avx2") } else if hasAVX {
            parts.append("avx")
        } else if hasNEON { parts.append("neon") } else {
            #if arch(x86_64)
            parts.append("sse2")
            #else
            parts.append("generic")
            #endif
        }
        parts.append(hasFMA ? "fma" : "no-fma (mul+add)")
        return parts.joined(separator: "+")
    }

    /// A hint for users when the fast path is off.
    public static var advice: String? {
        #if arch(x86_64)
        if !hasFMA || !hasAVX2 {
            return "built without AVX2/FMA: rebuild with `-Xcc -mavx2 -Xcc -mfma` for ~2-4x faster kernels"
        }
        #endif
        return nil
    }
}

/// `acc + a * b`, fused when the build has FMA.
///
/// Without FMA, `addingProduct` on SIMD8 lowers to eight libm `fmaf` calls (~0.6 GFLOP/s, docs/building.md);
/// mul + add keeps the vector width instead. The branch is a compile-time constant.
@inlinable @inline(__always)
public func fmadd(_ acc: SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
    if SIMDPath.hasFMA {
        return acc.addingProduct(a, b)
    } else {
        return acc + a * b
    }
}

/// `acc + a * b` on a float vector of any width (the GEMM's SIMD8 or SIMD16), fused when the build has FMA.
@inline(__always)
func fmadd<V: SIMD>(_ acc: V, _ a: V, _ b: V) -> V where V.Scalar == Float {
    SIMDPath.hasFMA ? acc.addingProduct(a, b) : acc + a * b
}

/// Scalar `acc + a * b`, fused when the build has FMA (one rounding), else two roundings.
@inlinable @inline(__always)
public func fmadd(_ acc: Float, _ a: Float, _ b: Float) -> Float {
    if SIMDPath.hasFMA {
        return acc.addingProduct(a, b)
    } else {
        return acc + a * b
    }
}

/// Asks for the cache line at `address` (prefetcht0) ahead of its use, through the C header's inline
/// `ijepa_prefetch` (`__builtin_prefetch`): Swift has no API for the hint. It never faults, so it may point past
/// the end of a buffer.
@inline(__always)
func prefetch(_ address: UnsafeRawPointer) { ijepa_prefetch(address) }
