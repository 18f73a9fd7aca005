import ArgumentParser
import CPUKernels

@main
struct IJEPA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ijepa",
        abstract: "A pure-Swift CPU engine for I-JEPA: pretraining, linear probes, embeddings, mask pictures and benchmarks.",
        discussion: """
            Examples:
              ijepa train --probe
                  train the default small I-JEPA on Fashion-MNIST, then the probe table
              ijepa train --resume
                  continue the run in runs/fashion-mnist from its checkpoint
              ijepa probe
                  probe a finished run again: I-JEPA vs random init vs raw pixels
              ijepa embed --output features.safetensors
                  average-pooled target-encoder features of the test split
              ijepa masks --output masks.png
                  the context and target blocks of one training step
              ijepa bench ijepa --profile
                  the I-JEPA step and its per-op profile table
              ijepa bench gemm --json
                  the GEMM suite as JSON lines (first line: measured peak, SIMD path)
              ijepa info
                  compiled SIMD path and thread count
            Each subcommand has its own --help; docs/training.md and docs/performance.md
            explain the output.
            """,
        subcommands: [Train.self, Probe.self, Embed.self, Import.self, Masks.self, ExportPNG.self, Bench.self, Info.self, MPICheck.self])

    static func main() {
        useOneMallocArena()
        main(Array(CommandLine.arguments.dropFirst()))
    }
}

/// glibc gives each thread that allocates its own heap ("arena"); the kernels' worker threads allocate scratch,
/// and memory freed in one arena does not serve the next block in another. One arena: ViT-S/16's step at 2
/// threads (`bench ijepa`, 3 steps) peaked at 1536 instead of 1563 MiB at the same speed; 1 thread unchanged.
/// Set by the command-line tool only: an app that embeds the library keeps its own allocator settings.
func useOneMallocArena() {
    #if canImport(Glibc)
    _ = glibcMallopt(-8, 1)  // M_ARENA_MAX (malloc.h)
    #endif
}

#if canImport(Glibc)
/// glibc's `mallopt` (declared in malloc.h, which the Glibc module does not export).
@_silgen_name("mallopt") func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the compiled SIMD path and the hardware threads.")
    func run() {
        print("SIMD path: \(SIMDPath.name)")
        print("hardware threads: \(Parallel.hardwareThreads)")
        if let advice = SIMDPath.advice { print("note: \(advice)") }
    }
}
