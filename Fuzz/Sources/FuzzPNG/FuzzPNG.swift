import FuzzSupport
import ImageData

/// PNG decoding through the libpng wrapper, to every channel count the engine asks for.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    for channels in [1, 3] {
        _ = try? PNGCodec.decode(data: input, path: "fuzz.png", channels: channels)
    }
    return 0
}
