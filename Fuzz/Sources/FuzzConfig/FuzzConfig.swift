@_spi(Fuzzing) import IJEPA

/// The training configuration (JSON), and what is derived from it before a run starts: the architecture and the
/// mask settings, both validated; then a batch of masks drawn, which validation promises terminates (the
/// official sampler can loop forever on settings it accepts, issue #68 of facebookresearch/ijepa).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzEntryPoints.config(text: String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self))
    return 0
}
