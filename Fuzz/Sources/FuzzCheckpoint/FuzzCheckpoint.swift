import Foundation
import FuzzSupport
import IJEPA
import JEPA

// Checkpoint restore as `ijepa train --resume` does it (into a small trainer of the seed corpus's configuration),
// a checkpoint opened for evaluation (`TrainedCheckpoint`, whose configuration comes from the file), and an
// `Encoder` loaded from it.

/// The configuration of the corpus's checkpoints (Fuzz/tiny-config.json, docs/fuzzing.md), so that a restore
/// passes the configuration check and reaches the tensors.
let config: TrainingConfig = {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../tiny-config.json").path
    return try! TrainingConfig.load(path: path)
}()
let trainer: IJEPATrainer = {
    let schedules = Schedules(itersPerEpoch: 10, epochs: 1, warmupEpochs: 0.25, ipeScale: 1, startLR: 1e-4, refLR: 1e-3,
                              finalLR: 1e-6, refWD: 0.04, finalWD: 0.4, ema: (0.996, 1))
    return try! IJEPATrainer(model: config.makeModel(), schedules: schedules)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    withInputFile(data, size, suffix: ".safetensors") { path in
        _ = try? Checkpoint.restore(trainer, from: path, configHash: config.trainingHash)
        _ = try? TrainedCheckpoint(path: path)
        _ = try? Encoder(checkpoint: path)
    }
    return 0
}
