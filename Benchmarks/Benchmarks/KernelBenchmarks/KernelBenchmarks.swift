// GEMM and row-kernel benchmarks for package-benchmark. GFLOP/s and % of the peak measured at start-up are
// custom metrics (scaled by 10 to keep one decimal in package-benchmark's integer samples: 785 = 78.5).
// The same cases, with validation against the reference, run in `ijepa bench`.
import Benchmark
import CPUKernels

let gflopsX10 = BenchmarkMetric.custom("GFLOP/s x10", polarity: .prefersLarger, useScalingFactor: false)
let pctPeakX10 = BenchmarkMetric.custom("% of peak x10", polarity: .prefersLarger, useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    let peakPerCore = PeakProbe.gflops(threads: 1)
    print("SIMD path \(SIMDPath.name), measured peak \(peakPerCore) GFLOP/s per core")
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .peakMemoryResident, gflopsX10, pctPeakX10],
        warmupIterations: 1, maxDuration: .seconds(2), maxIterations: 20)

    for threads in [1, Parallel.hardwareThreads] {
        for c in GEMMSuite.standard {
            Benchmark("gemm.\(c.name).t\(threads)") { benchmark in
                let result = benchmarkGEMM(c, threads: threads, peakPerCore: peakPerCore, minSeconds: 0.1)
                precondition(result.validationError <= 2, "\(c.name): result does not match the reference")
                benchmark.measurement(gflopsX10, Int((result.gflops * 10).rounded()))
                benchmark.measurement(pctPeakX10, Int((result.pctPeak * 10).rounded()))
            }
        }
        for c in RowKernelSuite.standard {
            Benchmark("\(c.name).t\(threads)") { benchmark in
                let result = RowKernelSuite.run(c, threads: threads, peakPerCore: peakPerCore, minSeconds: 0.05)
                precondition(result.validationError <= 1, "\(c.name): result does not match the reference")
                benchmark.measurement(gflopsX10, Int((result.gflops * 10).rounded()))
                benchmark.measurement(pctPeakX10, Int((result.pctPeak * 10).rounded()))
            }
        }
    }
}
