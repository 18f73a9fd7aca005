import Foundation
import JEPA
import NNLayers
import TensorCore

/// The resumable state of a run that is not a tensor; stored as JSON in the checkpoint's safetensors metadata
/// (key `ijepa.state`) and, for people and tools, beside it as `<checkpoint>.json`.
public struct TrainingState: Codable, Sendable, Equatable {
    public static let currentVersion = "ijepa-checkpoint-v1"
    public var version = TrainingState.currentVersion
    /// Optimizer steps done; the run continues with step stepsDone + 1. Data order, augmentation and masks are
    /// pure functions of (seed, step), so this and the seed are the whole RNG state.
    public var stepsDone: Int
    public var adamStep: Int
    public var seed: UInt64
    public var configHash: String
    public var config: String
    public var lastLoss: Float
    public var wallSeconds: Double
}

/// One safetensors file holds everything: the three networks under their official names (`encoder.*`,
/// `predictor.*`, `target_encoder.*`), AdamW's moments (`optimizer.exp_avg.<param>`, `optimizer.exp_avg_sq.<param>`)
/// and the state JSON. One file written through a temporary file and a rename means a kill at any moment
/// leaves either the previous checkpoint or the new one, never a mix.
public enum Checkpoint {
    public static let stateKey = "ijepa.state"

    public static func save(_ trainer: IJEPATrainer, state: TrainingState, to path: String) throws {
        var tensors = parameterTensors(trainer.model.stateDict)
        for (i, (name, _)) in trainer.optimizer.parameters.enumerated() {
            tensors.append(("optimizer.exp_avg.\(name)", trainer.optimizer.m[i]))
            tensors.append(("optimizer.exp_avg_sq.\(name)", trainer.optimizer.v[i]))
        }
        let json = String(decoding: try JSONEncoder.sorted.encode(state), as: UTF8.self)
        try SafeTensors.write(tensors, metadata: [stateKey: json], to: path)
        try writeAtomically(Data((json + "\n").utf8), to: path + ".json")
    }

    /// Reads the state only (cheap checks before anything is built).
    public static func readState(_ path: String) throws -> (TrainingState, [String: Tensor]) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw SafeTensorsError(path: path, problem: "no checkpoint here (start without --resume, or point --resume at a checkpoint file or run folder)")
        }
        let (tensors, meta) = try SafeTensors.read(path)
        guard let text = meta[stateKey] else {
            throw SafeTensorsError(path: path, problem: "not an ijepa training checkpoint (no '\(stateKey)' metadata)")
        }
        let state: TrainingState
        do {
            state = try JSONDecoder().decode(TrainingState.self, from: Data(text.utf8))
        } catch {
            throw SafeTensorsError(path: path, problem: "the checkpoint's state record is corrupt: \(error)")
        }
        guard state.version == TrainingState.currentVersion else {
            throw SafeTensorsError(path: path, problem: "checkpoint version \(state.version), this build reads \(TrainingState.currentVersion)")
        }
        return (state, tensors)
    }

    /// Loads weights and optimizer state into `trainer`; refuses a checkpoint of another configuration.
    public static func restore(_ trainer: IJEPATrainer, from path: String, configHash: String) throws -> TrainingState {
        let (state, tensors) = try readState(path)
        guard state.configHash == configHash else {
            throw SafeTensorsError(path: path, problem: "made with another training configuration (hash \(state.configHash), now \(configHash)); resume with the same config, or start a new run folder")
        }
        let model = trainer.model
        try loadParameters(model.encoder.namedParameters, from: tensors, prefix: "encoder.", file: path)
        try loadParameters(model.predictor.namedParameters, from: tensors, prefix: "predictor.", file: path)
        try loadParameters(model.target.namedParameters, from: tensors, prefix: "target_encoder.", file: path)
        var m: [Tensor] = [], v: [Tensor] = []
        for (name, p) in trainer.optimizer.parameters {
            guard let a = tensors["optimizer.exp_avg.\(name)"], let b = tensors["optimizer.exp_avg_sq.\(name)"],
                  a.shape == p.shape, b.shape == p.shape else {
                throw SafeTensorsError(path: path, problem: "optimizer moments of '\(name)' are missing or have the wrong shape")
            }
            m.append(a)
            v.append(b)
        }
        for (name, t) in tensors where !t.scalars.allSatisfy(\.isFinite) {
            throw SafeTensorsError(path: path, problem: "tensor '\(name)' holds NaN or infinity")
        }
        try trainer.restore(stepsDone: state.stepsDone, adamStep: state.adamStep, m: m, v: v)
        return state
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
