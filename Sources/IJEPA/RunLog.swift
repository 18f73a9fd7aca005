import Foundation
import JEPA
import TensorCore

/// What a training run records after each step: one row of log.csv, one object of log.jsonl. The names are one
/// vocabulary for both files (docs/training.md), and every value is a JSON number.
public struct StepRecord: Sendable, Equatable {
    public var result: StepResult
    /// Epochs done after this step (fractional).
    public var epoch: Double
    public var imagesPerSecond: Double
    public var gflops: Double
    /// Seconds since the start of the run, across resumes.
    public var seconds: Double
    /// Resident memory after the step, MiB.
    public var rssMiB: Double

    public init(result: StepResult, epoch: Double, imagesPerSecond: Double, gflops: Double, seconds: Double, rssMiB: Double) {
        (self.result, self.epoch, self.imagesPerSecond, self.gflops, self.seconds, self.rssMiB) =
            (result, epoch, imagesPerSecond, gflops, seconds, rssMiB)
    }

    /// The column names of log.csv and the keys of log.jsonl, in order.
    public static let columns = ["step", "epoch", "loss", "lr", "wd", "momentum", "mask_context", "mask_target",
                                 "images_per_second", "gflops", "seconds", "rss_mib"]

    /// The values as written, in the order of `columns`.
    public var fields: [String] {
        let r = result
        return ["\(r.step)", String(format: "%.4f", epoch), String(format: "%.6f", r.loss),
                String(format: "%.6e", r.learningRate), String(format: "%.6f", r.weightDecay),
                String(format: "%.6f", r.momentum), "\(r.contextTokens)", "\(r.targetTokens)",
                String(format: "%.2f", imagesPerSecond), String(format: "%.2f", gflops),
                String(format: "%.3f", seconds), String(format: "%.1f", rssMiB)]
    }

    public var csvLine: String { fields.joined(separator: ",") }
    public var jsonLine: String {
        "{" + zip(StepRecord.columns, fields).map { "\"\($0)\": \($1)" }.joined(separator: ", ") + "}"
    }
}

/// The step logs of a run folder: log.csv (with a header) and log.jsonl, appended one step at a time.
///
/// A log that cannot be written (disk full, the file replaced by a folder, permissions) must not stop the
/// training or lose the checkpoint, but must not fail silently either: the first failure per file is reported
/// through `warn`, naming the file and the problem, and the run goes on without that file.
public final class RunLog {
    public let folder: String
    public static let files = ["log.csv", "log.jsonl"]
    let warn: (String) -> Void
    var unwritable = Set<String>()

    public init(folder: String, warn: @escaping (String) -> Void) {
        self.folder = folder
        self.warn = warn
    }

    /// Appends the step to both files.
    public func append(_ record: StepRecord) {
        append("log.csv", record.csvLine, header: StepRecord.columns.joined(separator: ","))
        append("log.jsonl", record.jsonLine)
    }

    /// Removes both files (a fresh run).
    public func remove() {
        for f in RunLog.files { try? FileManager.default.removeItem(atPath: folder + "/" + f) }
    }

    /// Keeps the rows up to `step` (a resumed run rewrites what came after its checkpoint), atomically.
    public func truncate(after step: Int) throws {
        for (file, stepOf) in [("log.csv", { (line: String) in Int(line.split(separator: ",").first ?? "") }),
                               ("log.jsonl", { (line: String) in
                                   (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["step"] as? Int })] {
            let path = folder + "/" + file
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let kept = text.split(separator: "\n").map(String.init).filter { line in stepOf(line).map { $0 <= step } ?? file.hasSuffix(".csv") }
            try writeAtomically(Data(kept.map { $0 + "\n" }.joined().utf8), to: path)
        }
    }

    func append(_ file: String, _ line: String, header: String? = nil) {
        let path = folder + "/" + file
        do {
            if !FileManager.default.fileExists(atPath: path) {
                guard FileManager.default.createFile(atPath: path, contents: Data(((header.map { $0 + "\n" }) ?? "").utf8)) else {
                    throw CocoaError(.fileWriteUnknown)
                }
            }
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            defer { try? h.close() }
            try h.seekToEnd()
            try h.write(contentsOf: Data((line + "\n").utf8))
        } catch {
            if unwritable.insert(path).inserted {
                warn("warning: \(path): cannot append to this log (\(error.localizedDescription)); training goes on without it")
            }
        }
    }
}

/// The live progress line: step, epoch, loss, lr, wd, EMA momentum, mask sizes, and images/s, GFLOP/s and ETA
/// averaged over the steps since the last committed line (`logging.log_every`).
public struct ProgressLine: Sendable {
    public let totalSteps: Int
    var window = (steps: 0, seconds: 0.0, flops: 0.0, images: 0, combineSeconds: 0.0)

    public init(totalSteps: Int) { self.totalSteps = totalSteps }

    /// Adds a step of `seconds` that did `flops` on `images` images, `combineSeconds` of them combining the ranks'
    /// gradients (`ranks` > 1), and returns the line.
    public mutating func add(_ record: StepRecord, seconds: Double, flops: Double, images: Int,
                             ranks: Int = 1, combineSeconds: Double = 0) -> String {
        window.steps += 1; window.seconds += seconds; window.flops += flops; window.images += images
        window.combineSeconds += combineSeconds
        let r = record.result
        let ips = Double(window.images) / window.seconds, gf = window.flops / window.seconds / 1e9
        let eta = Double(totalSteps - r.step) * window.seconds / Double(window.steps)
        var line = String(format: "step %5d/%d  epoch %.2f  loss %.4f  lr %.2e  wd %.3f  ema %.4f  masks %d/%d  %6.1f img/s  %5.1f GFLOP/s  ETA %@",
                          r.step, totalSteps, record.epoch, r.loss, r.learningRate, r.weightDecay, r.momentum,
                          r.contextTokens, r.targetTokens, ips, gf, formatDuration(eta) as NSString)
        if ranks > 1 {  // the ranks, and the share of the recent steps spent combining gradients
            line += String(format: "  %d ranks, combine %.0f %%", ranks, 100 * window.combineSeconds / max(window.seconds, 1e-9))
        }
        return line
    }

    /// Starts a new averaging window (after a committed line).
    public mutating func commit() { window = (0, 0, 0, 0, 0) }
}

/// A duration as "1h02m", "3m05s" or "42s" ("?" when not finite).
package func formatDuration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60)
        : t >= 60 ? String(format: "%dm%02ds", t / 60, t % 60) : "\(t)s"
}
