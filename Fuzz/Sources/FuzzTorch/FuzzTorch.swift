import FuzzSupport
import IJEPA
import TorchImport

/// Official PyTorch checkpoints (`torch.save` zip archives): the zip reader, the restricted unpickler, every
/// tensor read back, and an `Encoder` built from the file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorch(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    withInputFile(data, size, suffix: ".pth") { path in
        if let file = try? TorchCheckpoint(path: path) {
            for name in file.tensorNames {
                _ = try? file.tensor(name)
            }
        }
        _ = try? Encoder(checkpoint: path)
    }
    return 0
}
