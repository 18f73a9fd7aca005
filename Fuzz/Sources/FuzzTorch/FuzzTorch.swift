import FuzzSupport
@_spi(Fuzzing) import IJEPA

/// Official PyTorch checkpoints (`torch.save` zip archives): the zip reader, the restricted unpickler, every
/// tensor read back, and an `Encoder` built from the file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTorch(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    withInputFile(data, size, suffix: ".pth") { FuzzEntryPoints.torch(path: $0) }
    return 0
}
