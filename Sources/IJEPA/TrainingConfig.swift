import Foundation
import JEPA

/// A training configuration with the official config's sections (`data`, `mask`, `meta`, `optimization`,
/// `logging`; configs/*.yaml of facebookresearch/ijepa) and their key names, plus `evaluation`. Read from JSON;
/// every key is optional (defaults: the small Fashion-MNIST run), an unknown key or a wrong type is an error that
/// names the file and the key, so a typo never silently trains the default. `Codable` with the same keys, so an
/// app can keep one inside its own settings; each key's JSON name is written once, in `TrainingConfig.sections`.
public struct TrainingConfig: Sendable, Equatable, Codable {
    public struct Data: Sendable, Equatable {
        /// "fashion-mnist" (its four IDX files, `root_path` is their folder), "idx" (any folder of IDX files in
        /// the MNIST layout, e.g. MNIST; class names from its classes.txt or numbers) or "image-folder"
        /// (`image_folder` holds one subfolder of PNGs per class; `test_folder` the evaluation split).
        public var dataset = "fashion-mnist"
        public var rootPath = "/usr/share/datasets/fashion-mnist"
        public var imageFolder: String? = nil
        public var testFolder: String? = nil
        public var batchSize = 64
        public var cropSize = 28
        public var cropScale = [0.3, 1.0]
        public var useHorizontalFlip = false
        public var channels = 1
        /// Per-channel normalisation; empty = the data set's default (Fashion-MNIST gray or ImageNet RGB).
        public var mean: [Double] = []
        public var std: [Double] = []
    }
    public struct Meta: Sendable, Equatable {
        public var modelName = "vit_tiny"
        /// Overrides of the preset (0 = the preset's value).
        public var depth = 6
        public var embedDim = 0
        public var numHeads = 0
        public var predDepth = 4
        public var predEmbDim = 96
        public var seed = 0
        /// The named recipe the configuration starts from (`TrainingConfig.preset(_:)`): every key the JSON or an
        /// override does not give takes the preset's value. "official" (the defaults) is left out of the JSON.
        public var preset = "official"
    }
    /// Defaults: the official schedule shapes (start = lr / 5, final = lr / 1000, warmup, cosine), with the peak
    /// rate chosen for this batch of 64 by full one-epoch runs (docs/training.md, probe / 20-NN): lr 3.125e-5 (the
    /// official 1e-3 scaled linearly from batch 2048) 76.5 / 66.7 %, 6.25e-5 77.1 / 69.2 %, 1.25e-4 77.7 /
    /// 68.6 %, 1.77e-4 77.2 / 67.9 %, 2.5e-4 78.5 / 68.6 %, 5e-4 77.3 / 67.6 % (random init 75.1 / 53.7 %);
    /// 2.5e-4 with seed 1 77.0 / 65.4 % (its random init 75.6 / 52.6 %), so the rates from 2x to 16x differ by
    /// less than the seed moves them. The official 1e-3 collapses within 100 steps at this batch (loss 0.01).
    public struct Optimization: Sendable, Equatable {
        public var epochs = 1
        public var warmup = 0.25
        public var startLR = 5e-5
        public var lr = 2.5e-4
        public var finalLR = 2.5e-7
        public var weightDecay = 0.04
        public var finalWeightDecay = 0.4
        public var ema = [0.996, 1.0]
        public var ipeScale = 1.0
        /// Stop after this many steps (0 = run every epoch); the schedules still span `epochs`.
        public var maxSteps = 0
        /// VICReg's variance and covariance terms on the context encoder's output tokens (C-JEPA; VICReg's own
        /// weights are 25 and 1 beside an invariance term of 25). 0 = the official loss; not in the official
        /// configs, so written to JSON only when set (the hash of an official configuration is unchanged).
        public var varianceWeight = 0.0
        public var covarianceWeight = 0.0
        /// Gradient shards S (a power of two dividing batch_size): each step's gradient is the fixed-tree sum of
        /// its S shards' gradients (`IJEPATrainer.gradientShards`), the bits that any number of processes
        /// dividing S reproduce. 1 = the official step; written to JSON only when set.
        public var gradientShards = 1
        /// How processes sum their shards' gradients: "tree" (the fixed tree: the same bits for any process
        /// count) or "allreduce" (MPI_Allreduce: usually faster, bits may change with the count). Written to JSON
        /// only when not "tree".
        public var gradientReduction = "tree"
    }
    public struct Logging: Sendable, Equatable {
        public var folder = "runs/fashion-mnist"
        public var checkpointEvery = 200
        public var logEvery = 10
    }
    public struct Evaluation: Sendable, Equatable {
        /// Training images used to fit the probes (0 = the whole train split). 20000 keeps the main job within
        /// its 15 minutes: features of 30000 images through two encoders.
        public var trainSamples = 20000
        public var testSamples = 0
        public var knnK = 20
        public var probeIterations = 200
        public var probeWeightDecay = 1e-4
        /// Average-pooled outputs of the last `layers` blocks, concatenated (1: the encoder output; 4: the
        /// paper's other representation).
        public var layers = 1
        /// "target" (the EMA encoder, as the paper evaluates) or "context".
        public var encoder = "target"
        /// Choose the probe's weight decay on a held-out tenth of the train split (else probe_weight_decay).
        public var probeSweep = true
        /// "mean": the average of the output tokens (the paper's probe feature); "none": every output token,
        /// concatenated (a probe that may use where things are; raw pixels are their own tokens).
        public var pooling = "mean"
        /// When > 0: this many train images (a fixed, seed-independent choice) become the evaluation split and
        /// the probes are fitted on the rest; the test split is not read. For choosing between recipes without
        /// looking at the test split.
        public var validationSamples = 0
    }

    /// How this engine runs the step: settings that change speed and memory, never the numbers (so they stay out
    /// of `trainingHash`, and a run may resume with other values). Not in the official configs.
    public struct EngineSettings: Sendable, Equatable {
        /// Activation checkpointing of the context encoder's and predictor's blocks: they keep only their input
        /// for the backward pass and run again there. ViT-S/16 I-JEPA step (batch 16, 1 thread, same run): peak RSS
        /// 2387 -> 1453 MiB (0.77 -> 0.47 of PyTorch's) for a step 15-20 % slower (docs/performance.md).
        public var recomputeBlocks = false
        /// Several processes: the gradients travel in buckets of about this many KiB, each sent as soon as the
        /// backward pass has finished it, overlapping the rest of the pass (DDP's bucket_cap_mb; the same sums
        /// in the same order: the same bits). 0 sends them all after the backward pass.
        public var gradientBucketKiB = 2048
    }

    public var data = Data()
    /// The mask sampler's own settings type (JEPA's `MaskConfig`), defaults the main job's.
    public var mask = MaskConfig()
    public var meta = Meta()
    public var optimization = Optimization()
    public var logging = Logging()
    public var evaluation = Evaluation()
    public var engine = EngineSettings()

    public init() {}
}

/// A configuration value, or the data a configuration names, that cannot be used: `source` is the key
/// ("data.batch_size"), the file or the folder at fault, `problem` what is wrong and, where there is one, the fix.
public struct ConfigError: Error, CustomStringConvertible {
    public let source: String
    public let problem: String
    public var description: String { "\(source): \(problem)" }
}

// MARK: - JSON

extension TrainingConfig {
    /// Reads a JSON config; `overrides` are "section.key=value" strings applied on top (value in JSON syntax,
    /// bare words taken as strings), e.g. "optimization.epochs=5", "data.image_folder=/data/train"; then `adjust`
    /// sets typed values (a command line's flags) before the whole is validated.
    public static func load(
        path: String?, overrides: [String] = [], adjust: ((inout TrainingConfig) -> Void)? = nil
    ) throws -> TrainingConfig {
        guard let path else { return try parse(nil, source: "defaults", overrides: overrides, adjust: adjust) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(source: path, problem: "cannot read the file (missing or unreadable)")
        }
        return try parse(data, source: path, overrides: overrides, adjust: adjust)
    }

    /// Reads a config from JSON text (e.g. the one a checkpoint carries); `source` names it in errors.
    public static func load(text: String, source: String, overrides: [String] = []) throws -> TrainingConfig {
        try parse(Foundation.Data(text.utf8), source: source, overrides: overrides)
    }

    /// This configuration with "section.key=value" overrides, then `adjust`, applied (checked as `load` checks them).
    public func applying(_ overrides: [String], adjust: ((inout TrainingConfig) -> Void)? = nil) throws -> TrainingConfig {
        try TrainingConfig.parse(Foundation.Data(jsonText().utf8), source: "command line (--set or a flag)",
                                 overrides: overrides, adjust: adjust)
    }

    static func parse(
        _ data: Foundation.Data?, source: String, overrides: [String], adjust: ((inout TrainingConfig) -> Void)? = nil
    ) throws -> TrainingConfig {
        var root: [String: Any] = [:]
        if let data {
            do {
                guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                    throw ConfigError(source: source, problem: "the top level must be a JSON object with sections data, mask, meta, optimization, logging, evaluation")
                }
                root = obj
            } catch let e as ConfigError {
                throw e
            } catch {
                throw ConfigError(source: source, problem: "malformed JSON: \((error as NSError).userInfo["NSDebugDescription"] ?? error.localizedDescription)")
            }
        }
        for o in overrides {
            guard let eq = o.firstIndex(of: "="), case let key = String(o[..<eq]), let dot = key.firstIndex(of: ".") else {
                throw ConfigError(source: "--set \(o)", problem: "expected section.key=value, e.g. optimization.epochs=5")
            }
            let section = String(key[..<dot]), name = String(key[key.index(after: dot)...])
            let text = String(o[o.index(after: eq)...])
            let parsed = try? JSONSerialization.jsonObject(with: text.data(using: .utf8)!, options: [.fragmentsAllowed])
            let value: Any = parsed ?? text
            var sec = root[section] as? [String: Any] ?? [:]
            sec[name] = value
            root[section] = sec
        }
        let origin = data == nil && (!overrides.isEmpty || adjust != nil) ? "command line (--set or a flag)" : source
        var config = try read(root, source: origin)
        adjust?(&config)
        try config.validate(source: origin)
        return config
    }

    /// The configuration as JSON with the official key names (what `load` reads back). Under the official preset,
    /// keys that are not in the official configs are left out while they hold their default (`ConfigKey.omittedWhen`).
    public var json: [String: Any] {
        Dictionary(uniqueKeysWithValues: TrainingConfig.sections.map { ($0.name, $0.write(self, omitsDefaults)) })
    }

    /// Keys the official configs lack are left out at their default value only under the official preset: under
    /// another, the preset's value would come back in their place when the JSON is read.
    var omitsDefaults: Bool { meta.preset == "official" }

    public func jsonText(sections: [String]? = nil) -> String {
        var obj = json
        if let sections { obj = obj.filter { sections.contains($0.key) } }
        let data = try! JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// FNV-1a of the sections that decide the numbers a run produces (not logging, evaluation, where the run
    /// stops: max_steps, or the preset's name: only its values count): a checkpoint made under another
    /// configuration is refused on resume.
    public var trainingHash: String {
        var c = self
        c.optimization.maxSteps = 0
        c.meta.preset = "official"
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in c.jsonText(sections: ["data", "mask", "meta", "optimization"]).utf8 {
            h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3
        }
        return String(h, radix: 16)
    }

    /// The encoder architecture: the named preset at this crop and patch size, with the overrides.
    public func vitConfig() throws -> ViTConfig {
        let s = data.cropSize, p = mask.patchSize, c = data.channels
        var v: ViTConfig
        switch meta.modelName {
        case "vit_tiny": v = .tiny(imageSize: s, patchSize: p, inChannels: c)
        case "vit_small": v = .small(imageSize: s, patchSize: p, inChannels: c)
        case "vit_base": v = .base(imageSize: s, patchSize: p, inChannels: c)
        case "vit_large": v = .large(imageSize: s, patchSize: p, inChannels: c)
        case "vit_huge": v = .huge(imageSize: s, patchSize: p, inChannels: c)
        default:
            throw ConfigError(source: "meta.model_name", problem: "unknown model '\(meta.modelName)' (vit_tiny, vit_small, vit_base, vit_large, vit_huge)")
        }
        if meta.depth > 0 { v.depth = meta.depth }
        if meta.embedDim > 0 { v.embedDim = meta.embedDim }
        if meta.numHeads > 0 { v.heads = meta.numHeads }
        return v
    }

    /// The mask collator of this configuration: `mask` on the grid of `data.crop_size` / `mask.patch_size`.
    package func maskCollator() throws -> MaskCollator {
        try MaskCollator(mask, inputSize: data.cropSize)
    }

    /// Checks every value and the architecture and masks they make; `source` names where they came from in the
    /// error. `load` does this; call it after setting values in code.
    public func validate(source: String = "the configuration") throws {
        func need(_ ok: Bool, _ problem: String) throws { if !ok { throw ConfigError(source: source, problem: problem) } }
        try need(["fashion-mnist", "idx", "image-folder"].contains(data.dataset),
                 "data.dataset must be \"fashion-mnist\", \"idx\" or \"image-folder\", got \"\(data.dataset)\"")
        try need(data.dataset != "image-folder" || data.imageFolder != nil,
                 "data.dataset \"image-folder\" needs data.image_folder (a folder with one subfolder of PNGs per class)")
        try need(data.batchSize >= 1, "data.batch_size must be >= 1, got \(data.batchSize)")
        try need(data.channels == 1 || data.channels == 3, "data.channels must be 1 (gray) or 3 (RGB), got \(data.channels)")
        try need(data.cropScale.count == 2 && data.cropScale[0] > 0 && data.cropScale[0] <= data.cropScale[1] && data.cropScale[1] <= 1,
                 "data.crop_scale must be [min, max] with 0 < min <= max <= 1, got \(data.cropScale)")
        try need(data.mean.count == data.std.count && (data.mean.isEmpty || data.mean.count == data.channels),
                 "data.mean and data.std need one value per channel (\(data.channels)) or both empty")
        try need(data.std.allSatisfy { $0 > 0 }, "data.std values must be > 0")
        try need(mask.patchSize >= 1, "mask.patch_size must be >= 1, got \(mask.patchSize)")
        try need(data.cropSize >= mask.patchSize && data.cropSize % mask.patchSize == 0,
                 "data.crop_size \(data.cropSize) must be a positive multiple of mask.patch_size \(mask.patchSize)")
        try need(meta.depth >= 0 && meta.embedDim >= 0 && meta.numHeads >= 0,
                 "meta.depth, meta.embed_dim and meta.num_heads must be >= 0 (0 = the preset's value)")
        try need(meta.predDepth >= 1 && meta.predEmbDim >= 1, "meta.pred_depth and meta.pred_emb_dim must be >= 1")
        try need(optimization.epochs >= 1, "optimization.epochs must be >= 1")
        try need(optimization.warmup >= 0 && optimization.warmup <= Double(optimization.epochs),
                 "optimization.warmup (epochs) must be in 0...epochs")
        try need(optimization.ema.count == 2 && optimization.ema.allSatisfy { $0 >= 0 && $0 <= 1 },
                 "optimization.ema must be [start, end] in [0, 1], got \(optimization.ema)")
        try need(optimization.lr > 0 && optimization.startLR >= 0 && optimization.finalLR >= 0, "learning rates must be >= 0 (lr > 0)")
        try need(optimization.weightDecay >= 0 && optimization.finalWeightDecay >= 0,
                 "optimization.weight_decay and final_weight_decay must be >= 0")
        try need(optimization.ipeScale > 0, "optimization.ipe_scale must be > 0, got \(optimization.ipeScale)")
        try need(optimization.maxSteps >= 0, "optimization.max_steps must be >= 0")
        let shards = optimization.gradientShards
        try need(shards >= 1 && shards & (shards - 1) == 0 && data.batchSize % shards == 0,
                 "optimization.gradient_shards must be a power of two that divides data.batch_size (\(data.batchSize)), got \(shards)")
        try need(["tree", "allreduce"].contains(optimization.gradientReduction),
                 "optimization.gradient_reduction must be \"tree\" or \"allreduce\", got \"\(optimization.gradientReduction)\"")
        try need(optimization.varianceWeight >= 0 && optimization.covarianceWeight >= 0,
                 "optimization.variance_weight and covariance_weight must be >= 0")
        try need(logging.checkpointEvery >= 0 && logging.logEvery >= 1, "logging.checkpoint_every >= 0 and logging.log_every >= 1")
        try need(engine.gradientBucketKiB >= 0 && engine.gradientBucketKiB <= 1 << 20,
                 "engine.gradient_bucket_kib must be in 0...1048576 (0: no overlap), got \(engine.gradientBucketKiB)")
        try need(evaluation.knnK >= 1, "evaluation.knn_k must be >= 1")
        try need(["mean", "none"].contains(evaluation.pooling), "evaluation.pooling must be \"mean\" or \"none\" (every token), got \"\(evaluation.pooling)\"")
        try need(evaluation.validationSamples >= 0, "evaluation.validation_samples must be >= 0 (0 = evaluate on the test split)")
        try need(evaluation.trainSamples >= 0 && evaluation.testSamples >= 0,
                 "evaluation.train_samples and test_samples must be >= 0 (0 = the whole split)")
        try need(evaluation.probeIterations >= 1, "evaluation.probe_iterations must be >= 1")
        try need(evaluation.probeWeightDecay >= 0, "evaluation.probe_weight_decay must be >= 0")
        try need(["target", "context"].contains(evaluation.encoder), "evaluation.encoder must be \"target\" or \"context\"")
        try need(evaluation.layers >= 1 && evaluation.layers <= ((try? vitConfig().depth) ?? 1),
                 "evaluation.layers must be in 1...depth (blocks whose pooled outputs are concatenated)")
        do {
            try vitConfig().validate()
            _ = try maskCollator()
        } catch let e as ConfigError {
            throw ConfigError(source: source, problem: e.problem)
        } catch {
            throw ConfigError(source: source, problem: "\(error)")
        }
    }
}

// MARK: - The keys, each written once

extension TrainingConfig {
    /// Every section and key with its JSON name, in reading order. This table is the only place a key is spelled:
    /// reading (`load`), writing (`json`), `Codable` and the list of known keys in errors all come from it.
    static var sections: [ConfigSection] {
        [
            ConfigSection("data", \.data, [
                ConfigKey("dataset", \.dataset), ConfigKey("root_path", \.rootPath),
                ConfigKey("image_folder", \.imageFolder), ConfigKey("test_folder", \.testFolder),
                ConfigKey("batch_size", \.batchSize), ConfigKey("crop_size", \.cropSize),
                ConfigKey("crop_scale", \.cropScale), ConfigKey("use_horizontal_flip", \.useHorizontalFlip),
                ConfigKey("channels", \.channels), ConfigKey("mean", \.mean), ConfigKey("std", \.std),
            ]),
            ConfigSection("mask", \.mask, [
                ConfigKey("patch_size", \.patchSize), ConfigKey("enc_mask_scale", \.encMaskScale),
                ConfigKey("pred_mask_scale", \.predMaskScale), ConfigKey("aspect_ratio", \.aspectRatio),
                ConfigKey("num_enc_masks", \.numEncMasks), ConfigKey("num_pred_masks", \.numPredMasks),
                ConfigKey("min_keep", \.minKeep), ConfigKey("allow_overlap", \.allowOverlap), ConfigKey("fixed", \.fixed),
            ]),
            ConfigSection("meta", \.meta, [
                ConfigKey("model_name", \.modelName), ConfigKey("depth", \.depth), ConfigKey("embed_dim", \.embedDim),
                ConfigKey("num_heads", \.numHeads), ConfigKey("pred_depth", \.predDepth),
                ConfigKey("pred_emb_dim", \.predEmbDim), ConfigKey("seed", \.seed),
                ConfigKey("preset", \.preset, omittedWhen: "official"),
            ]),
            ConfigSection("optimization", \.optimization, [
                ConfigKey("epochs", \.epochs), ConfigKey("warmup", \.warmup), ConfigKey("start_lr", \.startLR),
                ConfigKey("lr", \.lr), ConfigKey("final_lr", \.finalLR), ConfigKey("weight_decay", \.weightDecay),
                ConfigKey("final_weight_decay", \.finalWeightDecay), ConfigKey("ema", \.ema),
                ConfigKey("ipe_scale", \.ipeScale), ConfigKey("max_steps", \.maxSteps),
                ConfigKey("variance_weight", \.varianceWeight, omittedWhen: 0),
                ConfigKey("covariance_weight", \.covarianceWeight, omittedWhen: 0),
                ConfigKey("gradient_shards", \.gradientShards, omittedWhen: 1),
                ConfigKey("gradient_reduction", \.gradientReduction, omittedWhen: "tree"),
            ]),
            ConfigSection("logging", \.logging, [
                ConfigKey("folder", \.folder), ConfigKey("checkpoint_every", \.checkpointEvery),
                ConfigKey("log_every", \.logEvery),
            ]),
            ConfigSection("evaluation", \.evaluation, [
                ConfigKey("train_samples", \.trainSamples), ConfigKey("test_samples", \.testSamples),
                ConfigKey("knn_k", \.knnK), ConfigKey("probe_iterations", \.probeIterations),
                ConfigKey("probe_weight_decay", \.probeWeightDecay), ConfigKey("layers", \.layers),
                ConfigKey("encoder", \.encoder), ConfigKey("probe_sweep", \.probeSweep),
                ConfigKey("validation_samples", \.validationSamples), ConfigKey("pooling", \.pooling),
            ]),
            ConfigSection("engine", \.engine, [
                ConfigKey("recompute_blocks", \.recomputeBlocks), ConfigKey("gradient_bucket_kib", \.gradientBucketKiB, omittedWhen: 2048),
            ]),
        ]
    }

    /// Reads the sections of a JSON object: unknown sections and keys first, then each key's type.
    static func read(_ root: [String: Any], source: String) throws -> TrainingConfig {
        let sections = TrainingConfig.sections
        for (name, value) in root {
            guard let section = sections.first(where: { $0.name == name }) else {
                throw ConfigError(source: source, problem: "unknown section '\(name)' (known: \(sections.map(\.name).sorted().joined(separator: ", ")))")
            }
            guard let dict = value as? [String: Any] else {
                throw ConfigError(source: source, problem: "section '\(name)' must be a JSON object")
            }
            for k in dict.keys where !section.keyNames.contains(k) {
                throw ConfigError(source: source, problem: "unknown key '\(name).\(k)' (known: \(section.keyNames.sorted().joined(separator: ", ")))")
            }
        }
        var c = TrainingConfig()
        if let name = (root["meta"] as? [String: Any])?["preset"], !(name is NSNull) {
            c = try preset(named: name, source: source)
        }
        for section in sections {
            try section.read(&c, root[section.name] as? [String: Any] ?? [:], source)
        }
        return c
    }

    /// Decodes the sections and keys of `json` (every one optional, unknown ones refused), as `load` reads them.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: ConfigCodingKey.self)
        let sections = TrainingConfig.sections
        for key in container.allKeys where !sections.contains(where: { $0.name == key.stringValue }) {
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "unknown section '\(key.stringValue)'")
        }
        self.init()
        let meta = ConfigCodingKey(stringValue: "meta"), preset = ConfigCodingKey(stringValue: "preset")
        if container.contains(meta), case let m = try container.nestedContainer(keyedBy: ConfigCodingKey.self, forKey: meta),
           let name = try m.decodeIfPresent(String.self, forKey: preset) {
            guard let c = TrainingConfig.preset(name) else {
                throw DecodingError.dataCorruptedError(forKey: preset, in: m, debugDescription: TrainingConfig.unknownPreset(name))
            }
            self = c
        }
        for section in sections {
            try section.decode(&self, container)
        }
    }

    /// Encodes the keys `json` writes.
    public func encode(to encoder: any Swift.Encoder) throws {
        var container = encoder.container(keyedBy: ConfigCodingKey.self)
        for section in TrainingConfig.sections {
            try section.encode(self, omitsDefaults, &container)
        }
    }
}

/// A coding key made from a key's JSON name.
struct ConfigCodingKey: CodingKey {
    let stringValue: String
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
    var intValue: Int? { nil }
}

/// A value a config key may hold: read from what JSONSerialization returns (nil: another JSON type), written as
/// JSONSerialization writes it, and described in errors.
protocol ConfigValue: Codable, Equatable {
    init?(json: Any)
    var json: Any { get }
    static var expected: String { get }
}

/// JSON true/false arrive as NSNumber on every platform; only their class tells them from 1 and 0.
private func isJSONBool(_ v: Any) -> Bool { String(describing: type(of: v)).contains("Boolean") }

extension Int: ConfigValue {
    init?(json: Any) {
        guard let n = json as? NSNumber, !isJSONBool(n), n.doubleValue == n.doubleValue.rounded(),
              abs(n.doubleValue) < 1e15 else { return nil }
        self = n.intValue
    }
    var json: Any { self }
    static var expected: String { "an integer" }
}

extension Double: ConfigValue {
    init?(json: Any) {
        guard let n = json as? NSNumber, !isJSONBool(n), n.doubleValue.isFinite else { return nil }
        self = n.doubleValue
    }
    var json: Any { self }
    static var expected: String { "a number" }
}

extension Bool: ConfigValue {
    init?(json: Any) {
        guard let n = json as? NSNumber, isJSONBool(n) else { return nil }
        self = n.boolValue
    }
    var json: Any { self }
    static var expected: String { "true or false" }
}

extension String: ConfigValue {
    init?(json: Any) {
        guard let s = json as? String else { return nil }
        self = s
    }
    var json: Any { self }
    static var expected: String { "a string" }
}

extension Optional: ConfigValue where Wrapped == String {
    init?(json: Any) {
        guard let s = json as? String else { return nil }
        self = s
    }
    var json: Any { self.map { $0 as Any } ?? NSNull() }
    static var expected: String { "a string (a path)" }
}

extension Array: ConfigValue where Element == Double {
    init?(json: Any) {
        guard let ns = json as? [NSNumber], ns.allSatisfy({ !isJSONBool($0) && $0.doubleValue.isFinite }) else { return nil }
        self = ns.map(\.doubleValue)
    }
    var json: Any { self }
    static var expected: String { "a list of numbers" }
}

/// One key of a section: its JSON name and the property it sets, with the ways to read and write it.
struct ConfigKey<Section> {
    let name: String
    /// Sets the property from a JSON value that is not null; false when the value has the wrong type.
    let read: (inout Section, Any) -> Bool
    let expected: String
    /// The JSON value to write, nil to leave the key out (only when the second argument says defaults may be).
    let write: (Section, Bool) -> Any?
    let decode: (inout Section, KeyedDecodingContainer<ConfigCodingKey>) throws -> Void
    let encode: (Section, Bool, inout KeyedEncodingContainer<ConfigCodingKey>) throws -> Void

    /// `omittedWhen`: for keys the official configs do not have, the value at which the key is left out of the
    /// JSON, so the official configuration's text and hash (which existing checkpoints carry) stay the same.
    init<T: ConfigValue>(_ name: String, _ path: WritableKeyPath<Section, T>, omittedWhen omitted: T? = nil) {
        let key = ConfigCodingKey(stringValue: name)
        self.name = name
        expected = T.expected
        read = { section, json in
            guard let v = T(json: json) else { return false }
            section[keyPath: path] = v
            return true
        }
        write = { section, omits in omits && section[keyPath: path] == omitted ? nil : section[keyPath: path].json }
        decode = { section, container in
            if let v = try container.decodeIfPresent(T.self, forKey: key) { section[keyPath: path] = v }
        }
        encode = { section, omits, container in
            if !omits || section[keyPath: path] != omitted { try container.encode(section[keyPath: path], forKey: key) }
        }
    }
}

/// One section of the config (a property of `TrainingConfig`) and its keys, with the section type erased.
struct ConfigSection {
    let name: String
    let keyNames: [String]
    let read: (inout TrainingConfig, [String: Any], _ source: String) throws -> Void
    let write: (TrainingConfig, _ omitsDefaults: Bool) -> [String: Any]
    let decode: (inout TrainingConfig, KeyedDecodingContainer<ConfigCodingKey>) throws -> Void
    let encode: (TrainingConfig, _ omitsDefaults: Bool, inout KeyedEncodingContainer<ConfigCodingKey>) throws -> Void

    init<S>(_ name: String, _ path: WritableKeyPath<TrainingConfig, S>, _ keys: [ConfigKey<S>]) {
        let codingKey = ConfigCodingKey(stringValue: name)
        self.name = name
        keyNames = keys.map(\.name)
        read = { config, dict, source in
            for key in keys {
                guard let v = dict[key.name], !(v is NSNull) else { continue }
                guard key.read(&config[keyPath: path], v) else {
                    throw ConfigError(source: source, problem: "\(name).\(key.name) must be \(key.expected), got \(v)")
                }
            }
        }
        write = { config, omits in
            var dict: [String: Any] = [:]
            for key in keys { dict[key.name] = key.write(config[keyPath: path], omits) }
            return dict
        }
        decode = { config, container in
            guard container.contains(codingKey) else { return }
            let section = try container.nestedContainer(keyedBy: ConfigCodingKey.self, forKey: codingKey)
            for k in section.allKeys where !keys.contains(where: { $0.name == k.stringValue }) {
                throw DecodingError.dataCorruptedError(forKey: k, in: section, debugDescription: "unknown key '\(name).\(k.stringValue)'")
            }
            for key in keys { try key.decode(&config[keyPath: path], section) }
        }
        encode = { config, omits, container in
            var section = container.nestedContainer(keyedBy: ConfigCodingKey.self, forKey: codingKey)
            for key in keys { try key.encode(config[keyPath: path], omits, &section) }
        }
    }
}
