import Foundation
import ImageData
import TensorCore

/// An image to embed: a PNG (file or bytes), or 8-bit pixels in memory. It is decoded and converted to the
/// encoder's channels only when embedded, by the same conventions as training (`PNGCodec`): alpha dropped,
/// gray replicated to RGB, RGB to gray by PIL's luma.
public struct Image: Sendable {
    enum Source: Sendable {
        case png([UInt8])
        case pixels(width: Int, height: Int, channels: Int, bytes: [UInt8])
    }
    let source: Source
    /// Names the image in errors: its path, or what the caller passed.
    public let name: String

    /// A PNG file; read now, decoded when embedded.
    public init(contentsOfFile path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageDataError(path: path, problem: "cannot be read (missing or unreadable)")
        }
        self.init(pngData: data, name: path)
    }

    /// PNG bytes.
    public init(pngData: Data, name: String = "<PNG data>") {
        source = .png([UInt8](pngData))
        self.name = name
    }

    /// Pixels (height, width, channels) interleaved, rows top to bottom; channels 1 (gray), 2 (gray + alpha),
    /// 3 (RGB) or 4 (RGBA).
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8], name: String = "<pixels>") throws {
        guard width > 0, height > 0, (1...4).contains(channels), width <= PNGCodec.maxPixels / height,
              pixels.count == width * height * channels else {
            throw ImageDataError(path: name, problem: "\(pixels.count) bytes do not make a \(width)x\(height) image of \(channels) channels (1-4)")
        }
        source = .pixels(width: width, height: height, channels: channels, bytes: pixels)
        self.name = name
    }

    /// The image's 8-bit pixels, (height, width, `channels`) interleaved, rows top to bottom; `channels` 1 (gray)
    /// or 3 (RGB), converted as for embedding.
    public func pixels(channels: Int = 3) throws -> (width: Int, height: Int, pixels: [UInt8]) {
        try decoded(channels: channels)
    }

    /// Writes the image as a PNG file (atomically); a PNG source is written as it is.
    public func writePNG(to path: String) throws {
        switch source {
        case .png(let bytes):
            try writeAtomically(Data(bytes), to: path)
        case .pixels(let w, let h, let c, let bytes):
            try PNGCodec.write(path: path, width: w, height: h, channels: c, pixels: bytes)
        }
    }

    /// The image as (height, width, `channels`) interleaved bytes, `channels` 1 or 3.
    func decoded(channels: Int) throws -> (width: Int, height: Int, pixels: [UInt8]) {
        switch source {
        case .png(let bytes):
            return try PNGCodec.decode(data: bytes, path: name, channels: channels)
        case .pixels(let w, let h, let c, let bytes):
            return (w, h, try PNGCodec.convert(bytes, channels: c, to: channels, path: name))
        }
    }
}
