#ifndef IJEPA_SIMD_PROBE_H
#define IJEPA_SIMD_PROBE_H
// Swift has no `#if targetFeature(...)`. Clang sees the same -Xcc / -target-cpu flags as the Swift code,
// so these macros, imported as constants, tell the kernels which path was compiled in. The branches on
// them fold away at compile time.
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
#define IJEPA_SIMD_HAS_FMA 1
#else
#define IJEPA_SIMD_HAS_FMA 0
#endif
#if defined(__AVX512F__)
#define IJEPA_SIMD_HAS_AVX512F 1
#else
#define IJEPA_SIMD_HAS_AVX512F 0
#endif
#if defined(__AVX2__)
#define IJEPA_SIMD_HAS_AVX2 1
#else
#define IJEPA_SIMD_HAS_AVX2 0
#endif
#if defined(__AVX__)
#define IJEPA_SIMD_HAS_AVX 1
#else
#define IJEPA_SIMD_HAS_AVX 0
#endif
#if defined(__ARM_NEON)
#define IJEPA_SIMD_HAS_NEON 1
#else
#define IJEPA_SIMD_HAS_NEON 0
#endif
// Swift has no API for the prefetch hint either (and LLVM's intrinsic bound by name with @_silgen_name broke
// ThreadSanitizer builds: the sanitizer turns calls into invokes, which LLVM refuses for intrinsics). A read
// prefetch into all cache levels (x86 prefetcht0), inlined into the Swift caller; a hint, it never faults.
static inline __attribute__((always_inline)) void ijepa_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}
#endif
