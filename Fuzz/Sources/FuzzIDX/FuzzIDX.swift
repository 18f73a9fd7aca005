import FuzzSupport
@_spi(Fuzzing) import IJEPA

/// IDX image and label files, plain or gzip (zlib's gzread reads both), with the default size limit.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    withInputFile(data, size) { FuzzEntryPoints.idx(path: $0) }
    return 0
}
