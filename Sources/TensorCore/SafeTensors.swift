import Foundation

/// Errors reading or writing a safetensors file; each names the file and what is wrong with it.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String
    public var description: String { "\(path): \(problem)" }
    public init(path: String, problem: String) { (self.path, self.problem) = (path, problem) }
}

/// The safetensors format (huggingface/safetensors): an 8-byte little-endian header size, a JSON header
/// `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {string: string}}`, then the raw
/// little-endian data. Float32 tensors are read and written; F64, F16 and BF16 are converted to Float32 on
/// read, and integer tensors (I64, I32) too, for index masks.
public enum SafeTensors {
    /// Reads every tensor of a file. Throws on a truncated or malformed file, a header that lies about offsets
    /// (outside the data, overlapping, or not matching the shape), or an unsupported dtype.
    public static func read(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let file = try SafeTensorsFile(path: path)
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(name) }
        return (tensors, file.metadata)
    }

    /// One tensor's header entry: dtype, shape and byte range within the data section.
    struct Entry {
        var dtype: String
        var shape: [Int]
        var begin: Int
        var end: Int
    }

    /// Parses and checks the JSON header of a file whose data section has `body` bytes.
    static func parseHeader(_ bytes: Data, body: Int, fail: (String) -> SafeTensorsError) throws
        -> (entries: [String: Entry], metadata: [String: String])
    {
        guard let json = try? JSONSerialization.jsonObject(with: bytes), let header = json as? [String: Any] else {
            throw fail("the header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        var ranges: [(Int, Int, String)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in m { metadata[k] = "\(v)" }
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shapeAny = entry["shape"] as? [Any], let offsetsAny = entry["data_offsets"] as? [Any],
                  offsetsAny.count == 2 else {
                throw fail("tensor '\(name)': entry needs dtype, shape and two data_offsets")
            }
            let shape = try shapeAny.map { v -> Int in
                guard let i = (v as? NSNumber)?.intValue, i >= 0 else { throw fail("tensor '\(name)': bad shape \(shapeAny)") }
                return i
            }
            let offsets = try offsetsAny.map { v -> Int in
                guard let i = (v as? NSNumber)?.intValue, i >= 0 else { throw fail("tensor '\(name)': bad data_offsets \(offsetsAny)") }
                return i
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin <= end, end <= body else {
                throw fail("tensor '\(name)': data_offsets [\(begin), \(end)] outside the data section of \(body) bytes")
            }
            guard let width = byteWidth(dtype) else { throw fail("tensor '\(name)': unsupported dtype \(dtype)") }
            guard let bytes = checkedProduct(shape + [width]) else {
                throw fail("tensor '\(name)': shape \(shape) of \(dtype) overflows (its element count or byte size does not fit 64 bits)")
            }
            guard bytes == end - begin else {
                throw fail("tensor '\(name)': shape \(shape) of \(dtype) needs \(bytes) bytes, data_offsets give \(end - begin)")
            }
            if end > begin { ranges.append((begin, end, name)) }  // empty tensors overlap nothing
            entries[name] = Entry(dtype: dtype, shape: shape, begin: begin, end: end)
        }
        ranges.sort { $0.0 < $1.0 }
        for (a, b) in zip(ranges, ranges.dropFirst()) where b.0 < a.1 {
            throw fail("tensors '\(a.2)' and '\(b.2)' overlap in the data section")
        }
        return (entries, metadata)
    }

    static func byteWidth(_ dtype: String) -> Int? {
        switch dtype {
        case "F32", "I32": return 4
        case "F64", "I64": return 8
        case "F16", "BF16": return 2
        default: return nil
        }
    }

    static func decode(_ raw: Data, dtype: String, shape: [Int]) throws -> Tensor {
        var t = try Tensor(zeros: shape)
        t.withUnsafeMutableBufferPointer { out in
            raw.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
                for i in 0..<out.count {
                    switch dtype {
                    case "F32": out[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    case "F64": out[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                    case "I32": out[i] = Float(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                    case "I64": out[i] = Float(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                    case "BF16":
                        out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
                    default:  // F16
                        #if arch(x86_64) || arch(arm64)
                        out[i] = Float(Float16(bitPattern: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
                        #else
                        out[i] = .nan
                        #endif
                    }
                }
            }
        }
        return t
    }

    /// Writes Float32 tensors (sorted by name) atomically: to a temporary file beside `path`, then renamed over
    /// it, so a crash never leaves a half-written file.
    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let sorted = tensors.sorted { $0.0 < $1.0 }
        for (name, t) in sorted {
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]] as [String: Any]
            offset += 4 * t.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }  // pad so the data starts 8-byte aligned
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for (_, t) in sorted {
            t.withUnsafeBufferPointer { buf in
                for v in buf { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
            }
        }
        try writeAtomically(out, to: path)
    }
}

extension SafeTensors {
    /// Writes Float32 tensors one at a time, atomically (temporary file, flush, rename): `shapes` (name, shape)
    /// fixes the header, then `tensor(name)` is asked for each in name order and written at once, so a file
    /// larger than memory can be written while holding one tensor (e.g. `ijepa import` of a 10 GB checkpoint).
    package static func write(shapes: [(String, [Int])], metadata: [String: String] = [:], to path: String,
                             tensor: (String) throws -> Tensor) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let sorted = shapes.sorted { $0.0 < $1.0 }
        for (name, shape) in sorted {
            let bytes = 4 * shape.reduce(1, *)
            header[name] = ["dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        func fail(_ problem: String) -> SafeTensorsError { SafeTensorsError(path: path, problem: problem) }
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil),
              let h = try? FileHandle(forWritingTo: tmp) else {
            throw fail("cannot be written (cannot create \(tmp.path))")
        }
        do {
            defer { try? h.close() }
            var prefix = Data()
            withUnsafeBytes(of: UInt64(json.count).littleEndian) { prefix.append(contentsOf: $0) }
            try h.write(contentsOf: prefix + json)
            for (name, shape) in sorted {
                let t = try tensor(name)
                guard t.shape.reduce(1, *) == shape.reduce(1, *) else {
                    throw fail("tensor '\(name)' has shape \(t.shape), the header says \(shape)")
                }
                try t.withUnsafeBufferPointer { buf in
                    // Float32 is little-endian on every platform Swift runs this package on.
                    try h.write(contentsOf: Data(buffer: buf))
                }
            }
            try h.synchronize()
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            if let e = error as? SafeTensorsError { throw e }
            throw fail("cannot be written: \(error)")
        }
        guard rename(tmp.path, url.path) == 0 else {
            try? FileManager.default.removeItem(at: tmp)
            throw fail("cannot rename the temporary file into place (errno \(errno))")
        }
        syncFolder(of: path)
    }
}

/// fsync of the folder holding `path`, after a rename into it: the rename itself is then on disk, so a power
/// cut cannot bring back the old file's name (or no file) once the write returned. Best effort.
func syncFolder(of path: String) {
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    let fd = open(folder, O_RDONLY | O_DIRECTORY)
    guard fd >= 0 else { return }
    _ = fsync(fd)
    close(fd)
}

/// Removes the temporary files that `writeAtomically` leaves in `folder` when a process is killed between
/// writing and renaming (".<name>.tmp-<pid>"), whose names begin with one of `names`. Returns how many.
@discardableResult
package func removeStaleTemporaryFiles(in folder: String, for names: [String]) -> Int {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    var removed = 0
    for e in entries where names.contains(where: { e.hasPrefix(".\($0).tmp-") }) {
        if (try? FileManager.default.removeItem(atPath: folder + "/" + e)) != nil { removed += 1 }
    }
    return removed
}

/// Writes `data` to `path` through a temporary file in the same folder and a rename (atomic on POSIX).
package func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    do {
        try data.write(to: tmp)
        // Flush before the rename, so that even a power cut leaves either the old file or the complete new one.
        if let h = try? FileHandle(forWritingTo: tmp) { try? h.synchronize(); try? h.close() }
        if rename(tmp.path, url.path) != 0 {
            throw SafeTensorsError(path: path, problem: "cannot rename the temporary file into place (errno \(errno))")
        }
        syncFolder(of: path)
    } catch let e as SafeTensorsError {
        try? FileManager.default.removeItem(at: tmp)
        throw e
    } catch {
        try? FileManager.default.removeItem(at: tmp)
        throw SafeTensorsError(path: path, problem: "cannot be written: \(error.localizedDescription)")
    }
}

/// A safetensors file opened for reading tensor by tensor: the header is read and checked when it opens (as
/// `SafeTensors.read` checks it), each tensor's bytes only when asked for, so a caller that wants a few
/// networks of a large checkpoint holds just those in memory.
public final class SafeTensorsFile {
    public let path: String
    public let metadata: [String: String]
    let entries: [String: SafeTensors.Entry]
    let dataStart: UInt64
    let handle: FileHandle

    public init(path: String) throws {
        func fail(_ problem: String) -> SafeTensorsError { SafeTensorsError(path: path, problem: problem) }
        guard let h = FileHandle(forReadingAtPath: path) else { throw fail("cannot be read (missing or unreadable)") }
        handle = h
        self.path = path
        let size: UInt64
        do { size = try h.seekToEnd(); try h.seek(toOffset: 0) } catch { throw fail("cannot be read: \(error.localizedDescription)") }
        guard size >= 8, let prefix = try? h.read(upToCount: 8), prefix.count == 8 else {
            throw fail("truncated: \(size) bytes, shorter than the 8-byte header size")
        }
        let headerSize = prefix.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.1) << (8 * UInt64($1.0)) }
        guard headerSize <= size - 8, headerSize <= 100_000_000 else {
            throw fail("header size \(headerSize) is larger than the file (\(size) bytes): truncated or not a safetensors file")
        }
        let header = headerSize == 0 ? Data() : ((try? h.read(upToCount: Int(headerSize))) ?? Data())
        guard header.count == Int(headerSize) else { throw fail("truncated inside its header") }
        dataStart = 8 + headerSize
        (entries, metadata) = try SafeTensors.parseHeader(header, body: Int(size - dataStart), fail: fail)
    }

    deinit { try? handle.close() }

    /// Tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    public func shape(of name: String) -> [Int]? { entries[name]?.shape }

    /// Tensor `name` written straight into `out` (exactly its element count): an F32 tensor is read by pread
    /// into `out` itself, with no intermediate copy; other dtypes go through `tensor(_:)`.
    package func read(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let e = entries[name] else { throw SafeTensorsError(path: path, problem: "no tensor '\(name)'") }
        let count = e.shape.reduce(1, *)
        guard out.count == count else {
            throw SafeTensorsError(path: path, problem: "tensor '\(name)' has \(count) elements, the destination \(out.count)")
        }
        guard e.dtype == "F32", count > 0 else {
            let t = try tensor(name)
            t.withUnsafeBufferPointer { if count > 0 { out.baseAddress!.update(from: $0.baseAddress!, count: count) } }
            return
        }
        let raw = UnsafeMutableRawBufferPointer(out)
        let done = try preadFully(raw, at: off_t(dataStart) + off_t(e.begin))
        guard done == e.end - e.begin else {
            throw SafeTensorsError(path: path, problem: "tensor '\(name)': truncated or unreadable (\(done) of \(e.end - e.begin) bytes)")
        }
        #if _endian(big)
        for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
        #endif
    }

    /// Fills `buf` from the file at `offset` (pread: safe from several threads at once); returns the bytes read.
    func preadFully(_ buf: UnsafeMutableRawBufferPointer, at offset: off_t) throws -> Int {
        var done = 0
        let fd = handle.fileDescriptor
        while done < buf.count {
            let n = pread(fd, buf.baseAddress! + done, buf.count - done, offset + off_t(done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            done += n
        }
        return done
    }

    /// The tensor `name` as Float32 (other dtypes converted); reads only its bytes.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw SafeTensorsError(path: path, problem: "no tensor '\(name)'") }
        // pread, not seek + read: safe when several threads read tensors of one file at once.
        var raw = Data(count: e.end - e.begin)
        let done = try raw.withUnsafeMutableBytes { try preadFully($0, at: off_t(dataStart) + off_t(e.begin)) }
        guard done == e.end - e.begin else {
            throw SafeTensorsError(path: path, problem: "tensor '\(name)': truncated or unreadable (\(done) of \(e.end - e.begin) bytes)")
        }
        return try SafeTensors.decode(raw, dtype: e.dtype, shape: e.shape)
    }
}
