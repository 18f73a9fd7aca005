@_spi(Tuning) import CPUKernels
import Foundation
import IJEPA
import JEPA
import TensorCore

/// Inference benchmarks of `Encoder` (the app's path: no tape, pooled features): latency at batch 1 and
/// throughput at larger batches, on random weights of the official architectures.
package enum EmbedBench {
    package struct Case: Sendable {
        package var name: String
        package var config: ViTConfig
        /// Batches timed: 1 for latency, the others for throughput (each engine is judged at its best).
        package var batches: [Int]
    }

    /// The main job's encoder (ViT-Tiny width, patch 4, 28 px gray, 6 blocks), ViT-S/16 and ViT-H/14 at 224 px.
    package static var standard: [Case] {
        [Case(name: "vit-tiny4-28", config: .tiny28(inChannels: 1, depth: 6), batches: [1, 8, 16, 32]),
         Case(name: "vit-s16", config: .small(), batches: [1, 8, 16, 32]),
         Case(name: "vit-h14", config: .huge(), batches: [1, 8])]
    }

    /// Times `encoder.embed(preprocessed:)` of `batch` random images on `threads` threads: one warm-up run, then
    /// runs until `minSeconds` have passed and at least `minRuns` were made; the median is reported. The peak RSS
    /// is this case's (weights included). With `profiler`, the timed runs are profiled per op (the sum of their
    /// times is returned as `totalSeconds`).
    package static func run(_ c: Case, encoder: Encoder, batch: Int, threads: Int, peakPerCore: Double,
                           minRuns: Int = 3, minSeconds: Double = 1, profiler: OpProfiler? = nil) throws -> BenchResult {
        let saved = encoder.engine
        encoder.engine = saved.with(threads: threads)
        defer { encoder.engine = saved }
        encoder.engine.releaseMemory()
        ProcessMemory.resetPeak()
        var rng = RandomGenerator(seed: 2)
        let a = c.config
        let images = try rng.normal([batch, a.inChannels, a.imageSize, a.imageSize])
        encoder.batchSize = batch
        let warm = try encoder.embed(preprocessed: images)
        guard warm.scalars.allSatisfy(\.isFinite) else {
            throw TensorError.incompatibleShapes(operation: "embed bench \(c.name): non-finite features", [batch], [])
        }
        var samples: [Double] = []
        encoder.engine.profiler = profiler
        let start = monotonicSeconds()
        while samples.count < minRuns || monotonicSeconds() - start < minSeconds {
            let t0 = monotonicSeconds()
            profiler?.startStep()
            profiler?.begin("embed")
            _ = try encoder.embed(preprocessed: images)
            profiler?.begin("end")  // closes the last op's glue
            samples.append(monotonicSeconds() - t0)
        }
        let total = samples.reduce(0, +)
        samples.sort()
        let median = samples[samples.count / 2]
        let gflops = ViTBench.forwardFlopsPerImage(a) * Double(batch) / median / 1e9
        return BenchResult(
            name: "\(c.name).embed", kind: "embed", threads: threads, medianMs: median * 1e3, bestMs: samples[0] * 1e3,
            gflops: gflops, pctPeak: 100 * gflops / (peakPerCore * Double(threads)), gbPerSecond: 0, validationError: 0,
            extra: [("batch", .int(batch)), ("imagesPerSecond", .double(Double(batch) / median)),
                    ("runs", .int(samples.count)), ("peakRSSBytes", .int(ProcessMemory.peakResidentBytes())),
                    ("totalSeconds", .double(total))])
    }

    /// Serves timed single calls to a harness that alternates engines call by call (tools/embed_vs_onnxruntime.py):
    /// prepares random images for each of `batches` and embeds each once (warm-up), prints `{"ready":true,...}`,
    /// then for every line of `input` that holds one of those batches embeds it once and prints
    /// `{"batch":B,"seconds":S,"peakRSSBytes":R}` (R: the process's peak since its start, weights included). Stops
    /// at the end of `input`; an empty line is ignored, any other line is an error.
    package static func serve(_ c: Case, encoder: Encoder, batches: [Int], threads: Int,
                              input: () -> String?, output: (String) -> Void) throws {
        encoder.engine = encoder.engine.with(threads: threads)
        var rng = RandomGenerator(seed: 2)
        let a = c.config
        var images: [Int: Tensor] = [:]
        for b in batches {
            images[b] = try rng.normal([b, a.inChannels, a.imageSize, a.imageSize])
            encoder.batchSize = b
            _ = try encoder.embed(preprocessed: images[b]!)
        }
        output(#"{"ready":true,"case":"\#(c.name)","threads":\#(threads),"peakRSSBytes":\#(ProcessMemory.peakResidentBytes())}"#)
        while let line = input() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            guard let b = Int(text), let x = images[b] else {
                throw ServeInputError(message: "bench embed --serve: expected one of the batches \(batches) on stdin, got '\(text)'")
            }
            encoder.batchSize = b
            let t0 = monotonicSeconds()
            _ = try encoder.embed(preprocessed: x)
            let seconds = monotonicSeconds() - t0
            output(#"{"batch":\#(b),"seconds":\#(seconds),"peakRSSBytes":\#(ProcessMemory.peakResidentBytes())}"#)
        }
    }

    /// A line on `serve`'s input that is not one of its batches.
    package struct ServeInputError: Error, CustomStringConvertible {
        package var message: String
        package var description: String { message }
    }

    /// Times the built-in GEMM blocking (A) against `variant` (B) on `batch` random images: `rounds` alternating
    /// single embeddings each, in turn A first and B first (the machine's speed drifts within minutes), after
    /// one warm-up of each. Returns the medians in ms (A, B) and the largest relative difference of B's features
    /// from A's (0 unless KC changed: the other values change speed only).
    package static func runAB(_ c: Case, encoder: Encoder, batch: Int, threads: Int, variant: GEMMBlocking.Tuning,
                              rounds: Int) throws -> (a: Double, b: Double, maxRelDiff: Double) {
        let saved = encoder.engine
        defer { encoder.engine = saved }
        let base = saved.with(threads: threads)
        var other = base
        other.kernels.blocking = variant
        var rng = RandomGenerator(seed: 2)
        let a = c.config
        let images = try rng.normal([batch, a.inChannels, a.imageSize, a.imageSize])
        encoder.batchSize = batch
        var times: [[Double]] = [[], []]
        var features: [[Float]] = [[], []]
        for r in -1..<rounds {
            // A then B, then B then A: with A always first, the same change measured 1.036-1.072x as B and
            // 0.98x as A (ViT-S/16, 2 threads), a bias of ~3 % towards the second call of each pair.
            for slot in r % 2 == 0 ? [0, 1] : [1, 0] {
                encoder.engine = slot == 0 ? base : other
                let t0 = monotonicSeconds()
                let f = try encoder.embed(preprocessed: images)
                if r >= 0 { times[slot].append(monotonicSeconds() - t0) } else { features[slot] = f.scalars }
            }
        }
        let diff = zip(features[0], features[1]).map { abs($0 - $1) / max(abs($0), 1e-6) }.max() ?? 0
        let median = { (v: [Double]) in v.sorted()[v.count / 2] * 1e3 }
        return (median(times[0]), median(times[1]), Double(diff))
    }
}
