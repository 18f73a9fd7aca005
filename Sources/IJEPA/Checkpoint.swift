import Foundation
import JEPA
import NNLayers
import TensorCore

/// The resumable state of a run that is not a tensor; stored as JSON in the checkpoint's safetensors metadata
/// (key `ijepa.state`) and, for people and tools, beside it as `<checkpoint>.json`.
package struct TrainingState: Codable, Sendable, Equatable {
    /// v2: position tables stored as the official (1, N, D), and runs drawn from the independent random streams
    /// (`RandomPurpose`). v1 (until 2026-12-06): tables (N, D), streams keyed by seed XOR step; its networks
    /// still load for evaluation, but it cannot be resumed (the rest of its run would draw other batches).
    package static let currentVersion = "ijepa-checkpoint-v2"
    package static let version1 = "ijepa-checkpoint-v1"
    package var version = TrainingState.currentVersion
    /// Optimizer steps done; the run continues with step stepsDone + 1. Data order, augmentation and masks are
    /// pure functions of (seed, step), so this and the seed are the whole RNG state.
    package var stepsDone: Int
    package var adamStep: Int
    package var seed: UInt64
    package var configHash: String
    package var config: String
    package var lastLoss: Float
    package var wallSeconds: Double
}

/// One safetensors file holds everything: the three networks under their official names (`encoder.*`,
/// `predictor.*`, `target_encoder.*`), AdamW's moments (`optimizer.exp_avg.<param>`, `optimizer.exp_avg_sq.<param>`)
/// and the state JSON. One file written through a temporary file and a rename means a kill at any moment
/// leaves either the previous checkpoint or the new one, never a mix.
package enum Checkpoint {
    package static let stateKey = "ijepa.state"

    package static func save(_ trainer: IJEPATrainer, state: TrainingState, to path: String) throws {
        var tensors = trainer.model.stateTensors
        for (i, (name, _)) in trainer.optimizer.parameters.enumerated() {
            tensors.append(("optimizer.exp_avg.\(name)", trainer.optimizer.m[i]))
            tensors.append(("optimizer.exp_avg_sq.\(name)", trainer.optimizer.v[i]))
        }
        let json = String(decoding: try JSONEncoder.sorted.encode(state), as: UTF8.self)
        try SafeTensors.write(tensors, metadata: [stateKey: json], to: path)
        try writeAtomically(Data((json + "\n").utf8), to: path + ".json")
    }

    /// Reads the state only (cheap checks before anything is built).
    package static func readState(_ path: String) throws -> (TrainingState, [String: Tensor]) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw SafeTensorsError(path: path, problem: "no checkpoint here (start without --resume, or point --resume at a checkpoint file or run folder)")
        }
        let (tensors, meta) = try SafeTensors.read(path)
        return (try state(from: meta, path: path), tensors)
    }

    /// The training state in a checkpoint's metadata, checked (record readable, a version this build reads).
    static func state(from meta: [String: String], path: String) throws -> TrainingState {
        guard let text = meta[stateKey] else {
            throw SafeTensorsError(path: path, problem: "not an ijepa training checkpoint (no '\(stateKey)' metadata)")
        }
        let state: TrainingState
        do {
            state = try JSONDecoder().decode(TrainingState.self, from: Data(text.utf8))
        } catch {
            throw SafeTensorsError(path: path, problem: "the checkpoint's state record is corrupt: \(error)")
        }
        guard [TrainingState.currentVersion, TrainingState.version1].contains(state.version) else {
            throw SafeTensorsError(path: path, problem: "checkpoint version \(state.version), this build reads \(TrainingState.currentVersion) and \(TrainingState.version1)")
        }
        return state
    }

    /// Loads weights and optimizer state into `trainer` to continue its run; refuses a checkpoint of another
    /// configuration, and one of format v1, whose run drew its batches from other random streams.
    package static func restore(_ trainer: IJEPATrainer, from path: String, configHash: String) throws -> TrainingState {
        let (state, tensors) = try readState(path)
        guard state.version == TrainingState.currentVersion else {
            throw SafeTensorsError(path: path, problem: "format \(state.version) cannot be resumed by this build: the random streams for data order, augmentation and masks changed in \(TrainingState.currentVersion), so the rest of the run would not be the run it began. Its networks still load for `ijepa probe` and `ijepa embed`; to train on, start a new run folder")
        }
        guard state.configHash == configHash else {
            throw SafeTensorsError(path: path, problem: "made with another training configuration (hash \(state.configHash), now \(configHash)); resume with the same config, or start a new run folder")
        }
        try loadNetworks(trainer.model, from: tensors, file: path)
        var m: [Tensor] = [], v: [Tensor] = []
        for (name, p) in trainer.optimizer.parameters {
            guard let a = tensors["optimizer.exp_avg.\(name)"], let b = tensors["optimizer.exp_avg_sq.\(name)"],
                  a.shape == p.shape, b.shape == p.shape else {
                throw SafeTensorsError(path: path, problem: "optimizer moments of '\(name)' are missing or have the wrong shape")
            }
            m.append(a)
            v.append(b)
        }
        for (name, t) in tensors where name.hasPrefix("optimizer.") && !t.scalars.allSatisfy(\.isFinite) {
            throw SafeTensorsError(path: path, problem: "tensor '\(name)' holds NaN or infinity")
        }
        try trainer.restore(stepsDone: state.stepsDone, adamStep: state.adamStep, m: m, v: v)
        return state
    }

    /// The three networks' parameters from a checkpoint's tensors (`encoder.`, `predictor.`, `target_encoder.`;
    /// the fixed position tables are not read, so (N, D) v1 tables and (1, N, D) v2 ones are both fine).
    static func loadNetworks(_ model: IJEPAModel, from tensors: [String: Tensor], file: String) throws {
        try loadParameters(model.encoder.namedParameters, from: tensors, prefix: "encoder.", file: file)
        try loadParameters(model.predictor.namedParameters, from: tensors, prefix: "predictor.", file: file)
        try loadParameters(model.target.namedParameters, from: tensors, prefix: "target_encoder.", file: file)
        for (name, t) in tensors where !name.hasPrefix("optimizer.") && !t.scalars.allSatisfy(\.isFinite) {
            throw SafeTensorsError(path: file, problem: "tensor '\(name)' holds NaN or infinity")
        }
    }
}

/// A trained checkpoint opened for evaluation (`ijepa probe`, `ijepa embed`): its configuration and its three
/// networks, no optimizer and no data. Unlike `--resume` it accepts any data set and checkpoints of format v1,
/// and a bare state dict (safetensors with the `encoder.` / `predictor.` / `target_encoder.` names and no
/// training state, e.g. saved from the official modules) when a configuration is given.
package struct TrainedCheckpoint {
    package let path: String
    package let config: TrainingConfig
    /// The training state, nil for a bare state dict.
    package let state: TrainingState?
    package let model: IJEPAModel

    /// `config`: the configuration to use instead of the one the checkpoint carries (required for a bare state
    /// dict); `overrides` ("section.key=value") apply on top, e.g. another data set or evaluation settings, then
    /// `adjust` sets typed values, before the whole is validated.
    package init(
        path: String, config given: TrainingConfig? = nil, overrides: [String] = [],
        adjust: ((inout TrainingConfig) -> Void)? = nil
    ) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw SafeTensorsError(path: path, problem: "no checkpoint here (point at a checkpoint file or a run folder)")
        }
        let (tensors, meta) = try SafeTensors.read(path)
        var cfg: TrainingConfig
        if meta[Checkpoint.stateKey] != nil {
            let s = try Checkpoint.state(from: meta, path: path)  // the file was read once, above
            state = s
            cfg = try given ?? TrainingConfig.load(text: s.config, source: path + " (its training configuration)")
        } else if let text = meta["ijepa.config"] {  // written by `ijepa import`
            state = nil
            cfg = try given ?? TrainingConfig.load(text: text, source: path + " (its configuration)")
        } else {
            guard let given else {
                throw SafeTensorsError(path: path, problem: "a bare state dict (no '\(Checkpoint.stateKey)' metadata): give its training configuration with --config")
            }
            state = nil
            cfg = given
        }
        if !overrides.isEmpty || adjust != nil { cfg = try cfg.applying(overrides, adjust: adjust) }
        self.path = path
        config = cfg
        // The configuration may come from the file: it must not describe networks the file cannot hold (two
        // encoders and a predictor, Float32) before they are built.
        let vit = try cfg.vitConfig()
        let predictor = ViTConfig(imageSize: vit.imageSize, patchSize: vit.patchSize, inChannels: 0,
                                  embedDim: cfg.meta.predEmbDim, depth: cfg.meta.predDepth, heads: 1)
        let weights = checkedSum([vit.weightCountLowerBound, vit.weightCountLowerBound, predictor.weightCountLowerBound])
        try ViTConfig.requireFile(path, holds: weights, bytesEach: 4, what: "the networks of its configuration")
        model = try cfg.makeModel()
        try Checkpoint.loadNetworks(model, from: tensors, file: path)
    }

    /// The encoder the probes evaluate (evaluation.encoder).
    package var evaluatedEncoder: VisionTransformer { config.evaluatedEncoder(of: model) }
}

extension TrainingConfig {
    /// The networks this configuration describes, initialised from its seed.
    package func makeModel() throws -> IJEPAModel {
        try IJEPAModel(try vitConfig(), predictorDim: meta.predEmbDim, predictorDepth: meta.predDepth, seed: UInt64(meta.seed))
    }

    /// The encoder the probes evaluate (evaluation.encoder): the target (EMA) encoder, or the context encoder.
    package func evaluatedEncoder(of model: IJEPAModel) -> VisionTransformer {
        evaluation.encoder == "context" ? model.encoder : model.target
    }

    /// The architecture at initialisation with this seed: the random-init baseline of the probes.
    package func randomInitEncoder() throws -> VisionTransformer { try makeModel().encoder }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
