import FuzzSupport
@_spi(Fuzzing) import IJEPA

/// PNG decoding through the libpng wrapper, to every channel count the engine asks for. The pixel limit is
/// lowered to 4 M pixels (16 MiB decoded), so that headers near the default limit (2^28 pixels, up to 2 GiB for
/// a 16-bit interlaced file) do not trip libFuzzer's 1 GiB allocation limit: the code path is the same.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzEntryPoints.png(bytes(data, size))
    return 0
}
