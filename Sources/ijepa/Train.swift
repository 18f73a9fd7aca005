import ArgumentParser
import CPUKernels
import DataParallel
import Foundation
import ImageData
import JEPA
import IJEPA
import TensorCore

/// Options every command that runs a model shares.
struct RunOptions: ParsableArguments {
    @Option(help: "Threads for every kernel (default: all cores). Results are identical for any value.")
    var threads: Int?

    /// The engine the command runs models on, built from the flags.
    func engine() throws -> Engine {
        guard let threads else { return Engine() }
        guard threads >= 1 else { throw ValidationError("--threads must be >= 1, got \(threads)") }
        return Engine(threads: threads)
    }
}

/// Options that pick a training configuration (a JSON file and overrides).
struct ConfigOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "JSON config with the official sections (data, mask, meta, optimization, logging) plus evaluation and engine; see docs/training.md. Default: the small Fashion-MNIST run.")
    var configPath: String?

    @Option(help: "Start from a named recipe (meta.preset): official (the default) or small-images (docs/training.md); the --config file and --set still win.")
    var preset: String?

    @Option(name: .customLong("set"), help: "Override one config value: section.key=value (repeatable), e.g. --set optimization.epochs=5.")
    var overrides: [String] = []

    @Option(help: "Run folder (logging.folder): config.json, log.csv, log.jsonl, checkpoint.safetensors.")
    var out: String?

    @Option(help: "Epochs (optimization.epochs).")
    var epochs: Int?

    @Option(help: "Stop after this many steps (optimization.max_steps); the schedules still span every epoch.")
    var steps: Int?

    @Option(name: .customLong("batch-size"), help: "Images per step (data.batch_size).")
    var batchSize: Int?

    @Option(help: "Seed for weights, data order, augmentation and masks (meta.seed).")
    var seed: Int?

    @Flag(help: "Recompute the trained blocks in the backward pass instead of keeping their activations (engine.recompute_blocks): the same numbers in far less memory, for a slower step.")
    var recompute = false

    func load() throws -> TrainingConfig {
        let presetOverride = preset.map { ["meta.preset=\($0)"] } ?? []
        return try TrainingConfig.load(path: configPath, overrides: presetOverride + overrides) { c in  // the flags win over --set
            if let out { c.logging.folder = out }
            if let epochs { c.optimization.epochs = epochs }
            if let steps { c.optimization.maxSteps = steps }
            if let batchSize { c.data.batchSize = batchSize }
            if let seed { c.meta.seed = seed }
            if recompute { c.engine.recomputeBlocks = true }
        }
    }
}

/// Errors a user can act on are printed as one line (file: problem) with exit code 1, never a stack trace.
func userFacing<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ValidationError {
        throw e
    } catch let e as ExitCode {
        throw e
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pretrain an I-JEPA model (default: ViT-Tiny/4 on Fashion-MNIST), optionally followed by the probes.",
        discussion: """
            Progress: step, epoch, loss, lr, wd, EMA momentum, context/target tokens per
            mask, images/s, GFLOP/s, ETA. Every step is also logged to <out>/log.csv and
            <out>/log.jsonl. A checkpoint is written atomically every
            logging.checkpoint_every steps, at the end, and on Ctrl-C; --resume continues
            exactly where it stopped.

            Examples:
              ijepa train --probe
                  the README's main job: train, then the probe table + JSON
              ijepa train --epochs 1 --out runs/quick   one epoch into runs/quick
              ijepa train --resume --out runs/quick     continue an interrupted run
              ijepa train --config my.json --set mask.fixed=true --threads 2
            """)

    @OptionGroup var config: ConfigOptions
    @OptionGroup var runOptions: RunOptions

    @Flag(help: "Continue the run in --out from its checkpoint.")
    var resume = false

    @Flag(help: "Start over in a folder that already holds a run (its checkpoint is replaced).")
    var overwrite = false

    @Flag(help: "After training: linear probe and k-NN of I-JEPA vs random init vs raw pixels, then one JSON line.")
    var probe = false

    @Option(help: "MPI runs: seconds a process waits for another before it stops the job, naming that rank (a rank that hangs or loses its link).")
    var rankTimeout: Double = 60

    @Flag(help: "Profile every step after the first per op (forward and backward by phase) and print the table at the end (also <out>/profile.jsonl).")
    var profile = false

    func run() throws {
        let engine = try runOptions.engine()
        try userFacing {
            let wall = Date()
            let cfg = try config.load()
            let group = try processGroup(plainAllreduce: cfg.optimization.gradientReduction == "allreduce", waitLimit: rankTimeout)
            let training = try TrainingRun(config: cfg, resume: resume, overwrite: overwrite, datasets: nil, group: group,
                                           engine: engine)
            if group.rank != 0 { training.log = { _ in } }  // rank 0 speaks for the run
            training.stop.installSignalHandlers()
            if profile { training.profiler = OpProfiler() }
            let summary = try training.run()
            if let p = training.profiler, training.profiledSteps > 0 {
                print("\nprofile of \(training.profiledSteps) steps (per step):")
                print(p.table(steps: training.profiledSteps, wallSeconds: training.profiledSeconds))
                try writeAtomicallyText(p.jsonLines(steps: training.profiledSteps, wallSeconds: training.profiledSeconds)
                                            .joined(separator: "\n") + "\n", to: cfg.logging.folder + "/profile.jsonl")
            }
            if summary.interrupted { throw ExitCode(130) }
            guard probe, group.rank == 0 else { return }
            var evaluator = Evaluator(train: training.train, test: training.test, augmentation: augmentation(cfg),
                                      options: cfg.evaluation, seed: UInt64(cfg.meta.seed))
            evaluator.engine = engine
            let report = try evaluator.compare(trained: training.evaluatedEncoder, randomInit: try cfg.randomInitEncoder())
            try printReport(report, wallSeconds: Date().timeIntervalSince(wall), folder: cfg.logging.folder,
                            encoder: cfg.evaluation.encoder)
        }
    }
}

/// The processes of this run: the ranks of an `mpirun` job when built with the MPI trait and started by
/// mpirun, else this process alone.
func processGroup(plainAllreduce: Bool = false, waitLimit: Double = 60) throws -> ProcessGroup {
    #if MPI
    if let mpi = try MPIProcessGroup.fromEnvironment() {
        mpi.plainAllreduce = plainAllreduce
        mpi.waitLimit = waitLimit
        return mpi
    }
    #endif
    return SingleProcess()
}

/// `mpirun -np 4 ijepa mpi-check`: the fixed tree against MPI_Allreduce on values whose order of addition shows
/// (tools/check-distributed.sh). Hidden: a check of the MPI build, not a user command.
struct MPICheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mpi-check", abstract: "Check the fixed-tree reduction against MPI_Allreduce (MPI builds).",
        shouldDisplay: false)

    @Option(name: .customLong("ping-pong"), help: "Instead: send this many MiB back and forth between ranks 0 and 1 (20 round trips) and print the bandwidth MPI gets.")
    var pingPongMiB: Double?

    func run() throws {
        #if MPI
        guard let mpi = try MPIProcessGroup.fromEnvironment() else {
            throw ValidationError("run it under mpirun (e.g. mpirun -np 4 ijepa mpi-check)")
        }
        if let mib = pingPongMiB {
            let bytes = Int(mib * 1_048_576), rounds = 20
            let seconds = try mpi.pingPong(bytes: bytes, rounds: rounds)
            if mpi.rank == 0 {
                print(String(format: "ping-pong %.3g MiB between ranks 0 and 1: %.3f ms per round trip, %.2f Gbit/s",
                             mib, 1000 * seconds, 2 * Double(bytes) * 8 / seconds / 1e9))
            }
            return
        }
        let r = try mpi.reductionOrderCheck()
        if mpi.rank == 0 {
            print("\(mpi.size) ranks, \(1 << 20) adversarial sums: the fixed tree got \(r.tree) wrong, MPI_Allreduce \(r.allreduce)")
        }
        if r.tree != 0 { throw ExitCode(1) }
        #else
        throw ValidationError("this ijepa was built without the MPI trait (swift build --traits MPI)")
        #endif
    }
}

/// The probe table, then (last line) one JSON object for tools; also saved as <folder>/evaluation.json.
func printReport(_ r: EvaluationReport, wallSeconds: Double, folder: String?, encoder: String = "target") throws {
    print("")
    print("features            linear probe   \(r.knn.isEmpty ? "" : "k-NN")")
    for (key, label) in [("ijepa", "I-JEPA (\(encoder) enc.)"), ("randomInit", "random init"), ("rawPixels", "raw pixels")] {
        guard let p = r.probe[key] else { continue }
        // Padded in Swift: `%-20@` does not pad on Linux Foundation (the rows came out ragged).
        let name = label.count >= 20 ? label : label + String(repeating: " ", count: 20 - label.count)
        print(name + String(format: " %10.2f %%   %6.2f %%", 100 * p, 100 * (r.knn[key] ?? .nan)))
    }
    if r.evaluatedOn == "validation" {
        print("(scored on \(r.testSamples) validation images carved from the train split; the test split was not read)")
    }
    var json: [String: Any] = ["probe": r.probe, "knn": r.knn, "wallSeconds": (wallSeconds * 10).rounded() / 10,
                               "trainSamples": r.trainSamples, "testSamples": r.testSamples,
                               "evaluatedOn": r.evaluatedOn ?? "test"]
    if let f = r.features {
        json["features"] = f.mapValues { s -> [String: Any] in
            ["meanStd": s.meanStd, "minStd": s.minStd, "maxStd": s.maxStd, "effectiveRank": s.effectiveRank,
             "dimensions": s.dimensions]
        }
    }
    let text = String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self)
    if let folder { try writeAtomicallyText(text + "\n", to: folder + "/evaluation.json") }
    print(text)
}

func writeAtomicallyText(_ s: String, to path: String) throws {
    try writeAtomically(Data(s.utf8), to: path)
}

/// Options of the commands that evaluate a trained checkpoint (probe, embed): which checkpoint, and optionally
/// another data set than the one it was trained on.
struct TrainedModelOptions: ParsableArguments {
    @Option(help: "Run folder written by `ijepa train` (its checkpoint.safetensors is read).")
    var out: String = TrainingConfig().logging.folder

    @Option(help: "A checkpoint file instead of the run folder's: ours (format v1 or v2), or a bare state dict (safetensors with encoder./predictor./target_encoder. names) together with --config.")
    var checkpoint: String?

    @Option(name: .customLong("config"), help: "Training configuration (JSON) to use instead of the one the checkpoint carries (needed for a bare state dict).")
    var configPath: String?

    @Option(name: .customLong("data-root"), help: "Evaluate on another data set: a folder of IDX files in the MNIST layout (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-*).")
    var dataRoot: String?

    @Option(name: .customLong("image-folder"), help: "Evaluate on another data set: a folder of PNGs with one subfolder per class (without --test-folder a fixed sixth is held out for testing).")
    var imageFolder: String?

    @Option(name: .customLong("test-folder"), help: "The test split for --image-folder (same class subfolders).")
    var testFolder: String?

    @Option(help: "Start from a named recipe (meta.preset): official (the default) or small-images (docs/training.md); the --config file and --set still win.")
    var preset: String?

    @Option(name: .customLong("set"), help: "Override a config value, e.g. evaluation.knn_k=10 or evaluation.train_samples=0 (repeatable).")
    var overrides: [String] = []

    func open() throws -> TrainedCheckpoint {
        guard dataRoot == nil || imageFolder == nil else {
            throw ValidationError("give --data-root or --image-folder, not both")
        }
        guard testFolder == nil || imageFolder != nil else { throw ValidationError("--test-folder needs --image-folder") }
        let config = try configPath.map { try TrainingConfig.load(path: $0) }
        return try TrainedCheckpoint(path: checkpoint ?? out + "/checkpoint.safetensors", config: config,
                                     overrides: overrides) { c in
            if let dataRoot { (c.data.dataset, c.data.rootPath) = ("idx", dataRoot) }
            if let imageFolder { (c.data.dataset, c.data.imageFolder, c.data.testFolder) = ("image-folder", imageFolder, testFolder) }
        }
    }
}

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Linear probe and k-NN of a trained encoder on any data set, beside random init and raw pixels.",
        discussion: """
            Reads a checkpoint (the run folder's, or --checkpoint) and the training
            configuration it carries. The probe is multinomial logistic regression on the
            average-pooled, frozen target-encoder features (train split -> test split), as
            in the paper. By default the data set is the one the model was trained on;
            --data-root or --image-folder evaluate the same encoder on another one
            (transfer), with the images normalised as in training and resized to the
            model's input size.

            Examples:
              ijepa probe --out runs/fashion-mnist
              ijepa probe --out runs/fashion-mnist --set evaluation.train_samples=10000
              ijepa probe --out runs/fashion-mnist --data-root data/digits-idx
              ijepa probe --checkpoint ckpt.safetensors --image-folder data/train
                  --test-folder data/test
            """)

    @OptionGroup var model: TrainedModelOptions
    @OptionGroup var runOptions: RunOptions

    func run() throws {
        let engine = try runOptions.engine()
        try userFacing {
            let wall = Date()
            let trained = try model.open()
            let cfg = trained.config
            let (train, test) = try loadDatasets(cfg, threads: engine.threads)
            var evaluator = Evaluator(train: train, test: test, augmentation: augmentation(cfg),
                                      options: cfg.evaluation, seed: UInt64(cfg.meta.seed))
            evaluator.engine = engine
            print("checkpoint \(trained.path): \(trained.state.map { "step \($0.stepsDone), format \($0.version)" } ?? "a bare state dict")")
            let report = try evaluator.compare(trained: trained.evaluatedEncoder, randomInit: try cfg.randomInitEncoder())
            try printReport(report, wallSeconds: Date().timeIntervalSince(wall), folder: nil, encoder: cfg.evaluation.encoder)
        }
    }
}
