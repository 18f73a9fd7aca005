import FuzzSupport
@_spi(Fuzzing) import IJEPA

/// safetensors: the whole-file reader, and the lazy reader tensor by tensor.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    withInputFile(data, size) { FuzzEntryPoints.safeTensors(path: $0) }
    return 0
}
