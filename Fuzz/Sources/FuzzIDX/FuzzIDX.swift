import FuzzSupport
import ImageData

/// IDX image and label files, plain or gzip (zlib's gzread reads both), with the default size limit.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    withInputFile(data, size) { path in
        _ = try? IDX.readImages(path: path)
        _ = try? IDX.readLabels(path: path)
    }
    return 0
}
