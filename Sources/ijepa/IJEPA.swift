import ArgumentParser
import CPUKernels

@main
struct IJEPA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ijepa",
        abstract: "A pure-Swift CPU engine for I-JEPA: kernels, autograd, the ViT, benchmarks (training comes next).",
        discussion: """
            Examples:
              ijepa bench                      peak, GEMM and row kernels at the given threads, as tables
              ijepa bench gemm --json          GEMM suite as JSON lines (first line: measured peak, SIMD path)
              ijepa bench gemm --threads 1 --filter vit-tiny
              ijepa bench vit --threads 1,2    ViT forward and training step: images/s, GFLOP/s, peak RSS
              ijepa info                       compiled SIMD path and thread count
            """,
        subcommands: [Train.self, Probe.self, Embed.self, Masks.self, ExportPNG.self, Bench.self, Info.self])
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the compiled SIMD path and the hardware threads.")
    func run() {
        print("SIMD path: \(SIMDPath.name)")
        print("hardware threads: \(Parallel.hardwareThreads)")
        if let advice = SIMDPath.advice { print("note: \(advice)") }
    }
}
