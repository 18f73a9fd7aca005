import Foundation
import FuzzSupport
@_spi(Fuzzing) import IJEPA

// Checkpoint restore as `ijepa train --resume` does it (into a small trainer of the seed corpus's configuration),
// a checkpoint opened for evaluation (`TrainedCheckpoint`, whose configuration comes from the file), and an
// `Encoder` loaded from it.
/// The configuration of the corpus's checkpoints (Fuzz/tiny-config.json, docs/fuzzing.md), so that a restore
/// passes the configuration check and reaches the tensors.
let checkpoints: FuzzEntryPoints.Checkpoints = {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../tiny-config.json").path
    return try! FuzzEntryPoints.Checkpoints(configPath: path)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    withInputFile(data, size, suffix: ".safetensors") { checkpoints.restore(path: $0) }
    return 0
}
