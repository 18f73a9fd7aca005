import CLibPNG
import CZlib
import Foundation
import XCTest
@testable import ImageData

/// Builds PNG files byte by byte (chunks, zlib, CRC), so every colour type, bit depth and interlacing can be
/// tested without other tools: png_image_write only writes some of them.
enum RawPNG {
    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        let crc = body.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
        return be32(UInt32(data.count)) + body + be32(crc)
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func zlibCompress(_ d: [UInt8]) -> [UInt8] {
        var len = compressBound(uLong(d.count))
        var out = [UInt8](repeating: 0, count: Int(len))
        let rc = compress(&out, &len, d, uLong(d.count))
        precondition(rc == Z_OK)
        return Array(out.prefix(Int(len)))
    }

    /// samples(x, y) gives the samples of one pixel (1 for gray / palette index, 2 GA, 3 RGB, 4 RGBA), each
    /// below 2^bitDepth.
    static func make(
        width: Int, height: Int, bitDepth: Int, colorType: UInt8, interlace: Bool = false,
        palette: [[UInt8]]? = nil, trns: [UInt8]? = nil, gamma: UInt32? = nil, samples: (Int, Int) -> [Int]
    ) -> [UInt8] {
        let spp = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][Int(colorType)]!
        func row(_ xs: [Int], _ y: Int) -> [UInt8] {
            var bits: [UInt8] = [0]  // filter type None
            var acc = 0, nbits = 0
            for x in xs {
                for s in samples(x, y) {
                    precondition(s >= 0 && s < 1 << bitDepth && samples(x, y).count == spp)
                    if bitDepth == 16 { bits += [UInt8(s >> 8), UInt8(s & 0xFF)]; continue }
                    acc = acc << bitDepth | s
                    nbits += bitDepth
                    if nbits == 8 { bits.append(UInt8(acc)); acc = 0; nbits = 0 }
                }
            }
            if nbits > 0 { bits.append(UInt8(acc << (8 - nbits))) }
            return bits
        }
        var raw: [UInt8] = []
        if interlace {
            // Adam7 passes: (x0, y0, dx, dy).
            for (x0, y0, dx, dy) in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)] {
                let xs = Array(stride(from: x0, to: width, by: dx))
                if xs.isEmpty { continue }
                for y in stride(from: y0, to: height, by: dy) { raw += row(xs, y) }
            }
        } else {
            for y in 0..<height { raw += row(Array(0..<width), y) }
        }
        var png: [UInt8] = PNGCodec.signature
        png += chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [UInt8(bitDepth), colorType, 0, 0, interlace ? 1 : 0])
        if let gamma { png += chunk("gAMA", be32(gamma)) }
        if let palette { png += chunk("PLTE", palette.flatMap { $0 }) }
        if let trns { png += chunk("tRNS", trns) }
        png += chunk("IDAT", zlibCompress(raw))
        png += chunk("IEND", [])
        return png
    }
}

final class PNGTests: TempDirTestCase {
    /// Equal sizes, every value within `tolerance`.
    func assertClose(_ a: [UInt8], _ b: [UInt8], tolerance: Int, _ what: String, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, line: line)
        let worst = zip(a, b).map { abs(Int($0) - Int($1)) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): \(a) vs \(b)", line: line)
    }

    func testWriteDecodeRoundTrip() throws {
        let (w, h) = (7, 5)
        for c in [1, 3] {
            let px = testPixels(w * h * c, seed: UInt32(c))
            let p = tmp + "/rt\(c).png"
            try PNGCodec.write(path: p, width: w, height: h, channels: c, pixels: px)
            let d = try PNGCodec.decode(path: p, channels: c)
            XCTAssertEqual(d.width, w)
            XCTAssertEqual(d.height, h)
            XCTAssertEqual(d.pixels, px, "channels \(c)")
        }
        // RGBA: decoding drops alpha and keeps the colour values as they are (no compositing).
        let rgba = testPixels(w * h * 4, seed: 9)
        try PNGCodec.write(path: tmp + "/rgba.png", width: w, height: h, channels: 4, pixels: rgba)
        let d = try PNGCodec.decode(path: tmp + "/rgba.png", channels: 3)
        XCTAssertEqual(d.pixels, (0..<w * h).flatMap { rgba[4 * $0..<4 * $0 + 3] })
        // No temporary file is left next to the written ones.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp).sorted(), ["rgba.png", "rt1.png", "rt3.png"])
    }

    func testChannelConversion() throws {
        let rgb: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 30]
        let png = try PNGCodec.encode(width: 2, height: 2, channels: 3, pixels: rgb)
        let gray = try PNGCodec.decode(data: png, path: "x.png", channels: 1)
        // PIL's luma with its rounding.
        let expected = stride(from: 0, to: 12, by: 3).map { (i: Int) -> UInt8 in
            let r: Int = 19595 * Int(rgb[i]), g: Int = 38470 * Int(rgb[i + 1]), b: Int = 7471 * Int(rgb[i + 2])
            return UInt8((r + g + b + 32768) >> 16)
        }
        XCTAssertEqual(gray.pixels, expected)
        XCTAssertEqual(gray.pixels, [76, 150, 29, 124])
        let g: [UInt8] = [0, 100, 200, 255]
        let gpng = try PNGCodec.encode(width: 4, height: 1, channels: 1, pixels: g)
        XCTAssertEqual(try PNGCodec.decode(data: gpng, path: "g.png", channels: 3).pixels, g.flatMap { [$0, $0, $0] })
        assertDataError(path: "g.png", contains: ["4 channels"]) { try PNGCodec.decode(data: gpng, path: "g.png", channels: 4) }
    }

    /// Every colour type and bit depth, built by hand, interlaced and not.
    func testAllColorTypesAndDepths() throws {
        let (w, h) = (11, 6)  // not a multiple of 8: partial bytes and partial Adam7 passes
        func v(_ x: Int, _ y: Int, _ k: Int, _ bits: Int) -> Int { (x * 7 + y * 13 + k * 29 + x * y) % (1 << bits) }
        func to8(_ s: Int, _ bits: Int) -> UInt8 { UInt8(s * 255 / ((1 << bits) - 1)) }
        for interlace in [false, true] {
            for bits in [1, 2, 4, 8, 16] {  // gray
                let png = RawPNG.make(width: w, height: h, bitDepth: bits, colorType: 0, interlace: interlace) { x, y in
                    [bits == 16 ? v(x, y, 0, 8) * 257 : v(x, y, 0, bits)]
                }
                let d = try PNGCodec.decode(data: png, path: "g\(bits).png", channels: 1)
                XCTAssertEqual([d.width, d.height], [w, h])
                let want = (0..<h).flatMap { y in (0..<w).map { x in bits == 16 ? UInt8(v(x, y, 0, 8)) : to8(v(x, y, 0, bits), bits) } }
                assertClose(d.pixels, want, tolerance: bits == 16 && interlace ? 1 : 0, "gray \(bits)-bit interlace \(interlace)")
            }
            for bits in [8, 16] {
                for (ct, spp) in [(UInt8(2), 3), (UInt8(4), 2), (UInt8(6), 4)] {  // RGB, GA, RGBA
                    let png = RawPNG.make(width: w, height: h, bitDepth: bits, colorType: ct, interlace: interlace) { x, y in
                        (0..<spp).map { k in
                            // Fully opaque alpha: with 16-bit input libpng goes through premultiplied linear values.
                            let s = (spp == 2 && k == 1) || (spp == 4 && k == 3) ? 255 : v(x, y, k, 8)
                            return bits == 16 ? s * 257 : s
                        }
                    }
                    let colorOut = spp >= 3 ? 3 : 1
                    let d = try PNGCodec.decode(data: png, path: "c.png", channels: colorOut)
                    let want = (0..<h).flatMap { y in (0..<w).flatMap { x in (0..<colorOut).map { UInt8(v(x, y, $0, 8)) } } }
                    assertClose(d.pixels, want, tolerance: bits == 16 && interlace ? 1 : 0, "color type \(ct) \(bits)-bit interlace \(interlace)")
                }
            }
            // Palette, 4-bit and 8-bit, with transparency for some entries (alpha dropped, colour kept).
            let palette: [[UInt8]] = (0..<16).map { (i: Int) -> [UInt8] in
                let r = UInt8(i * 16), g = UInt8(255 - i * 8), b = UInt8(i * i)
                return [r, g, b]
            }
            for bits in [4, 8] {
                let png = RawPNG.make(width: w, height: h, bitDepth: bits, colorType: 3, interlace: interlace,
                                      palette: palette, trns: [0, 128, 255, 7]) { x, y in [v(x, y, 0, 4)] }
                let d = try PNGCodec.decode(data: png, path: "p.png", channels: 3)
                let want = (0..<h).flatMap { y in (0..<w).flatMap { x in palette[v(x, y, 0, 4)] } }
                XCTAssertEqual(d.pixels, want, "palette \(bits)-bit interlace \(interlace)")
            }
        }
    }

    /// 16-bit files declaring gamma 1.0 (linear), as libpng's own 16-bit writer makes them, are converted to sRGB.
    func testLinear16BitIsConvertedToSRGB() throws {
        // libpng encodes linear values for 8-bit output with gamma 2.2 (its sRGB approximation).
        func srgb(_ l: Double) -> Double { pow(l, 1 / 2.2) }
        let levels: [UInt16] = [0, 1000, 10000, 14025, 30000, 50000, 65535]
        // Through png_image_write with a linear format (the write API the brief names).
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(levels.count)
        image.height = 1
        image.format = UInt32(PNG_FORMAT_FLAG_LINEAR)
        var size: png_alloc_size_t = 0
        XCTAssertNotEqual(png_image_write_to_memory(&image, nil, &size, 0, levels, 0, nil), 0)
        png_image_free(&image)
        var buf = [UInt8](repeating: 0, count: Int(size))
        image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(levels.count)
        image.height = 1
        image.format = UInt32(PNG_FORMAT_FLAG_LINEAR)
        XCTAssertNotEqual(png_image_write_to_memory(&image, &buf, &size, 0, levels, 0, nil), 0)
        png_image_free(&image)
        XCTAssertEqual(buf[24], 16, "a 16-bit file")  // IHDR bit depth
        let d = try PNGCodec.decode(data: Array(buf.prefix(Int(size))), path: "lin.png", channels: 1)
        for (i, l) in levels.enumerated() {
            let want = srgb(Double(l) / 65535) * 255
            XCTAssertLessThanOrEqual(abs(Double(d.pixels[i]) - want), 1.0, "linear \(l): got \(d.pixels[i]), sRGB \(want)")
        }
        // The same through a hand-made file with gAMA 100000 (1.0).
        let png = RawPNG.make(width: levels.count, height: 1, bitDepth: 16, colorType: 0, gamma: 100_000) { x, _ in [Int(levels[x])] }
        XCTAssertEqual(try PNGCodec.decode(data: png, path: "lin2.png", channels: 1).pixels, d.pixels)
        // And interlaced (libpng's 16-bit linear route): within 1.
        let pngI = RawPNG.make(width: levels.count, height: 1, bitDepth: 16, colorType: 0, interlace: true, gamma: 100_000) { x, _ in [Int(levels[x])] }
        assertClose(try PNGCodec.decode(data: pngI, path: "lin3.png", channels: 1).pixels, d.pixels, tolerance: 1, "interlaced linear")
    }

    /// Files from png_image_write in other formats: gray+alpha, RGBA, colour-mapped.
    func testSimplifiedWriterFormats() throws {
        func write(_ format: UInt32, _ w: Int, _ buffer: [UInt8], colormap: [UInt8]? = nil, entries: Int = 0) -> [UInt8] {
            var image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            image.width = UInt32(w)
            image.height = 1
            image.format = format
            image.colormap_entries = UInt32(entries)
            var size: png_alloc_size_t = 0
            let cm = colormap ?? []
            XCTAssertNotEqual(png_image_write_to_memory(&image, nil, &size, 0, buffer, 0, colormap == nil ? nil : cm), 0)
            png_image_free(&image)
            var out = [UInt8](repeating: 0, count: Int(size))
            image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            image.width = UInt32(w)
            image.height = 1
            image.format = format
            image.colormap_entries = UInt32(entries)
            XCTAssertNotEqual(png_image_write_to_memory(&image, &out, &size, 0, buffer, 0, colormap == nil ? nil : cm), 0)
            png_image_free(&image)
            return Array(out.prefix(Int(size)))
        }
        let ga = write(UInt32(PNG_FORMAT_FLAG_ALPHA), 3, [10, 255, 100, 0, 250, 77])
        XCTAssertEqual(ga[25], 4, "gray+alpha colour type")
        XCTAssertEqual(try PNGCodec.decode(data: ga, path: "ga.png", channels: 1).pixels, [10, 100, 250])
        let rgba = write(UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA), 2, [1, 2, 3, 255, 40, 50, 60, 9])
        XCTAssertEqual(rgba[25], 6)
        XCTAssertEqual(try PNGCodec.decode(data: rgba, path: "rgba.png", channels: 3).pixels, [1, 2, 3, 40, 50, 60])
        let colormap: [UInt8] = [255, 0, 0, 0, 128, 0, 7, 8, 9]
        let pal = write(UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_COLORMAP), 4, [2, 0, 1, 2], colormap: colormap, entries: 3)
        XCTAssertEqual(pal[25], 3, "palette colour type")
        XCTAssertEqual(try PNGCodec.decode(data: pal, path: "pal.png", channels: 3).pixels,
                       [7, 8, 9, 255, 0, 0, 0, 128, 0, 7, 8, 9])
    }

    func testBadFilesNameTheFile() throws {
        let good = try PNGCodec.encode(width: 16, height: 16, channels: 3, pixels: testPixels(16 * 16 * 3))
        let cases: [(String, [UInt8], [String])] = [
            ("truncated.png", Array(good.prefix(good.count / 2)), ["corrupt"]),
            ("header-only.png", Array(good.prefix(20)), ["corrupt"]),
            ("garbage.png", testPixels(500, seed: 3), ["not a png"]),
            ("empty.png", [], ["empty"]),
            ("signature-only.png", PNGCodec.signature, ["corrupt"]),
            ("no-iend.png", Array(good.prefix(good.count - 12)), []),
        ]
        for (name, bytes, words) in cases {
            let p = tmp + "/" + name
            try writeFile(p, bytes)
            if name == "no-iend.png" {
                // libpng stops at the end of the image data; a missing IEND alone is not an error for it.
                XCTAssertNoThrow(try PNGCodec.decode(path: p, channels: 3))
                continue
            }
            assertDataError(path: p, contains: words) { try PNGCodec.decode(path: p, channels: 3) }
        }
        // A header declaring 100000 x 100000 pixels (40 GB decoded) before 20 bytes of data: refused from the
        // header, before the pixel buffer is allocated; the limit is the caller's to raise.
        let huge = tmp + "/huge.png"
        try writeFile(huge, PNGCodec.signature + RawPNG.chunk("IHDR", RawPNG.be32(100_000) + RawPNG.be32(100_000) + [8, 0, 0, 0, 0])
                          + RawPNG.chunk("IDAT", RawPNG.zlibCompress([0, 0, 0, 0])) + RawPNG.chunk("IEND", []))
        assertDataError(path: huge, contains: ["100000x100000", "268435456 pixels", "maxPixels"]) {
            try PNGCodec.decode(path: huge, channels: 1)
        }
        assertDataError(path: tmp + "/small.png", contains: ["16x16", "255 pixels"]) {
            try writeFile(self.tmp + "/small.png", good)
            return try PNGCodec.decode(path: self.tmp + "/small.png", channels: 3, maxPixels: 255)
        }
        // A chunk declaring more bytes than the file has (FuzzPNG: libpng allocated an sPLT chunk's 1.28 GB):
        // refused before libpng sees it.
        let liar = tmp + "/liar.png"
        try writeFile(liar, Array(good.prefix(33)) + RawPNG.be32(1_280_000_000) + Array("sPLT".utf8) + [1, 2, 3, 4])
        assertDataError(path: liar, contains: ["chunk 'sPLT'", "1280000000 bytes"]) { try PNGCodec.decode(path: liar, channels: 1) }
        // A flipped bit inside the compressed data: CRC or zlib error, never a crash.
        var bad = good
        bad[bad.count / 2] ^= 0x10
        let p = tmp + "/bitflip.png"
        try writeFile(p, bad)
        assertDataError(path: p, contains: ["corrupt"]) { try PNGCodec.decode(path: p, channels: 1) }
        assertDataError(path: tmp + "/missing.png", contains: ["no such file"]) { try PNGCodec.decode(path: self.tmp + "/missing.png", channels: 1) }
        assertDataError(path: tmp, contains: ["folder"]) { try PNGCodec.decode(path: self.tmp, channels: 1) }
        // Writing: wrong byte count, bad channel count, a folder that does not exist.
        assertDataError(path: tmp + "/w.png", contains: ["bytes"]) {
            try PNGCodec.write(path: self.tmp + "/w.png", width: 2, height: 2, channels: 3, pixels: [1, 2, 3])
        }
        assertDataError(path: tmp + "/w.png", contains: ["5 channels"]) {
            try PNGCodec.write(path: self.tmp + "/w.png", width: 1, height: 1, channels: 5, pixels: [1, 2, 3, 4, 5])
        }
        assertDataError(path: tmp + "/no/dir/w.png", contains: ["cannot create"]) {
            try PNGCodec.write(path: self.tmp + "/no/dir/w.png", width: 1, height: 1, channels: 1, pixels: [1])
        }
    }

    func testAtomicWriteReplacesFile() throws {
        let p = tmp + "/a.png"
        try PNGCodec.write(path: p, width: 1, height: 1, channels: 1, pixels: [5])
        try PNGCodec.write(path: p, width: 2, height: 1, channels: 1, pixels: [6, 7])
        XCTAssertEqual(try PNGCodec.decode(path: p, channels: 1).pixels, [6, 7])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp), ["a.png"])
    }
}
