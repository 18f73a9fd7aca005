import CLibPNG
import Foundation

/// PNG files through libpng's simplified `png_image` API (libpng does the parsing, colour conversion, gamma,
/// de-interlacing and error recovery; its internal longjmp never crosses a Swift frame).
///
/// Decoding conventions:
/// - Every PNG is read as 8-bit: gray, gray+alpha, RGB, RGBA, palette (with or without tRNS), 1/2/4/8/16-bit,
///   interlaced or not.
/// - 16-bit files without gAMA/sRGB chunks are taken as sRGB-encoded (`PNG_IMAGE_FLAG_16BIT_sRGB`), so they map
///   to 8 bits by scaling, as viewers and PIL show them; a 16-bit file that declares gamma 1.0 (linear, as libpng
///   itself writes 16-bit data) is gamma-encoded (libpng uses gamma 2.2 for this). 16-bit interlaced files take
///   another route around a libpng bug (see `decode(data:path:channels:)`): dark levels may differ by 1.
/// - **Alpha is dropped**, not composited: the colour values are kept as they are, as PIL's `convert("RGB")`
///   (torchvision's ImageFolder loader) does.
/// - channels 3 from a gray file replicates the gray value; channels 1 from a colour file uses PIL's luma
///   `L = R 299/1000 + G 587/1000 + B 114/1000` (its rounding: `(19595 R + 38470 G + 7471 B + 2^15) >> 16`).
package enum PNGCodec {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    /// Largest image decoded by default (pixels, 16384 x 16384): a larger header is refused before any
    /// allocation (the decoder's buffer is 4 bytes per pixel). `decode(..., maxPixels:)` raises it.
    package static let maxPixels = 1 << 28

    /// Decodes the PNG file at `path` to 8-bit pixels, (height, width, channels) interleaved; channels 1 or 3.
    package static func decode(path: String, channels: Int, maxPixels: Int = maxPixels) throws -> (width: Int, height: Int, pixels: [UInt8]) {
        try decode(data: FileIO.readAll(path), path: path, channels: channels, maxPixels: maxPixels)
    }

    /// Decodes PNG bytes; `path` only names the source in errors.
    package static func decode(data: [UInt8], path: String, channels: Int,
                              maxPixels: Int = maxPixels) throws -> (width: Int, height: Int, pixels: [UInt8]) {
        guard channels == 1 || channels == 3 else {
            throw ImageDataError(path: path, problem: "cannot decode to \(channels) channels (1 or 3)")
        }
        guard !data.isEmpty else { throw ImageDataError(path: path, problem: "empty file (0 bytes), not a PNG") }
        guard data.count >= 8, Array(data[0..<8]) == signature else {
            throw ImageDataError(path: path, problem: "not a PNG file (no PNG signature in its first bytes)")
        }
        try checkChunkLengths(data, path: path)
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        // libpng keeps a pointer to the bytes from begin_read to finish_read: both happen inside this closure.
        let (w, h, color, raw): (Int, Int, Bool, [UInt8]) = try data.withUnsafeBytes { bytes in
            guard png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count) != 0 else {
                throw ImageDataError(path: path, problem: "corrupt PNG: \(message(&image))")
            }
            let w = Int(image.width), h = Int(image.height)
            guard w > 0, h > 0, w <= maxPixels, h <= maxPixels, w * h <= maxPixels else {
                throw ImageDataError(path: path, problem: "PNG of \(w)x\(h) pixels is larger than the \(maxPixels) pixels decoded (maxPixels)")
            }
            let color = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
            let spp = color ? 4 : 2
            image.format = color ? UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA) : UInt32(PNG_FORMAT_FLAG_ALPHA)
            image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
            // IHDR is the first chunk (begin_read checked it): bit depth at byte 24, interlace method at byte 28.
            let sixteenBitInterlaced = bytes.count > 28 && bytes[24] == 16 && bytes[28] == 1
            if sixteenBitInterlaced {
                // libpng 1.6.39's direct 16-to-8-bit path garbles the rows of Adam7-interlaced files (verified:
                // passes land in the wrong rows); its 16-bit linear output is right, so read that and encode it
                // to 8 bits here with the curve libpng itself uses (gamma 2.2). The darkest levels may differ
                // by 1 from a non-interlaced copy (16-bit linear has few codes there).
                image.format |= UInt32(PNG_FORMAT_FLAG_LINEAR)
                var lin = [UInt16](repeating: 0, count: w * h * spp)
                let ok = lin.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
                guard ok != 0 else {
                    throw ImageDataError(path: path, problem: "corrupt or truncated PNG: \(message(&image))")
                }
                var raw = [UInt8](repeating: 0, count: w * h * spp)
                for p in 0..<w * h {
                    let a = Double(lin[p * spp + spp - 1])
                    raw[p * spp + spp - 1] = UInt8((a / 257).rounded())
                    for k in 0..<spp - 1 {
                        // Linear output is premultiplied by alpha.
                        let v = a > 0 ? min(1, Double(lin[p * spp + k]) / a) : 0
                        raw[p * spp + k] = UInt8((255 * pow(v, 1 / 2.2)).rounded())
                    }
                }
                return (w, h, color, raw)
            }
            var raw = [UInt8](repeating: 0, count: w * h * spp)
            let ok = raw.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            guard ok != 0 else {
                throw ImageDataError(path: path, problem: "corrupt or truncated PNG: \(message(&image))")
            }
            return (w, h, color, raw)
        }
        return (w, h, try convert(raw, channels: color ? 4 : 2, to: channels, path: path))
    }

    /// Every chunk must fit in the bytes that follow its header. libpng allocates a chunk's declared length
    /// before reading it (FuzzPNG: an sPLT chunk of 1.28 GB in a 113-byte file), and the simplified API gives
    /// no way to set its chunk allocation limit; a valid file's chunks always fit, so this refuses only broken
    /// ones. A file that ends before IEND is left to libpng (it tolerates a missing IEND).
    static func checkChunkLengths(_ data: [UInt8], path: String) throws {
        var offset = 8
        while offset + 8 <= data.count {
            let length = Int(data[offset]) << 24 | Int(data[offset + 1]) << 16 | Int(data[offset + 2]) << 8 | Int(data[offset + 3])
            let type = String(data[offset + 4..<offset + 8].map { (0x20...0x7E).contains($0) ? Character(UnicodeScalar($0)) : "?" })
            guard length <= data.count - offset - 12 else {
                throw ImageDataError(path: path, problem: "corrupt or truncated PNG: chunk '\(type)' at byte \(offset) declares \(length) bytes, only \(max(data.count - offset - 12, 0)) follow")
            }
            if type == "IEND" { return }
            offset += 12 + length
        }
    }

    /// Converts interleaved 8-bit pixels with `from` channels (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) to 1 (gray)
    /// or 3 (RGB) channels by the decoding conventions above: alpha dropped, gray replicated, PIL's luma for gray
    /// from colour. `path` names the source in errors.
    package static func convert(_ src: [UInt8], channels from: Int, to channels: Int, path: String = "<memory>") throws -> [UInt8] {
        guard (1...4).contains(from), channels == 1 || channels == 3, src.count % from == 0 else {
            throw ImageDataError(path: path, problem: "cannot convert \(src.count) bytes of \(from)-channel pixels to \(channels) channels")
        }
        let n = src.count / from
        let color = from >= 3
        if from == channels { return src }
        var out = [UInt8](repeating: 0, count: n * channels)
        src.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                switch (color, channels) {
                case (false, 1):
                    for p in 0..<n { dst[p] = src[from * p] }
                case (false, _):
                    for p in 0..<n { let g = src[from * p]; dst[3 * p] = g; dst[3 * p + 1] = g; dst[3 * p + 2] = g }
                case (true, 1):
                    for p in 0..<n {
                        let r = UInt32(src[from * p]), g = UInt32(src[from * p + 1]), b = UInt32(src[from * p + 2])
                        dst[p] = UInt8((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16)
                    }
                case (true, _):
                    for p in 0..<n { dst[3 * p] = src[from * p]; dst[3 * p + 1] = src[from * p + 1]; dst[3 * p + 2] = src[from * p + 2] }
                }
            }
        }
        return out
    }

    /// Encodes 8-bit gray (channels 1), gray+alpha (2), RGB (3) or RGBA (4) pixels, (height, width, channels)
    /// interleaved, as PNG bytes (libpng adds an sRGB chunk).
    package static func encode(width: Int, height: Int, channels: Int, pixels: [UInt8], path: String = "<memory>") throws -> [UInt8] {
        guard (1...4).contains(channels) else {
            throw ImageDataError(path: path, problem: "cannot write \(channels) channels as PNG (1, 2, 3 or 4)")
        }
        guard width > 0, height > 0, width <= Int(Int32.max) / 4 / channels, height <= Int(Int32.max) else {
            throw ImageDataError(path: path, problem: "cannot write a \(width)x\(height) PNG")
        }
        guard pixels.count == width * height * channels else {
            throw ImageDataError(path: path, problem: "\(pixels.count) bytes for a \(width)x\(height)x\(channels) image (\(width * height * channels) expected)")
        }
        let formats: [UInt32] = [0, UInt32(PNG_FORMAT_FLAG_ALPHA), UInt32(PNG_FORMAT_FLAG_COLOR),
                                 UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)]
        func fresh() -> png_image {
            var image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            image.width = UInt32(width)
            image.height = UInt32(height)
            image.format = formats[channels - 1]
            return image
        }
        return try pixels.withUnsafeBytes { px in
            var image = fresh()
            var size: png_alloc_size_t = 0
            // First call with no buffer: libpng reports the encoded size.
            guard png_image_write_to_memory(&image, nil, &size, 0, px.baseAddress, 0, nil) != 0, size > 0 else {
                let m = message(&image)
                png_image_free(&image)
                throw ImageDataError(path: path, problem: "PNG encoding failed: \(m)")
            }
            png_image_free(&image)
            var out = [UInt8](repeating: 0, count: Int(size))
            image = fresh()
            let ok = out.withUnsafeMutableBytes {
                png_image_write_to_memory(&image, $0.baseAddress, &size, 0, px.baseAddress, 0, nil)
            }
            defer { png_image_free(&image) }
            guard ok != 0 else { throw ImageDataError(path: path, problem: "PNG encoding failed: \(message(&image))") }
            out.removeLast(out.count - Int(size))
            return out
        }
    }

    /// Writes 8-bit gray (1), gray+alpha (2), RGB (3) or RGBA (4) pixels as a PNG file, atomically (a temporary
    /// file in the same folder, then a rename).
    package static func write(path: String, width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        let bytes = try encode(width: width, height: height, channels: channels, pixels: pixels, path: path)
        try bytes.withUnsafeBytes { try FileIO.writeAtomically($0, to: path) }
    }

    /// libpng's error or warning text of a png_image.
    static func message(_ image: inout png_image) -> String {
        let s = withUnsafeBytes(of: &image.message) { raw -> String in
            let chars = raw.bindMemory(to: CChar.self)
            let len = chars.firstIndex(of: 0) ?? chars.count
            return String(decoding: raw[0..<len], as: UTF8.self)
        }
        return s.isEmpty ? "libpng reported no message" : s
    }
}
