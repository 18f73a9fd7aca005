import FuzzSupport
import ImageData

/// PNG decoding through the libpng wrapper, to every channel count the engine asks for. The pixel limit is
/// lowered to 4 M pixels (16 MiB decoded), so that headers near the default limit (2^28 pixels, up to 2 GiB for
/// a 16-bit interlaced file) do not trip libFuzzer's 1 GiB allocation limit: the code path is the same.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    for channels in [1, 3] {
        _ = try? PNGCodec.decode(data: input, path: "fuzz.png", channels: channels, maxPixels: 1 << 22)
    }
    return 0
}
