import CZlib
import Foundation

/// One record of a zip archive, as its central directory describes it and its local header confirms it.
struct ZipEntry {
    let name: String
    /// 0 (stored) or 8 (deflated); other methods are refused when the archive is opened.
    let method: UInt16
    let crc32: UInt32
    let compressedSize: Int
    let uncompressedSize: Int
    /// File offset of the record's first data byte (after its local header).
    let dataOffset: Int
}

/// A read-only zip archive: the central directory is read and checked once, then records are read one at a
/// time by name with `pread`, so a 10 GB checkpoint never has to fit in memory.
///
/// Handles the end-of-central-directory record (searched in the last 64 KiB + 22 bytes), the ZIP64 locator and
/// record, ZIP64 extra fields in central and local headers, and stored (0) and deflated (8) records. Every
/// central entry is cross-checked against its local header (name, method, CRC and sizes unless deferred to a
/// data descriptor, which is then checked instead) and must lie inside the file, before the central directory,
/// without overlapping another record. Refused: encrypted records, other methods, multi-disk archives,
/// duplicate names. Errors are `TorchCheckpointError`s naming the archive.
final class ZipArchive {
    let path: String
    /// The records in central-directory order.
    private(set) var entries: [ZipEntry] = []
    private var index: [String: Int] = [:]
    private let fd: Int32
    let fileSize: Int

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw TorchCheckpointError(path: path, problem: "cannot be opened: \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)  // not fully initialised yet, so deinit will not run
            throw TorchCheckpointError(path: path, problem: "is not a regular file")
        }
        fileSize = Int(st.st_size)
        try readCentralDirectory()  // on error, deinit closes the file
    }

    deinit { close(fd) }

    func entry(_ name: String) -> ZipEntry? { index[name].map { entries[$0] } }

    func fail(_ problem: String) -> TorchCheckpointError { TorchCheckpointError(path: path, problem: problem) }

    // MARK: Reading records

    /// The uncompressed bytes of record `name` (its first `keep` bytes, when given), after checking the CRC-32
    /// of the whole record. `limit` caps the declared size: a larger record is refused before anything is read.
    /// The record streams through a 256 KiB buffer, so memory is what is kept; a deflated record that inflates
    /// past its declared size is refused as soon as it does.
    func read(_ name: String, limit: Int = Int.max, keep: Int = Int.max) throws -> [UInt8] {
        guard let e = entry(name) else { throw fail("zip: no record '\(name)'") }
        guard e.uncompressedSize <= limit else {
            throw fail("zip: record '\(name)' declares \(e.uncompressedSize) bytes, more than the \(limit) allowed")
        }
        let kept = min(keep, e.uncompressedSize)
        var out: [UInt8] = []
        out.reserveCapacity(kept)
        var crc = CZlib.crc32(0, nil, 0)
        try forEachChunk(e) { chunk in
            crc = CZlib.crc32(crc, chunk.baseAddress, uInt(chunk.count))
            if out.count < kept { out.append(contentsOf: chunk.prefix(kept - out.count)) }
        }
        let got = UInt32(truncatingIfNeeded: crc)
        guard got == e.crc32 else {
            throw fail("zip: record '\(name)' is corrupt: CRC-32 \(Self.hex(got)), the central directory says \(Self.hex(e.crc32))")
        }
        return out
    }

    /// Streams record `name`'s uncompressed bytes to `body(position, chunk)` and then checks the CRC-32 of the
    /// whole record: the caller keeps what it needs and nothing else is held.
    func stream(_ name: String, _ body: (Int, UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        guard let e = entry(name) else { throw fail("zip: no record '\(name)'") }
        var crc = CZlib.crc32(0, nil, 0)
        var position = 0
        try forEachChunk(e) { chunk in
            crc = CZlib.crc32(crc, chunk.baseAddress, uInt(chunk.count))
            try body(position, chunk)
            position += chunk.count
        }
        let got = UInt32(truncatingIfNeeded: crc)
        guard got == e.crc32 else {
            throw fail("zip: record '\(name)' is corrupt: CRC-32 \(Self.hex(got)), the central directory says \(Self.hex(e.crc32))")
        }
    }

    /// Exactly `count` bytes at `offset`, or an error saying the file ends first.
    func readBytes(at offset: Int, count: Int, what: String) throws -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= fileSize, count <= fileSize - offset else {
            throw fail("zip: \(what) (\(count) bytes at offset \(offset)) lies past the end of the file (\(fileSize) bytes): truncated")
        }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { buf in
                pread(fd, buf.baseAddress.map { $0 + done }, min(count - done, 1 << 30), off_t(offset + done))
            }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let why = n < 0 ? String(cString: strerror(errno)) : "unexpected end of file"
                throw fail("zip: cannot read \(what) at offset \(offset + done): \(why)")
            }
            done += n
        }
        return out
    }

    static let chunkSize = 1 << 18
    static let maxCentralDirectory = 256 << 20

    /// Calls `body` with the record's uncompressed bytes in order, at most `chunkSize` at a time; exactly the
    /// declared size comes out, or an error.
    private func forEachChunk(_ e: ZipEntry, _ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        if e.method == 0 {
            var at = 0
            while at < e.compressedSize {
                let chunk = try readBytes(at: e.dataOffset + at, count: min(e.compressedSize - at, Self.chunkSize), what: "record '\(e.name)'")
                try chunk.withUnsafeBufferPointer(body)
                at += chunk.count
            }
            return
        }
        var s = z_stream()
        // windowBits -15: a raw deflate stream, as zip stores it (no zlib header or trailer).
        guard inflateInit2_(&s, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw fail("zip: zlib inflateInit2 failed for record '\(e.name)'")
        }
        defer { inflateEnd(&s) }
        var output = [UInt8](repeating: 0, count: Self.chunkSize)
        var produced = 0, consumed = 0
        var ended = false
        while !ended {
            guard consumed < e.compressedSize else {
                throw fail("zip: record '\(e.name)': deflate data ends before the stream does (truncated or corrupt)")
            }
            var input = try readBytes(at: e.dataOffset + consumed, count: min(e.compressedSize - consumed, Self.chunkSize),
                                      what: "record '\(e.name)'")
            consumed += input.count
            var inputLeft = input.count
            while !ended && inputLeft > 0 {
                let (rc, n): (Int32, Int) = input.withUnsafeMutableBufferPointer { inp in
                    output.withUnsafeMutableBufferPointer { o in
                        s.next_in = inp.baseAddress.map { $0 + (inp.count - inputLeft) }
                        s.avail_in = uInt(inputLeft)
                        s.next_out = o.baseAddress
                        s.avail_out = uInt(o.count)
                        let rc = CZlib.inflate(&s, Z_NO_FLUSH)
                        return (rc, o.count - Int(s.avail_out))
                    }
                }
                inputLeft = Int(s.avail_in)
                switch rc {
                case Z_STREAM_END: ended = true
                case Z_OK: break
                case Z_BUF_ERROR where n > 0 || inputLeft == 0: break  // no progress possible: wants more input
                default:
                    let msg = s.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                    throw fail("zip: record '\(e.name)' has corrupt deflate data: \(msg)")
                }
                produced += n
                guard produced <= e.uncompressedSize else {
                    throw fail("zip: record '\(e.name)' inflates past its declared size of \(e.uncompressedSize) bytes")
                }
                try output.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<n])) }
            }
        }
        guard produced == e.uncompressedSize else {
            throw fail("zip: record '\(e.name)' inflates to \(produced) bytes, its declared size is \(e.uncompressedSize)")
        }
    }

    static func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - s.count) + s
    }

    // MARK: Central directory

    private func readCentralDirectory() throws {
        guard fileSize >= 22 else { throw fail("not a zip archive: \(fileSize) bytes, shorter than an end-of-central-directory record (truncated?)") }
        // The end record is the last 22 bytes plus a comment of at most 65535 bytes.
        let tailStart = max(0, fileSize - (65535 + 22))
        let tail = try readBytes(at: tailStart, count: fileSize - tailStart, what: "end of the archive")
        var eocd = -1
        var i = tail.count - 22
        while i >= 0 {
            if le32(tail, i) == 0x0605_4b50 && i + 22 + Int(le16(tail, i + 20)) == tail.count { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else {
            throw fail("not a zip archive, or truncated: no end-of-central-directory record in the last \(tail.count) bytes")
        }
        let eocdOffset = tailStart + eocd
        var diskNumber = Int(le16(tail, eocd + 4)), cdDisk = Int(le16(tail, eocd + 6))
        var count = Int(le16(tail, eocd + 10))
        var cdSize = Int(le32(tail, eocd + 12)), cdOffset = Int(le32(tail, eocd + 16))
        var cdEnd = eocdOffset  // the central directory must end before the records that describe it
        // ZIP64: a locator right before the end record points at the ZIP64 end record with 64-bit fields.
        if eocdOffset >= 20 {
            let loc = try readBytes(at: eocdOffset - 20, count: 20, what: "ZIP64 end-of-central-directory locator")
            if le32(loc, 0) == 0x0706_4b50 {
                let recordOffset = try int64(le64(loc, 8), "ZIP64 end record offset")
                guard recordOffset <= eocdOffset - 20 - 56 else {
                    throw fail("zip: ZIP64 locator points at offset \(recordOffset), past where a ZIP64 end record can be (truncated or corrupt)")
                }
                let rec = try readBytes(at: recordOffset, count: 56, what: "ZIP64 end-of-central-directory record")
                guard le32(rec, 0) == 0x0606_4b50 else {
                    throw fail("zip: no ZIP64 end-of-central-directory record at offset \(recordOffset) where the locator points")
                }
                diskNumber = Int(le32(rec, 16)); cdDisk = Int(le32(rec, 20))
                count = try int64(le64(rec, 32), "ZIP64 entry count")
                cdSize = try int64(le64(rec, 40), "ZIP64 central directory size")
                cdOffset = try int64(le64(rec, 48), "ZIP64 central directory offset")
                cdEnd = recordOffset
            }
        }
        guard diskNumber == 0, cdDisk == 0 else { throw fail("zip: multi-disk (spanned) archives are not supported") }
        guard cdOffset <= cdEnd, cdSize <= cdEnd - cdOffset else {
            throw fail("zip: the central directory (\(cdSize) bytes at offset \(cdOffset)) does not fit before its end record at \(cdEnd) (truncated or corrupt)")
        }
        guard cdSize <= Self.maxCentralDirectory else {  // an official ViT-H checkpoint's is about 200 KB
            throw fail("zip: a central directory of \(cdSize) bytes is more than the \(Self.maxCentralDirectory) supported")
        }
        guard count <= cdSize / 46 else {
            throw fail("zip: \(count) entries cannot fit in a central directory of \(cdSize) bytes")
        }
        let cd = try readBytes(at: cdOffset, count: cdSize, what: "central directory")
        var at = 0
        var spans: [(start: Int, end: Int, name: String)] = []
        entries.reserveCapacity(count)
        for n in 0..<count {
            guard at + 46 <= cd.count, le32(cd, at) == 0x0201_4b50 else {
                throw fail("zip: central directory entry \(n) at offset \(cdOffset + at) is malformed (bad signature or truncated)")
            }
            let flags = le16(cd, at + 8), method = le16(cd, at + 10)
            let crc = le32(cd, at + 16)
            var csize = UInt64(le32(cd, at + 20)), usize = UInt64(le32(cd, at + 24))
            let nameLen = Int(le16(cd, at + 28)), extraLen = Int(le16(cd, at + 30)), commentLen = Int(le16(cd, at + 32))
            var disk = UInt32(le16(cd, at + 34))
            var local = UInt64(le32(cd, at + 42))
            let end = at + 46 + nameLen + extraLen + commentLen
            guard end <= cd.count else { throw fail("zip: central directory entry \(n) runs past the central directory") }
            let nameBytes = Array(cd[(at + 46)..<(at + 46 + nameLen)])
            let name = String(decoding: nameBytes, as: UTF8.self)
            // ZIP64 extra field (0x0001): the 64-bit values of the fields that are saturated, in this order.
            try Self.zip64Fields(cd, from: at + 46 + nameLen, count: extraLen) { x, xEnd in
                var p = x
                func next64() throws -> UInt64 {
                    guard p + 8 <= xEnd else { throw self.fail("zip: record '\(name)': ZIP64 extra field too short") }
                    defer { p += 8 }
                    return self.le64(cd, p)
                }
                if usize == 0xFFFF_FFFF { usize = try next64() }
                if csize == 0xFFFF_FFFF { csize = try next64() }
                if local == 0xFFFF_FFFF { local = try next64() }
                if disk == 0xFFFF { guard p + 4 <= xEnd else { throw self.fail("zip: record '\(name)': ZIP64 extra field too short") }; disk = self.le32(cd, p) }
            }
            at = end
            guard disk == 0 else { throw fail("zip: record '\(name)' is on disk \(disk): multi-disk archives are not supported") }
            guard flags & 0x41 == 0 else { throw fail("zip: record '\(name)' is encrypted; encrypted archives are not supported") }
            guard method == 0 || method == 8 else {
                throw fail("zip: record '\(name)' uses compression method \(method); only stored (0) and deflated (8) are supported")
            }
            guard index[name] == nil else { throw fail("zip: duplicate record name '\(name)'") }
            let c = try int64(csize, "'\(name)' compressed size"), u = try int64(usize, "'\(name)' size")
            let l = try int64(local, "'\(name)' local header offset")
            guard method != 0 || c == u else {
                throw fail("zip: stored record '\(name)' has compressed size \(c) but size \(u)")
            }
            let dataOffset = try checkLocalHeader(name: name, nameBytes: nameBytes, at: l, flags: flags, method: method,
                                                  crc: crc, csize: c, usize: u, cdOffset: cdOffset)
            index[name] = entries.count
            entries.append(ZipEntry(name: name, method: method, crc32: crc, compressedSize: c, uncompressedSize: u,
                                    dataOffset: dataOffset))
            spans.append((l, dataOffset + c, name))
        }
        spans.sort { $0.start < $1.start }
        for (a, b) in zip(spans, spans.dropFirst()) where b.start < a.end {
            throw fail("zip: records '\(a.name)' and '\(b.name)' overlap")
        }
    }

    /// Checks the local header of a central entry and returns where its data starts.
    private func checkLocalHeader(name: String, nameBytes: [UInt8], at offset: Int, flags: UInt16, method: UInt16,
                                  crc: UInt32, csize: Int, usize: Int, cdOffset: Int) throws -> Int {
        let h = try readBytes(at: offset, count: 30, what: "local header of '\(name)'")
        guard le32(h, 0) == 0x0403_4b50 else {
            throw fail("zip: no local header for '\(name)' at offset \(offset) where the central directory points")
        }
        let lflags = le16(h, 6), lmethod = le16(h, 8), lcrc = le32(h, 14)
        var lcsize = UInt64(le32(h, 18)), lusize = UInt64(le32(h, 22))
        let nameLen = Int(le16(h, 26)), extraLen = Int(le16(h, 28))
        let rest = try readBytes(at: offset + 30, count: nameLen + extraLen, what: "local header of '\(name)'")
        guard Array(rest[0..<nameLen]) == nameBytes else {
            throw fail("zip: the local header at offset \(offset) names '\(String(decoding: rest[0..<nameLen], as: UTF8.self))', the central directory '\(name)'")
        }
        guard lmethod == method else {
            throw fail("zip: record '\(name)': local header says method \(lmethod), the central directory \(method)")
        }
        guard lflags & 0x41 == 0 else { throw fail("zip: record '\(name)' is encrypted; encrypted archives are not supported") }
        // In a local header the ZIP64 field holds both sizes whenever either is saturated.
        try Self.zip64Fields(rest, from: nameLen, count: extraLen) { x, xEnd in
            guard lusize == 0xFFFF_FFFF || lcsize == 0xFFFF_FFFF else { return }
            guard x + 16 <= xEnd else { throw self.fail("zip: record '\(name)': local ZIP64 extra field too short") }
            (lusize, lcsize) = (self.le64(rest, x), self.le64(rest, x + 8))
        }
        let dataOffset = offset + 30 + nameLen + extraLen
        guard dataOffset <= cdOffset, csize <= cdOffset - dataOffset else {
            throw fail("zip: record '\(name)' (\(csize) bytes at offset \(dataOffset)) runs past the start of the central directory at \(cdOffset) (truncated or corrupt)")
        }
        let deferred = flags & 0x08 != 0 || lflags & 0x08 != 0
        if !deferred || lcrc != 0 || lcsize != 0 || lusize != 0 {
            guard lcrc == crc, lcsize == UInt64(csize), lusize == UInt64(usize) else {
                throw fail("zip: record '\(name)': local header (CRC \(Self.hex(lcrc)), \(lcsize) -> \(lusize) bytes) disagrees with the central directory (CRC \(Self.hex(crc)), \(csize) -> \(usize) bytes)")
            }
        } else {
            try checkDataDescriptor(name: name, at: dataOffset + csize, crc: crc, csize: csize, usize: usize, limit: cdOffset)
        }
        return dataOffset
    }

    /// The data descriptor after a record whose local header deferred its CRC and sizes: optional signature, CRC,
    /// then 32-bit or (ZIP64) 64-bit sizes; they must agree with the central directory.
    private func checkDataDescriptor(name: String, at offset: Int, crc: UInt32, csize: Int, usize: Int, limit: Int) throws {
        let d = try readBytes(at: offset, count: max(0, min(24, limit - offset)), what: "data descriptor of '\(name)'")
        let base = d.count >= 4 && le32(d, 0) == 0x0807_4b50 ? 4 : 0
        guard d.count >= base + 12, le32(d, base) == crc else {
            throw fail("zip: record '\(name)': its data descriptor disagrees with the central directory (CRC \(Self.hex(crc))) or is missing")
        }
        let small = UInt64(le32(d, base + 4)) == UInt64(csize) && UInt64(le32(d, base + 8)) == UInt64(usize)
        let large = d.count >= base + 20 && le64(d, base + 4) == UInt64(csize) && le64(d, base + 12) == UInt64(usize)
        guard small || large else {
            throw fail("zip: record '\(name)': its data descriptor's sizes disagree with the central directory (\(csize) -> \(usize) bytes)")
        }
    }

    /// Calls `body(start, end)` with the ZIP64 extra field (id 0x0001) among the extra fields at `from`.
    private static func zip64Fields(_ b: [UInt8], from: Int, count: Int, _ body: (Int, Int) throws -> Void) throws {
        var p = from
        let end = from + count
        while p + 4 <= end {
            let id = UInt16(b[p]) | UInt16(b[p + 1]) << 8, size = Int(b[p + 2]) | Int(b[p + 3]) << 8
            guard p + 4 + size <= end else { return }  // a malformed trailing field is padding to us
            if id == 0x0001 { try body(p + 4, p + 4 + size); return }
            p += 4 + size
        }
    }

    private func int64(_ v: UInt64, _ what: String) throws -> Int {
        guard v <= UInt64(Int.max) else { throw fail("zip: \(what) \(v) is out of range") }
        return Int(v)
    }

    private func le16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }
    private func le32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }
    private func le64(_ b: [UInt8], _ i: Int) -> UInt64 { UInt64(le32(b, i)) | UInt64(le32(b, i + 4)) << 32 }
}
