import Foundation
import CPUKernels
import ImageData
import JEPA
import TensorCore
import DataParallel
#if canImport(Glibc)
import Glibc
#endif

/// The data sets a configuration names: (pretraining/probe-train split, probe-test split); PNGs are decoded on up
/// to `threads` threads.
package func loadDatasets(_ config: TrainingConfig, threads: Int) throws -> (train: ImageDataset, test: ImageDataset) {
    let d = config.data
    switch d.dataset {
    case "fashion-mnist", "idx":
        if d.channels != 1 {
            throw ConfigError(source: "data.channels", problem: "IDX images are gray: use channels 1")
        }
        if d.dataset == "idx" {
            return (try IDXFolder.load(split: "train", directory: d.rootPath),
                    try IDXFolder.load(split: "test", directory: d.rootPath))
        }
        return (try FashionMNIST.load(split: "train", directory: d.rootPath),
                try FashionMNIST.load(split: "test", directory: d.rootPath))
    default:
        let train = try ImageFolder.load(root: d.imageFolder!, size: d.cropSize, channels: d.channels, threads: threads)
        if let t = d.testFolder {
            let test = try ImageFolder.load(root: t, size: d.cropSize, channels: d.channels, threads: threads)
            guard test.classNames == train.classNames else {
                throw ImageDataError(path: t, problem: "its class folders \(test.classNames) differ from \(d.imageFolder!)'s \(train.classNames)")
            }
            return (train, test)
        }
        // No test folder: a fixed, seeded sixth of the images is held out as the probes' test split; pretraining
        // and the probes' fit see the other five sixths only (no test image is trained on, even without labels).
        var g = RandomGenerator(seed: 0).stream(.heldOutSplit)  // the same split whatever meta.seed
        let order = g.permutation(train.count)
        let cut = max(1, train.count / 6)
        return (train.subset(Array(order[cut...]).sorted()), train.subset(Array(order[..<cut]).sorted()))
    }
}

package func augmentation(_ config: TrainingConfig) -> Augmentation {
    let d = config.data
    return Augmentation(
        outputSize: d.cropSize, channels: d.channels, cropScale: d.cropScale[0]...d.cropScale[1],
        horizontalFlip: d.useHorizontalFlip, mean: d.mean.isEmpty ? nil : d.mean.map(Float.init),
        std: d.std.isEmpty ? nil : d.std.map(Float.init))
}

/// Asks a ``TrainingRun`` to stop after its current step and write its checkpoint, instead of dying: from any
/// thread (an app's Stop button) or from SIGINT / SIGTERM (a command-line tool).
public final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var requested = false
    private var sources: [DispatchSourceSignal] = []

    public init() {}

    /// Whether a stop was asked for (by `request()` or a signal).
    public var isRequested: Bool { lock.lock(); defer { lock.unlock() }; return requested }
    /// Asks the run to stop after the step it is running; safe from any thread.
    public func request() { lock.lock(); requested = true; lock.unlock() }

    /// SIGINT and SIGTERM call `request()` from now on; a second one exits the process at once (status 130).
    /// For command-line tools: an app with its own event loop calls `request()` instead.
    public func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in
                guard let self else { return }
                if self.isRequested { exit(130) }  // a second Ctrl-C stops at once
                self.request()
                FileHandle.standardError.write(Data("\nstopping after this step (checkpoint follows; Ctrl-C again to abort)\n".utf8))
            }
            s.resume()
            sources.append(s)
        }
    }
}

/// An exchange whose calls are timed (the progress line's combine share).
final class TimedExchange: GradientExchange {
    let inner: GradientExchange
    let spent: (Double) -> Void
    init(_ inner: GradientExchange, spent: @escaping (Double) -> Void) { (self.inner, self.spent) = (inner, spent) }
    func submit(_ index: Int, _ tensor: Tensor) throws {
        let t = Date()
        defer { spent(Date().timeIntervalSince(t)) }
        try inner.submit(index, tensor)
    }
    func finish() throws -> [Tensor] {
        let t = Date()
        defer { spent(Date().timeIntervalSince(t)) }
        return try inner.finish()
    }
}

/// What ``TrainingRun/run()`` did: steps done (in total, across resumes) of the run's total, the last step's
/// loss, whether a stop request ended it early, and the seconds this call trained.
public struct TrainSummary: Sendable {
    public var stepsDone: Int
    public var totalSteps: Int
    public var lastLoss: Float
    public var interrupted: Bool
    public var trainSeconds: Double
}

/// A training run in a folder (`config.logging.folder`): config.json, log.csv, log.jsonl and
/// checkpoint.safetensors (+ .json), written atomically every `logging.checkpoint_every` steps and at the end.
/// Make one with ``init(config:images:resume:overwrite:engine:)``, then call ``run()``; `stop`, `onStep`, `log`
/// and `printsProgress` let an app steer and watch it. One run at a time per folder.
public final class TrainingRun {
    public let config: TrainingConfig
    public let folder: String
    package let model: IJEPAModel
    package let trainer: IJEPATrainer
    package let train: ImageDataset
    package let test: ImageDataset
    package let collator: MaskCollator
    public let stop = StopRequest()
    /// The processes of this run (one by default); rank 0 alone writes the folder.
    package let group: ProcessGroup
    /// With a profiler, every step after the first is profiled per op (`ijepa train --profile`).
    package var profiler: OpProfiler?
    package private(set) var profiledSteps = 0
    package private(set) var profiledSeconds = 0.0
    /// Where the progress lines and messages go (default: standard output).
    public var log: (String) -> Void = { print($0); fflush(stdout) }
    /// Called after every step with its record (the row `log.csv` gets), e.g. for an app's own progress display.
    public var onStep: ((StepRecord) -> Void)?
    /// Whether `run()` writes the progress line (every `logging.log_every` steps through `log`; redrawn in place
    /// on a terminal). An app that shows `onStep`'s records itself turns it off.
    public var printsProgress = true
    let itersPerEpoch: Int
    let totalSteps: Int
    let cost: StepCost
    var wallBefore = 0.0
    /// The step logs (rank 0 only: the other ranks write nothing).
    var runLog: RunLog?
    /// Seconds spent combining the ranks' gradients (waiting for the others, and the messages), in total.
    var combineSeconds = 0.0
    /// Temporary files of killed runs removed from the folder at start.
    package private(set) var staleFilesRemoved = 0

    public var checkpointPath: String { folder + "/checkpoint.safetensors" }

    /// A run of `config` in `config.logging.folder`, on this process alone: builds the model and the optimizer
    /// and trains on `images` (default: the data set `config.data` names, loaded now). With `resume`, continues
    /// from the folder's checkpoint (the same bits as a run that was never stopped); otherwise refuses a folder
    /// that has one unless `overwrite`. `engine`: threads, kernels and fusions of every step. Throws
    /// ``ConfigError`` or a file error that names the file.
    public convenience init(config: TrainingConfig, images: TrainingImages? = nil, resume: Bool = false,
                            overwrite: Bool = false, engine: Engine = Engine()) throws {
        try self.init(config: config, resume: resume, overwrite: overwrite,
                      datasets: images.map { ($0.dataset, $0.dataset) }, group: SingleProcess(), engine: engine)
    }

    /// Builds everything; with `resume`, continues from the folder's checkpoint, else refuses to overwrite one.
    /// (Evaluating a checkpoint without training it: `TrainedCheckpoint`.)
    /// With a `group` of several processes, each computes its block of the gradient shards and only rank 0
    /// writes the folder (logs, checkpoints); on resume rank 0 reads the checkpoint and sends it to the others.
    /// `engine`: threads, kernels and fusions of every step (the profiler comes from `profiler`).
    package init(config: TrainingConfig, resume: Bool, overwrite: Bool = false,
                 datasets: (ImageDataset, ImageDataset)?, group: ProcessGroup = SingleProcess(),
                 engine: Engine = Engine()) throws {
        self.config = config
        self.group = group
        folder = config.logging.folder
        let ckpt = folder + "/checkpoint.safetensors"
        let shards = config.optimization.gradientShards
        guard shards % group.size == 0 else {
            throw ConfigError(source: "optimization.gradient_shards", problem: "\(shards) shards cannot be shared by \(group.size) processes: use a multiple of \(group.size)")
        }
        if group.rank == 0 && !resume && !overwrite && FileManager.default.fileExists(atPath: ckpt) {
            throw ConfigError(source: ckpt, problem: "a run already lives here: continue it with --resume, or choose another --out (or --overwrite to start over)")
        }
        (train, test) = try datasets ?? loadDatasets(config, threads: engine.threads)
        let vit = try config.vitConfig()
        guard train.channels == vit.inChannels else {
            throw ConfigError(source: train.name, problem: "images have \(train.channels) channels, the model expects \(vit.inChannels) (data.channels)")
        }
        collator = try config.maskCollator()
        guard train.count >= config.data.batchSize else {
            throw ConfigError(source: train.name, problem: "\(train.count) images cannot fill one batch of \(config.data.batchSize) (data.batch_size; incomplete batches are dropped)")
        }
        try augmentation(config).validate(channels: train.channels)
        let o = config.optimization
        let ipe = train.count / config.data.batchSize  // drop_last, as BatchLoader
        itersPerEpoch = ipe
        let schedules = Schedules(
            itersPerEpoch: ipe, epochs: o.epochs, warmupEpochs: o.warmup, ipeScale: o.ipeScale, startLR: o.startLR,
            refLR: o.lr, finalLR: o.finalLR, refWD: o.weightDecay, finalWD: o.finalWeightDecay, ema: (o.ema[0], o.ema[1]))
        totalSteps = o.maxSteps > 0 ? min(o.maxSteps, o.epochs * ipe) : o.epochs * ipe
        model = try config.makeModel()
        var stepEngine = engine
        stepEngine.recomputeBlocks = stepEngine.recomputeBlocks || config.engine.recomputeBlocks
        trainer = try IJEPATrainer(model: model, schedules: schedules, engine: stepEngine)
        trainer.regularizer = (Float(o.varianceWeight), Float(o.covarianceWeight))
        trainer.gradientShards = o.gradientShards
        if group.size > 1 {
            let per = o.gradientShards / group.size
            trainer.localShards = group.rank * per..<(group.rank + 1) * per
            trainer.combineSubtrees = { [group] in try group.combineSubtrees($0) }  // timed from run()
        }
        cost = StepCost(vit: vit, predictorDim: config.meta.predEmbDim, predictorDepth: config.meta.predDepth)
        if group.size > 1 { try checkProcessesAgree() }
        guard group.rank == 0 else {
            // The other ranks write nothing; they resume from rank 0's checkpoint, sent to them whole.
            if resume { wallBefore = try restoreFromRankZero(ckpt).wallSeconds }
            return
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let runLog = RunLog(folder: folder) { [unowned self] in self.log($0) }
        self.runLog = runLog
        // A run killed while writing leaves its temporary checkpoint behind (the real one is intact): clean up.
        staleFilesRemoved = removeStaleTemporaryFiles(
            in: folder, for: ["checkpoint.safetensors", "checkpoint.safetensors.json", "config.json"] + RunLog.files)
        if resume {
            let state = try group.size > 1 ? restoreFromRankZero(ckpt) : Checkpoint.restore(trainer, from: ckpt, configHash: config.trainingHash)
            wallBefore = state.wallSeconds
            try runLog.truncate(after: state.stepsDone)
        } else {
            runLog.remove()
        }
        try writeAtomically(Data((config.jsonText() + "\n").utf8), to: folder + "/config.json")
    }

    /// Every rank must run the same training configuration, build (executable and SIMD path: an AVX2 and a
    /// portable build give different bits) and data; checked at start, each named in the error.
    func checkProcessesAgree() throws {
        try group.requireAgreement(config.trainingHash, what: "training configuration (hash)")
        try group.requireAgreement(SIMDPath.name, what: "SIMD path")
        let exe = FileManager.default.contents(atPath: "/proc/self/exe").map { d in d.withUnsafeBytes { fnv1a($0) } } ?? 0
        try group.requireAgreement(String(exe, radix: 16), what: "build (executable hash)")
        var data = train.pixels.withUnsafeBytes { fnv1a($0) }
        data = train.labels.withUnsafeBytes { fnv1a($0, hash: data) }
        try group.requireAgreement(String(data, radix: 16), what: "training data (hash)")
    }

    /// A hash of every parameter's bits, which the ranks compare every `parameterCheckEvery` steps.
    func parameterChecksum() -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for (_, p) in trainer.model.trainableParameters {
            h = p.value.withUnsafeBufferPointer { fnv1a(UnsafeRawBufferPointer($0), hash: h) }
        }
        return String(h, radix: 16)
    }

    /// Rank 0 sends its checkpoint's bytes (empty when it has none or cannot read it) and every rank restores
    /// from them: no shared file system is assumed.
    func restoreFromRankZero(_ path: String) throws -> TrainingState {
        let mine = group.rank == 0 ? (FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? []) : []
        let bytes = try group.broadcast(mine, from: 0)
        guard !bytes.isEmpty else {
            throw SafeTensorsError(path: path, problem: "no checkpoint on rank 0 (start without --resume)")
        }
        if group.rank == 0 { return try Checkpoint.restore(trainer, from: path, configHash: config.trainingHash) }
        let copy = NSTemporaryDirectory() + "ijepa-rank\(group.rank)-\(getpid()).safetensors"
        try writeAtomically(Data(bytes), to: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        return try Checkpoint.restore(trainer, from: copy, configHash: config.trainingHash)
    }

    /// The encoder the probes evaluate (evaluation.encoder).
    package var evaluatedEncoder: VisionTransformer { config.evaluatedEncoder(of: model) }

    func saveCheckpoint(lastLoss: Float, wall: Double) throws {
        guard group.rank == 0 else { return }
        let state = TrainingState(
            stepsDone: trainer.stepsDone, adamStep: trainer.optimizer.step, seed: UInt64(config.meta.seed),
            configHash: config.trainingHash, config: config.jsonText(), lastLoss: lastLoss, wallSeconds: wall)
        try Checkpoint.save(trainer, state: state, to: checkpointPath)
    }

    /// Trains until the last step (or `maxSteps`, or a stop request), printing progress and writing logs and
    /// checkpoints.
    public func run() throws -> TrainSummary {
        let c = config
        let batch = c.data.batchSize, seed = UInt64(c.meta.seed)
        let ipe = itersPerEpoch
        let start = trainer.stepsDone
        if group.size > 1 {  // the same combination, timed for the progress line
            trainer.combineSubtrees = { [unowned self, group] local in
                let t = Date()
                defer { self.combineSeconds += Date().timeIntervalSince(t) }
                return try group.combineSubtrees(local)
            }
            // Timed: the MPI calls between the backward pass's ops, and the wait after it.
            let bytes = config.engine.gradientBucketKiB * 1024
            trainer.makeGradientExchange = { [unowned self, group] in
                group.makeGradientExchange(bucketBytes: bytes).map { TimedExchange($0) { self.combineSeconds += $0 } }
            }
        }
        // Each process builds only its shards' images (the masks, cheap, for the whole batch).
        let per = batch / c.optimization.gradientShards
        let prefetching = try BatchLoader(dataset: train, batchSize: batch, augmentation: augmentation(c),
                                          seed: seed, startStep: start, prefetch: 2,
                                          rows: trainer.localShards.map { $0.lowerBound * per..<$0.upperBound * per })
        let vit = model.config
        log(String(format: "I-JEPA %@ %dx%d/%d D%d L%d h%d, predictor %dx%d; %d params; %@ %d images, batch %d, %d steps/epoch, %d epochs%@",
                   c.meta.modelName, vit.imageSize, vit.imageSize, vit.patchSize, vit.embedDim, vit.depth, vit.heads,
                   c.meta.predEmbDim, c.meta.predDepth, model.encoder.parameterCount + model.predictor.parameterCount,
                   train.name, train.count, batch, ipe, c.optimization.epochs,
                   totalSteps < c.optimization.epochs * ipe ? " (stopping at step \(totalSteps))" : ""))
        if start > 0 { log("resumed from \(checkpointPath) at step \(start)") }
        if staleFilesRemoved > 0 { log("removed \(staleFilesRemoved) temporary file(s) left by a killed run in \(folder)") }
        log("threads \(trainer.engine.threads), SIMD \(SIMDPath.name)\(group.size > 1 ? ", \(group.size) processes x \(c.optimization.gradientShards / group.size) of \(c.optimization.gradientShards) gradient shards" : ""); logs in \(folder)/log.csv")
        let isTTY = isatty(1) != 0
        let t0 = Date()
        var progress = ProgressLine(totalSteps: totalSteps)
        var last = StepResult(step: start, loss: .nan, learningRate: 0, weightDecay: 0, momentum: 0, contextTokens: 0, targetTokens: 0)
        var interrupted = false
        for s in start..<totalSteps {
            let stepProfiler = s > start ? profiler : nil
            trainer.engine.profiler = stepProfiler
            stepProfiler?.startStep()
            let ts = Date()
            let combinedBefore = combineSeconds
            let b = try OpProfiler.measure(stepProfiler, "data", "next batch") { try prefetching.next() }
            let masks = OpProfiler.measure(stepProfiler, "masks", "sample masks") { collator.sample(batch: batch, step: s, seed: seed) }
            last = try trainer.step(images: b.images, context: masks.context, targets: masks.targets)
            if stepProfiler != nil {
                profiledSteps += 1
                profiledSeconds += Date().timeIntervalSince(ts)
            }
            trainer.engine.profiler = nil
            guard last.loss.isFinite else {
                throw ConfigError(source: folder, problem: "the loss became \(last.loss) at step \(last.step); lower optimization.lr (the last checkpoint is intact)")
            }
            let dt = Date().timeIntervalSince(ts)
            let flops = cost.step(batch: batch, nenc: masks.context.count, npred: masks.targets.count,
                                  kc: last.contextTokens, kp: last.targetTokens)
            let record = StepRecord(
                result: last, epoch: Double(s + 1) / Double(ipe), imagesPerSecond: Double(batch) / dt,
                gflops: flops / dt / 1e9, seconds: wallBefore + Date().timeIntervalSince(t0),
                rssMiB: Double(ProcessMemory.residentBytes()) / 1_048_576)
            runLog?.append(record)
            onStep?(record)
            let line = progress.add(record, seconds: dt, flops: flops, images: batch, ranks: group.size,
                                    combineSeconds: combineSeconds - combinedBefore)
            let commit = last.step % c.logging.logEvery == 0 || last.step == totalSteps
            if printsProgress {
                if isTTY && group.rank == 0 { print("\r" + line, terminator: commit ? "\n" : ""); fflush(stdout) } else if commit { log(line) }
            }
            if commit { progress.commit() }
            if c.logging.checkpointEvery > 0 && last.step % c.logging.checkpointEvery == 0 {
                try saveCheckpoint(lastLoss: last.loss, wall: wallBefore + Date().timeIntervalSince(t0))
            }
            // The ranks' parameters must stay identical (same updates from the same sums): compared every 100 steps.
            if group.size > 1 && last.step % 100 == 0 {
                try group.requireAgreement(parameterChecksum(), what: "parameters after step \(last.step) (checksum)")
            }
            // Every rank stops at the same step when any of them is asked to (one flag exchange per step).
            if try group.size > 1 ? group.anyTrue(stop.isRequested) : stop.isRequested { interrupted = true; break }
        }
        let trainSeconds = Date().timeIntervalSince(t0)
        try saveCheckpoint(lastLoss: last.loss, wall: wallBefore + trainSeconds)
        log(interrupted ? "stopped at step \(trainer.stepsDone); checkpoint written to \(checkpointPath) (continue with --resume)"
                        : "trained \(trainer.stepsDone - start) steps in \(formatDuration(trainSeconds)); checkpoint \(checkpointPath)")
        return TrainSummary(stepsDone: trainer.stepsDone, totalSteps: totalSteps, lastLoss: last.loss,
                            interrupted: interrupted, trainSeconds: trainSeconds)
    }
}
