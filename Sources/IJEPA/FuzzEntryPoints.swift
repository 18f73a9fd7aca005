import Foundation
import ImageData
import JEPA
import TensorCore
import TorchImport

/// The parsers of files users receive, for the libFuzzer targets of `Fuzz/` (a package of its own, so it sees
/// only what this module exports): each call feeds one input to a parser and ignores its verdict; a crash, a
/// hang or an unbounded allocation is the finding. Not part of the app-facing API (SPI `Fuzzing`).
@_spi(Fuzzing)
public enum FuzzEntryPoints {
    /// PNG bytes through libpng, as gray and as RGB, at most 4 Mi pixels.
    public static func png(_ bytes: [UInt8]) {
        for channels in [1, 3] {
            _ = try? PNGCodec.decode(data: bytes, path: "fuzz.png", channels: channels, maxPixels: 1 << 22)
        }
    }

    /// An IDX file read as images and as labels.
    public static func idx(path: String) {
        _ = try? IDX.readImages(path: path)
        _ = try? IDX.readLabels(path: path)
    }

    /// A safetensors file read whole, then tensor by tensor through its header.
    public static func safeTensors(path: String) {
        _ = try? SafeTensors.read(path)
        guard let file = try? SafeTensorsFile(path: path) else { return }
        for name in file.names { _ = try? file.tensor(name) }
    }

    /// A JSON config: parsed, validated, its architecture and one batch of masks made, written back.
    public static func config(text: String) {
        guard let config = try? TrainingConfig.load(text: text, source: "fuzz.json") else { return }
        _ = try? config.vitConfig()
        if let collator = try? config.maskCollator() { _ = collator.sample(batch: 2, step: 0, seed: 0) }
        _ = config.jsonText()
        _ = config.trainingHash
    }

    /// A `torch.save` zip: every tensor read, then the whole file opened as an encoder.
    public static func torch(path: String) {
        if let file = try? TorchCheckpoint(path: path) {
            for name in file.tensorNames { _ = try? file.tensor(name) }
        }
        _ = try? Encoder(checkpoint: path)
    }

    /// Checkpoints of one configuration, restored into a trainer built once.
    public final class Checkpoints {
        let config: TrainingConfig
        let trainer: IJEPATrainer

        /// `configPath`: the JSON config the inputs' networks are shaped for.
        public init(configPath: String) throws {
            config = try TrainingConfig.load(path: configPath)
            let schedules = Schedules(itersPerEpoch: 10, epochs: 1, warmupEpochs: 0.25, ipeScale: 1, startLR: 1e-4,
                                      refLR: 1e-3, finalLR: 1e-6, refWD: 0.04, finalWD: 0.4, ema: (0.996, 1))
            trainer = try IJEPATrainer(model: config.makeModel(), schedules: schedules)
        }

        /// A checkpoint file restored into the trainer, opened as a trained checkpoint, and as an encoder.
        public func restore(path: String) {
            _ = try? Checkpoint.restore(trainer, from: path, configHash: config.trainingHash)
            _ = try? TrainedCheckpoint(path: path)
            _ = try? Encoder(checkpoint: path)
        }
    }
}
