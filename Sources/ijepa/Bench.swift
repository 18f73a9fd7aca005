import ArgumentParser
@_spi(Tuning) import CPUKernels
import Foundation
import IJEPA
import KernelBench
import NNLayers
import TensorCore

struct BenchOptions: ParsableArguments {
    @Flag(help: "Print one JSON object per line instead of a table.")
    var json = false

    @Option(help: "Thread counts to run, comma separated (default: all cores).")
    var threads: String?

    @Option(help: "Run only the cases whose name contains this text.")
    var filter: String?

    @Flag(help: "With --filter: only the case with exactly that name.")
    var exact = false

    @Option(help: "Use this per-core peak (GFLOP/s) instead of measuring it (for tools that run many short benchmarks).")
    var peakGflops: Double?

    @Option(help: "Minimum seconds of timed runs per case (median of at least 5 runs is reported).")
    var minSeconds: Double = 0.3

    @Flag(help: "A short smoke run: a few cases, little timing (for CI).")
    var quick = false

    @Flag(help: "List the selected cases as JSON lines (name and shape) without running them.")
    var list = false

    func threadCounts() throws -> [Int] {
        guard let threads else { return [Parallel.hardwareThreads] }
        let values = threads.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--threads expects positive integers separated by commas, got '\(threads)'")
        }
        return values.map { $0! }
    }

    func selected<T>(_ items: [T], name: (T) -> String, quickNames: Set<String>) -> [T] {
        items.filter { item in
            (filter.map { exact ? name(item) == $0 : name(item).contains($0) } ?? true)
                && (!quick || quickNames.contains(name(item)))
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: GEMM and row kernels, in GFLOP/s and % of the peak measured in the same run.",
        subcommands: [All.self, GEMM.self, Kernels.self, MLP.self, ViT.self, IJEPA.self, Embed.self, Peak.self],
        defaultSubcommand: All.self)

    struct All: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Peak probe, GEMM suite and row kernels.")
        @OptionGroup var options: BenchOptions
        func run() throws { try runSuites(options, gemm: true, kernels: true) }
    }

    struct GEMM: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "GEMM on ViT-Tiny / ViT-S/16 layer shapes (forward NT, input-gradient NN, weight-gradient TN) and squares.")
        @OptionGroup var options: BenchOptions
        @Option(help: "Time these shapes instead of the suite, comma separated: MxNxK, optionally :NN, :NT, :TN or :TT (op(A) op(B), default NN), e.g. 5376x288x96:NT; a P after them packs op(B) once ahead, as the Encoder's weights (256x5120x1280:NTP), and a count after the P uses that many packed copies in turn, so that op(B) comes from L3 or memory as a model's layers' weights do (:NTP24).")
        var shape: String?
        @Option(help: ArgumentHelp(
            "Compare the blocking with these values against the built-in one, e.g. KC=256,MC=144 (keys KC, MC, MCT, MCW, TILE, AOUTER, PF, FAR, FARG, ROWS).",
            discussion: "Both run in one process in alternating single runs (--ab-rounds each); prints the medians and the variant's speed-up per case, then the geometric mean."))
        var ab: String?
        @Option(name: .customLong("ab-rounds"), help: "Alternating rounds per case with --ab.")
        var abRounds = 30
        func run() throws {
            let custom = try shape.map { try $0.split(separator: ",").map { try parseGEMMShape(String($0)) } }
            if let ab, !options.list {
                let variant = try parseBlocking(ab)
                guard abRounds >= 1 else { throw ValidationError("--ab-rounds must be >= 1, got \(abRounds)") }
                let cases = custom ?? gemmSuiteCases(options)
                try runBlockingAB(cases, variant: variant, rounds: options.quick ? 2 : abRounds, options: options)
                return
            }
            try runSuites(options, gemm: true, kernels: false, gemmCases: custom)
        }
    }

    struct Kernels: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Row kernels (LayerNorm, GELU, softmax, bias, residual, AdamW), forward and backward.")
        @OptionGroup var options: BenchOptions
        func run() throws { try runSuites(options, gemm: false, kernels: true) }
    }

    struct MLP: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mlp",
            abstract: "A transformer MLP (fc1, GELU, fc2, residual): the fused op against the three separate ops.",
            discussion: """
                Both forms run in alternating rounds in one process (forward on a no-grad tape,
                and forward + backward); the table gives the fused op's median time and
                GFLOP/s (the two GEMMs' FLOPs) and the median of the per-round ratios
                separate/fused (> 1: the fusion is faster). The bits are compared first.
                """)
        @OptionGroup var options: BenchOptions
        @Option(help: "Alternating rounds per case (median of the per-round ratios reported).")
        var rounds = 11
        func run() throws {
            let cases = options.selected(MLPBench.standard, name: \.name, quickNames: ["predictor"])
            if options.list {
                for c in cases {
                    print(jsonLine([("name", .string(c.name)), ("m", .int(c.rows)), ("dim", .int(c.dim)), ("hidden", .int(c.hidden))]))
                }
                return
            }
            let threads = try options.threadCounts()
            let peak = measurePeak(options)
            if options.json {
                print(jsonLine([("peakGflops", .double(peak.perCore)), ("simd", .string(SIMDPath.name))]))
            } else {
                print(String(format: "SIMD path: %@, measured peak %.1f GFLOP/s per core", SIMDPath.name, peak.perCore))
                print("name                     thr   fused ms  separate ms  separate/fused   GFLOP/s  %peak")
            }
            for t in threads {
                for c in cases {
                    for training in [false, true] {
                        let r = try MLPBench.run(c, training: training, threads: t, peakPerCore: peak.perCore,
                                                 rounds: options.quick ? 3 : rounds)
                        if options.json {
                            print(r.json)
                        } else {
                            print(r.name.padded(to: 24) + String(format: "%4d  %9.2f  %11.2f  %14.3f  %8.1f  %5.1f",
                                                                 t, r.medianMs, r.extraNumber("separateMedianMs") ?? 0,
                                                                 r.extraNumber("separateOverFused") ?? 0, r.gflops, r.pctPeak))
                        }
                        fflush(stdout)
                    }
                }
            }
        }
    }

    struct Embed: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "embed",
            abstract: "Encoder inference (the app's embed path): latency at batch 1 and throughput at larger batches.",
            discussion: """
                Cases: vit-tiny4-28 (the main job's encoder), vit-s16 and vit-h14 (224 px),
                random weights of the official architectures. Each row: median ms per
                call, images/s, GFLOP/s and % of the peak measured in the same run, peak
                RSS (weights included). tools/embed_vs_onnxruntime.py runs the same models
                in PyTorch and ONNX Runtime.
                """)
        @OptionGroup var options: BenchOptions
        @Option(help: "Batches to time, comma separated (default: each case's own: 1, 8, 16, 32; ViT-H 1, 8).")
        var batches: String?
        @Flag(help: "Profile the timed runs per op and print the table after each row (JSON lines with --json).")
        var profile = false
        @Option(help: ArgumentHelp(
            "Compare the built-in GEMM blocking with these values, e.g. MCW=0 (keys as bench gemm --ab).",
            discussion: "Alternating single embeddings (--ab-rounds each) per case, thread count and batch; prints the medians, the variant's speed-up and the features' largest relative difference."))
        var ab: String?
        @Option(help: "Alternating rounds per row with --ab.")
        var abRounds = 20
        @Flag(help: ArgumentHelp(
            "Serve single timed calls for a harness that alternates engines (one case, one thread count).",
            discussion: "Warms up each of --batches, prints a JSON line {\"ready\":true,...}, then for each batch size read from stdin (one per line) embeds once and prints {\"batch\":B,\"seconds\":S,\"peakRSSBytes\":R}; stops at the end of stdin. tools/embed_vs_onnxruntime.py drives it."))
        var serve = false
        func run() throws {
            let cases = options.selected(EmbedBench.standard, name: \.name, quickNames: ["vit-tiny4-28"])
            if options.list { return listModelCases(cases.map { ($0.name, $0.batches.max() ?? 1) }) }
            let chosen = try batches.map { text -> [Int] in
                let v = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !v.isEmpty, v.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--batches expects positive integers, got '\(text)'") }
                return v
            }
            let threads = try options.threadCounts()
            if serve {
                guard cases.count == 1, threads.count == 1, ab == nil, !profile else {
                    throw ValidationError("--serve needs one case (--filter NAME --exact) and one thread count, without --ab or --profile")
                }
                let c = cases[0]
                try EmbedBench.serve(c, encoder: try Encoder(randomWeights: c.config), batches: chosen ?? c.batches,
                                     threads: threads[0], input: { readLine() }, output: { print($0); fflush(stdout) })
                return
            }
            if let ab {
                let variant = try parseBlocking(ab)
                guard abRounds >= 1 else { throw ValidationError("--ab-rounds must be >= 1, got \(abRounds)") }
                print("A: \(GEMMBlocking.Tuning())  B: \(variant)  (\(abRounds) alternating runs each)")
                print("name                 thr  batch     A ms      B ms  B/A speed  max rel diff")
                for c in cases {
                    let encoder = try Encoder(randomWeights: c.config)
                    for t in threads {
                        for b in chosen ?? c.batches {
                            let r = try EmbedBench.runAB(c, encoder: encoder, batch: b, threads: t, variant: variant,
                                                         rounds: options.quick ? 2 : abRounds)
                            print(c.name.padded(to: 20) + String(format: "%4d  %5d  %8.2f  %8.2f  %9.3f  %12.2e", t, b, r.a, r.b,
                                                                 r.a / r.b, r.maxRelDiff))
                            fflush(stdout)
                        }
                    }
                }
                return
            }
            let peak = printModelBenchHeader(options)
            for c in cases {
                let encoder = try Encoder(randomWeights: c.config)
                for t in threads {
                    for b in (options.quick ? [1] : chosen ?? c.batches) {
                        let profiler = profile ? OpProfiler() : nil
                        let r = try EmbedBench.run(c, encoder: encoder, batch: b, threads: t, peakPerCore: peak.perCore,
                                                   minRuns: options.quick ? 1 : 3, minSeconds: options.quick ? 0 : options.minSeconds,
                                                   profiler: profiler)
                        printModelBenchRow(r, options: options, threads: t, batch: b,
                                           imagesPerSecond: Double(b) / (r.medianMs / 1e3))
                        if let profiler {
                            printProfile(profiler, name: r.name, threads: t, steps: Int(r.extraNumber("runs") ?? 1),
                                         wallSeconds: r.extraNumber("totalSeconds") ?? 0, json: options.json)
                        }
                        fflush(stdout)
                    }
                }
            }
        }
    }

    struct ViT: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "vit",
            abstract: "ViT forward and training step (forward + backward + AdamW): tiny32 (batch 64) and ViT-S/16 (batch 16).")
        @OptionGroup var options: BenchOptions
        @Option(help: "Timed steps per case (median reported).")
        var steps = 3
        @Flag(help: "Profile the timed steps per op and print the table after each case (JSON lines with --json).")
        var profile = false
        func run() throws {
            let cases = options.selected(ViTBench.standard, name: \.name, quickNames: ["tiny32"])
            if options.list { return listModelCases(cases.map { ($0.name, $0.batch) }) }
            let threads = try options.threadCounts()
            let peak = printModelBenchHeader(options)
            for t in threads {
                for c in cases {
                    for training in [false, true] {
                        let profiler = profile ? OpProfiler() : nil
                        let n = options.quick ? 1 : steps
                        let r = try ViTBench.run(c, training: training, threads: t, peakPerCore: peak.perCore,
                                                 minRuns: n, profiler: profiler)
                        printModelBenchRow(r, options: options, threads: t, batch: c.batch,
                                           imagesPerSecond: Double(c.batch) / (r.medianMs / 1e3))
                        if let profiler {
                            // Steps are timed one by one, so their sum is the profiled wall time.
                            printProfile(profiler, name: r.name, threads: t, steps: n,
                                         wallSeconds: r.extraNumber("totalSeconds") ?? 0, json: options.json)
                        }
                        fflush(stdout)
                    }
                }
            }
        }
    }

    struct IJEPA: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ijepa",
            abstract: "The I-JEPA training step: (a) ijepa-fmnist, the default Fashion-MNIST model; (b) ijepa-vits16, ViT-S/16 224 px; each also -recompute.",
            discussion: """
                Target encoder + context encoder + predictor + smooth-L1 + backward + AdamW +
                EMA on synthetic images with the official masks of steps 0..<steps (seed 0).
                GFLOP/s: matmul FLOPs only, backward = 2x forward. The -recompute cases run the
                same step with the trained blocks recomputed in the backward pass
                (engine.recompute_blocks): the same numbers, less memory, a second forward
                pass of those blocks. --dump-masks FILE writes those masks for
                tools/ijepa_vs_pytorch.py.
                """)
        @OptionGroup var options: BenchOptions
        @Option(help: "Timed steps per case (each with the masks of its step).")
        var steps = 5
        @Option(name: .customLong("dump-masks"), help: "Write the masks of the selected case to this safetensors file and exit.")
        var dumpMasks: String?
        @Flag(help: "Profile the timed steps per op and print the table after each case (JSON lines with --json).")
        var profile = false
        @Option(help: ArgumentHelp(
            "Compare the built-in step (A) with a variant of the same bits (B) in one training run: separate-norms, separate-gelu, separate-inputs (B: the block's LayerNorms, its GELU, or both as their own ops), keep-probabilities (B: attention keeps its probabilities for the backward pass instead of recomputing them), or gemm:MC=..,MCT=..,TILE=.. (other GEMM blocking).",
            discussion: "The steps alternate between A and B (--ab-rounds rounds, one mask batch per round on both sides); prints both median step times and the median per-round B/A speed."))
        var ab: String?
        @Option(name: .customLong("ab-rounds"), help: "Alternating rounds per case with --ab.")
        var abRounds = 12
        func run() throws {
            let cases = options.selected(IJEPABench.standard, name: \.name, quickNames: ["ijepa-fmnist"])
            if let ab, !options.list { return try runStepAB(cases, variant: ab) }
            if let dumpMasks {
                guard cases.count == 1 else { throw ValidationError("--dump-masks needs --filter naming one case") }
                try IJEPABench.dumpMasks(cases[0], steps: steps, to: dumpMasks)
                return
            }
            if options.list { return listModelCases(cases.map { ($0.name, $0.batch) }) }
            let threads = try options.threadCounts()
            let peak = printModelBenchHeader(options)
            for t in threads {
                for c in cases {
                    let profiler = profile ? OpProfiler() : nil
                    let n = options.quick ? 1 : steps
                    let r = try IJEPABench.run(c, threads: t, peakPerCore: peak.perCore, steps: n, profiler: profiler)
                    let images = r.extraNumber("imagesPerSecond") ?? 0
                    printModelBenchRow(r, options: options, threads: t, batch: c.batch, imagesPerSecond: images)
                    if let profiler {
                        // Wall time of the profiled steps: their count times the mean step (images / rate).
                        printProfile(profiler, name: c.name, threads: t, steps: n, wallSeconds: Double(c.batch * n) / images,
                                     json: options.json)
                    }
                    fflush(stdout)
                }
            }
        }
    }

    struct Peak: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Measure fp32 FMA throughput per core and on all cores.")
        @OptionGroup var options: BenchOptions
        func run() throws { try runSuites(options, gemm: false, kernels: false) }
    }
}

/// The per-op table of a profiled benchmark case (or its JSON lines, each tagged with the case and threads).
func printProfile(_ profiler: OpProfiler, name: String, threads: Int, steps: Int, wallSeconds: Double, json: Bool) {
    if json {
        for line in profiler.jsonLines(steps: steps, wallSeconds: wallSeconds) {
            print("{\"profile\": \"\(name)\", \"threads\": \(threads), " + line.dropFirst())
        }
    } else {
        print(profiler.table(steps: steps, wallSeconds: wallSeconds))
    }
}

/// `--list` of the model benchmarks: one JSON line per selected case, nothing run.
func listModelCases(_ cases: [(name: String, batch: Int)]) {
    for c in cases { print(jsonLine([("name", .string(c.name)), ("batch", .int(c.batch))])) }
}

/// The first lines of the model benchmarks (ViT, I-JEPA): the measured peak as JSON or a table header.
func printModelBenchHeader(_ options: BenchOptions) -> PeakInfo {
    let peak = measurePeak(options)
    if options.json {
        print(jsonLine([("peakGflops", .double(peak.perCore)), ("simd", .string(SIMDPath.name))]))
    } else {
        print(String(format: "SIMD path: %@, measured peak %.1f GFLOP/s per core", SIMDPath.name, peak.perCore))
        print("name                   thr  batch   images/s   GFLOP/s  %peak  median ms  peak RSS MiB")
    }
    return peak
}

func printModelBenchRow(_ r: BenchResult, options: BenchOptions, threads: Int, batch: Int, imagesPerSecond: Double) {
    if options.json {
        print(r.json)
    } else {
        let rss = Double(ProcessMemory.peakResidentBytes()) / 1_048_576
        print(r.name.padded(to: 22) + String(format: "%4d  %5d  %9.1f  %8.1f  %5.1f  %9.1f  %12.0f",
                                             threads, batch, imagesPerSecond, r.gflops, r.pctPeak, r.medianMs, rss))
    }
}

/// The measured machine peak, printed first so every later percentage can be checked.
struct PeakInfo {
    var perCore: Double
    var allCores: Double
    var cores: Int
}

func measurePeak(_ options: BenchOptions) -> PeakInfo {
    let cores = Parallel.hardwareThreads
    if let given = options.peakGflops { return PeakInfo(perCore: given, allCores: given * Double(cores), cores: cores) }
    let iterations = options.quick ? 2_000_000 : 20_000_000
    let one = PeakProbe.gflops(threads: 1, iterations: iterations)
    let all = cores > 1 ? PeakProbe.gflops(threads: cores, iterations: iterations) : one
    return PeakInfo(perCore: one, allCores: all, cores: cores)
}

/// The GEMM suite's cases that --filter / --exact / --quick select.
func gemmSuiteCases(_ options: BenchOptions) -> [GEMMCase] {
    options.selected(GEMMSuite.standard, name: \.name, quickNames: ["vit-tiny.qkv", "vit-tiny.fc2.wgrad", "square512"])
}

/// "KC=384,MC=96,MCT=768,MCW=264,TILE=32768,AOUTER=1,PF=1024,FAR=1" (any subset): the built-in blocking with these
/// values changed (MCW: rows up to which one block takes all rows, 0 off; AOUTER: 1 A micro-panels outer, 0 B
/// outer; PF: the AVX-512 tile's prefetch distance in bytes; FAR: 1 the tiles prefetch the next B panels, 0 not;
/// FARG: 1 with op(B) packed ahead that prefetch reaches into the next k group, 0 it stops at the group's end;
/// ROWS: 1 a short A is cut into one row block per thread, 0 its columns are cut).
func parseBlocking(_ text: String) throws -> GEMMBlocking.Tuning {
    var t = GEMMBlocking.Tuning()
    for item in text.split(separator: ",") {
        let kv = item.split(separator: "=", omittingEmptySubsequences: false)
        let key = kv.first?.trimmingCharacters(in: .whitespaces).uppercased()
        guard kv.count == 2, let v = Int(kv[1].trimmingCharacters(in: .whitespaces)),
              key == "AOUTER" || key == "FAR" || key == "FARG" || key == "ROWS" ? v == 0 || v == 1 : key == "MCW" || key == "PF" ? v >= 0 : v >= 1 else {
            throw ValidationError("--ab expects KEY=VALUE pairs with positive values (MCW and PF >= 0, AOUTER, FAR, FARG and ROWS 0 or 1) separated by commas, got '\(item)'")
        }
        switch key {
        case "KC": t.kc = v
        case "MC":
            guard v % GEMMBlocking.MR == 0 else { throw ValidationError("--ab: MC must be a multiple of MR (\(GEMMBlocking.MR)), got \(v)") }
            t.mc = v
        case "MCT":
            guard v % GEMMBlocking.MR == 0 else { throw ValidationError("--ab: MCT must be a multiple of MR (\(GEMMBlocking.MR)), got \(v)") }
            t.mcTransposedA = v
        case "MCW": t.mcWhole = v
        case "PF": t.prefetchBytes = v
        case "FAR": t.farPrefetch = v != 0
        case "FARG": t.farAcrossGroups = v != 0
        case "TILE": t.maxTileFloats = v
        case "AOUTER": t.aPanelOuter = v != 0
        case "ROWS": t.shortARows = v != 0
        default: throw ValidationError("--ab: unknown key '\(kv[0])' (use KC, MC, MCT, MCW, TILE, AOUTER, PF, FAR, FARG or ROWS)")
        }
    }
    return t
}

func runBlockingAB(_ cases: [GEMMCase], variant: GEMMBlocking.Tuning, rounds: Int, options: BenchOptions) throws {
    let threads = try options.threadCounts()
    let base = GEMMBlocking.Tuning()
    if !options.json {
        print("A: \(base)  B: \(variant)  (\(rounds) alternating runs each)")
        print("name                    thr     A ms      B ms   A GFLOP/s  B GFLOP/s  B/A speed")
    }
    var failures: [String] = []
    for t in threads {
        var logSum = 0.0
        for c in cases {
            let r = abBlockingGEMM(c, threads: t, variant: variant, rounds: rounds)
            if r.validationError > 2 { failures.append("\(c.name) (\(t) threads): result does not match the reference") }
            let speed = r.extraNumber("variantSpeedup") ?? .nan
            logSum += log(speed)
            if options.json {
                print(r.json)
            } else {
                print(r.name.padded(to: 22) + String(format: "%4d  %8.3f  %8.3f  %10.1f %10.1f  %9.3f", t, r.medianMs,
                                                     r.extraNumber("variantMedianMs") ?? .nan, r.gflops,
                                                     r.extraNumber("variantGflops") ?? .nan, speed))
            }
            fflush(stdout)
        }
        let geomean = exp(logSum / Double(max(1, cases.count)))
        if options.json {
            print(jsonLine([("summary", .string("gemm-ab")), ("threads", .int(t)), ("cases", .int(cases.count)),
                            ("geomeanVariantSpeedup", .double(geomean))]))
        } else {
            print(String(format: "geometric mean of B/A speed over %d cases at %d thread(s): %.3f", cases.count, t, geomean))
        }
    }
    if !failures.isEmpty {
        throw ValidationError("validation failed:\n  " + failures.joined(separator: "\n  "))
    }
}

/// "MxNxK[:XY[P[copies]]]" with X, Y in {N, T}, P: op(B) packed ahead (in `copies` copies used in turn, 1 to
/// 1000): a GEMM case named after its shape.
func parseGEMMShape(_ text: String) throws -> GEMMCase {
    let parts = text.trimmingCharacters(in: .whitespaces).split(separator: ":", omittingEmptySubsequences: false)
    let dims = parts[0].split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
    var ops = parts.count > 1 ? String(parts[1]).uppercased() : "NN"
    var copies: Int? = 1
    let packedB = ops.count >= 3 && Array(ops)[2] == "P"
    if packedB {
        let count = ops.dropFirst(3)
        copies = count.isEmpty ? 1 : Int(count)
        ops = String(ops.prefix(2))
    }
    guard parts.count <= 2, dims.count == 3, dims.allSatisfy({ ($0 ?? 0) >= 1 }), ["NN", "NT", "TN", "TT"].contains(ops),
          let copies, (1...1000).contains(copies) else {
        throw ValidationError("--shape expects MxNxK with positive sizes and an optional :NN, :NT, :TN or :TT (+ P: B packed ahead, + a count 1-1000: that many packed copies used in turn), got '\(text)'")
    }
    let suffix = packedB ? "P" + (copies > 1 ? String(copies) : "") : ""
    return GEMMCase("\(dims[0]!)x\(dims[1]!)x\(dims[2]!).\(ops)\(suffix)", m: dims[0]!, n: dims[1]!, k: dims[2]!,
                    transA: ops.first == "T", transB: ops.last == "T", packedB: packedB, packedCopies: copies)
}

func runSuites(_ options: BenchOptions, gemm: Bool, kernels: Bool, gemmCases: [GEMMCase]? = nil) throws {
    let threads = try options.threadCounts()
    let peak = options.list ? PeakInfo(perCore: 0, allCores: 0, cores: Parallel.hardwareThreads) : measurePeak(options)
    let header: [(String, JSONValue)] = [
        ("peakGflops", .double(peak.perCore)), ("peakGflopsAllCores", .double(peak.allCores)),
        ("cores", .int(peak.cores)), ("simd", .string(SIMDPath.name)),
        ("threads", .string(threads.map(String.init).joined(separator: ","))),
        ("date", .string(ISO8601DateFormatter().string(from: Date()))),
    ]
    if options.list {
        // no header: the list is the whole output
    } else if options.json {
        print(jsonLine(header))
    } else {
        print("SIMD path: \(SIMDPath.name)")
        if let advice = SIMDPath.advice { print("note: \(advice)") }
        print(String(format: "measured peak: %.1f GFLOP/s per core, %.1f on %d cores", peak.perCore, peak.allCores, peak.cores))
    }
    var failures: [String] = []
    let minSeconds = options.quick ? 0.02 : options.minSeconds
    if gemm {
        let cases = gemmCases ?? gemmSuiteCases(options)
        if options.list {
            for c in cases {
                print(jsonLine([("name", .string(c.name)), ("m", .int(c.m)), ("n", .int(c.n)), ("k", .int(c.k)),
                                ("transA", .bool(c.transA)), ("transB", .bool(c.transB))]))
            }
        } else {
            if !options.json { print("\n" + gemmTableHeader) }
            for t in threads {
                for c in cases {
                    let r = benchmarkGEMM(c, threads: t, peakPerCore: peak.perCore, minSeconds: minSeconds)
                    if r.validationError > 2 { failures.append("\(c.name) (\(t) threads): result does not match the reference") }
                    print(options.json ? r.json : gemmTableRow(r, c))
                    fflush(stdout)
                }
            }
        }
    }
    if kernels {
        let cases = options.selected(RowKernelSuite.standard, name: \.name,
                                     quickNames: ["layernorm.fwd.vit-tiny", "softmax.bwd.vit-tiny", "gelu.fwd.vit-tiny"])
        if options.list {
            for c in cases {
                print(jsonLine([("name", .string(c.name)), ("flops", .double(c.cost.flops)), ("bytes", .double(c.cost.bytes))]))
            }
            return
        }
        if !options.json { print("\n" + rowTableHeader) }
        for t in threads {
            for c in cases {
                let r = RowKernelSuite.run(c, threads: t, peakPerCore: peak.perCore, minSeconds: minSeconds * 0.7)
                if r.validationError > 1 { failures.append("\(c.name) (\(t) threads): result does not match the reference") }
                print(options.json ? r.json : rowTableRow(r))
                fflush(stdout)
            }
        }
    }
    if !failures.isEmpty {
        throw ValidationError("validation failed, timings skipped:\n  " + failures.joined(separator: "\n  "))
    }
}

let gemmTableHeader = "name                      m      n      k  op  thr   GFLOP/s  %peak  median ms   best ms"
func gemmTableRow(_ r: BenchResult, _ c: GEMMCase) -> String {
    let op = (c.transA ? "T" : "N") + (c.transB ? "T" : "N")
    return r.name.padded(to: 22) + String(format: "%7d%7d%7d  %@ %4d  %8.1f  %5.1f  %9.3f  %8.3f",
                                          c.m, c.n, c.k, op, r.threads, r.gflops, r.pctPeak, r.medianMs, r.bestMs)
}

let rowTableHeader = "name                               thr   GFLOP/s   GB/s  median ms"
func rowTableRow(_ r: BenchResult) -> String {
    r.name.padded(to: 33) + String(format: "%5d  %8.1f  %5.1f  %9.3f", r.threads, r.gflops, r.gbPerSecond, r.medianMs)
}

extension String {
    func padded(to n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}

extension Bench.IJEPA {
    /// The variants `bench ijepa --ab` knows: name -> switch (true: the variant, false: the built-in setting).
    static let stepVariants: [String: (inout Engine, Bool) -> Void] = [
        "separate-norms": { $0.fusedNorms = !$1 },
        "separate-gelu": { $0.fusedGELU = !$1 },
        "separate-inputs": { $0.fusedNorms = !$1; $0.fusedGELU = !$1 },
        "keep-probabilities": { $0.attentionKeepsProbabilities = $1 },
    ]

    /// `gemm:MC=..,MCT=..,TILE=..`: other GEMM blocking for the whole step. KC is refused: it changes the bits.
    static func gemmStepVariant(_ variant: String) throws -> ((inout Engine, Bool) -> Void)? {
        guard variant.hasPrefix("gemm:") else { return nil }
        let base = GEMMBlocking.Tuning()
        let other = try parseBlocking(String(variant.dropFirst(5)))
        guard other.kc == base.kc else { throw ValidationError("--ab gemm:...: KC changes the results' bits, so it cannot alternate within one run") }
        return { $0.kernels.blocking = $1 ? other : base }
    }

    func runStepAB(_ cases: [IJEPABench.Case], variant: String) throws {
        guard let set = try Self.stepVariants[variant] ?? Self.gemmStepVariant(variant) else {
            throw ValidationError("--ab: unknown variant '\(variant)' (known: \(Self.stepVariants.keys.sorted().joined(separator: ", ")), "
                                  + "gemm:MC=..,MCT=..,TILE=..)")
        }
        guard abRounds >= 1 else { throw ValidationError("--ab-rounds must be >= 1, got \(abRounds)") }
        let rounds = options.quick ? 2 : abRounds
        if !options.json { print("A: built-in  B: \(variant)  (\(rounds) alternating rounds)\nname                   thr      A ms      B ms   B/A speed (min-max)") }
        for t in try options.threadCounts() {
            for c in cases {
                let r = try IJEPABench.ab(c, threads: t, rounds: rounds, variant: variant, set: set)
                if options.json {
                    print(r.json)
                } else {
                    print(r.name.padded(to: 22) + String(format: "%4d  %8.1f  %8.1f   %6.3f (%.3f-%.3f)", t, r.medianMs,
                                                         r.extraNumber("variantMedianMs") ?? .nan, r.extraNumber("variantSpeedup") ?? .nan,
                                                         r.extraNumber("variantSpeedupMin") ?? .nan, r.extraNumber("variantSpeedupMax") ?? .nan))
                }
                fflush(stdout)
            }
        }
    }
}
