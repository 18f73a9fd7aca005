import CPUKernels
import KernelBench
func run(_ m: Int, _ n: Int, _ k: Int, _ ta: Bool, _ tb: Bool, _ configs: [(Int, Int, Int)], threads: Int = 1) {
let a = UnsafeMutablePointer<Float>.allocate(capacity: m*k); for i in 0..<m*k { a[i] = Float(i % 7) * 0.1 }
let b = UnsafeMutablePointer<Float>.allocate(capacity: n*k); for i in 0..<n*k { b[i] = Float(i % 5) * 0.1 }
let c = UnsafeMutablePointer<Float>.allocate(capacity: m*n)
var res = [[Double]](repeating: [], count: configs.count)
for _ in 0..<5 { for (ci, (kc, mc, tasks)) in configs.enumerated() {
gemmTuningMaxTasks = tasks; gemmTuningKC = kc; gemmTuningMC = mc
let s = measure(minRuns: 3, minSeconds: 0.03) { sgemm(c: c, ldc: n, a: a, lda: ta ? m : k, transA: ta, b: b, ldb: tb ? k : n, transB: tb, m: m, n: n, k: k, threads: threads) }
res[ci].append(2.0*Double(m*n*k)/s.median/1e9)
}}
print(m, n, k, ta, tb, zip(configs, res).map { "\($0.0.0)/\($0.0.1)/\($0.0.2): \(Int($0.1.sorted()[2]))" }.joined(separator: "  "))
}
let cf = [(256, 144, 32), (256, 72, 32), (256, 144, 1)]
print("peak", PeakProbe.gflops(threads: 1))
for th in [1, 2] {
run(4096, 576, 192, false, true, cf, threads: th)
run(4096, 192, 768, false, true, cf, threads: th)
run(768, 192, 4096, true, false, cf, threads: th)
run(1024, 1024, 1024, false, false, cf, threads: th)
run(3136, 1536, 384, false, true, cf, threads: th)
run(1536, 384, 3136, true, false, cf, threads: th)
}
print("peak", PeakProbe.gflops(threads: 1))
