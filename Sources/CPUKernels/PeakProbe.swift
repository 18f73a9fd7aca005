import Dispatch

/// Measures this machine's fp32 multiply-add throughput with the same SIMD path the kernels were built
/// with, so "% of peak" is relative to a number measured in the same run.
public enum PeakProbe {
    /// GFLOP/s of `threads` threads running independent FMA chains at once (total, not per thread).
    public static func gflops(threads: Int = 1, iterations: Int = 20_000_000) -> Double {
        var best = Double.infinity
        for run in 0..<4 {  // one warm-up run, then the best of three
            let start = DispatchTime.now().uptimeNanoseconds
            if threads <= 1 {
                sink(chains(iterations: iterations, seed: 1))
            } else {
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    sink(chains(iterations: iterations, seed: Float(t + 1)))
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            if run > 0 { best = min(best, seconds) }
        }
        // 12 chains x lanes x 2 FLOP per iteration.
        let flops = Double(iterations) * 12 * Double(lanes) * 2 * Double(max(1, threads))
        return flops / best / 1e9
    }

    /// Lanes of the widest vector the kernels use: 16 in an AVX-512 build (its GEMM's peak), else 8.
    static var lanes: Int { SIMDPath.hasAVX512F ? 16 : 8 }

    static func chains(iterations: Int, seed: Float) -> Float {
        SIMDPath.hasAVX512F ? fmaChains(SIMD16<Float>.self, iterations: iterations, seed: seed)
            : fmaChains(SIMD8<Float>.self, iterations: iterations, seed: seed)
    }

    /// 12 independent accumulators: FMA latency 4 cycles x 2 pipes needs >= 8 in flight.
    @inline(never)
    static func fmaChains<V: SIMD>(_: V.Type, iterations: Int, seed: Float) -> Float where V.Scalar == Float {
        let a = V(repeating: 0.999_999 * seed / seed), b = V(repeating: 1e-7)
        var c0 = V(repeating: seed), c1 = c0 + 1, c2 = c0 + 2, c3 = c0 + 3, c4 = c0 + 4, c5 = c0 + 5
        var c6 = c0 + 6, c7 = c0 + 7, c8 = c0 + 8, c9 = c0 + 9, c10 = c0 + 10, c11 = c0 + 11
        for _ in 0..<iterations {
            c0 = fmadd(b, c0, a); c1 = fmadd(b, c1, a); c2 = fmadd(b, c2, a); c3 = fmadd(b, c3, a)
            c4 = fmadd(b, c4, a); c5 = fmadd(b, c5, a); c6 = fmadd(b, c6, a); c7 = fmadd(b, c7, a)
            c8 = fmadd(b, c8, a); c9 = fmadd(b, c9, a); c10 = fmadd(b, c10, a); c11 = fmadd(b, c11, a)
        }
        let s = (c0 + c1 + c2 + c3) + (c4 + c5 + c6 + c7) + (c8 + c9 + c10 + c11)
        return s.sum()
    }
}

private let sinkBox = SinkBox()
private final class SinkBox: @unchecked Sendable { var value: Float = 0 }
/// Keeps a benchmark's result alive so the optimizer cannot remove the work that made it.
@inline(never) package func sink(_ x: Float) { if x == 1.2345 { sinkBox.value = x } }
