import CZlib
import Foundation
import XCTest
import TorchImport

/// A tiny zip writer for hostile and ZIP64 test archives: stored or deflated records, optional ZIP64 extra
/// fields and end records, optional data descriptors (as torch.save writes), and knobs to make the local header
/// disagree with the central directory.
struct ZipWriter {
    struct Record {
        var name: String
        var data: [UInt8]
        var deflate = false
        /// The uncompressed size written in the headers (default: the real one).
        var declaredSize: Int?
        var crc: UInt32?
        var flags: UInt16 = 0
        var method: UInt16?
        var localName: String?
        var localMethod: UInt16?
        var localSizeDelta = 0
    }
    var records: [Record] = []
    var zip64 = false
    var dataDescriptors = false

    mutating func add(_ name: String, _ data: [UInt8], deflate: Bool = false) {
        records.append(Record(name: name, data: data, deflate: deflate))
    }

    func bytes() -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        for r in records {
            let payload = r.deflate ? deflateRaw(r.data) : r.data
            let usize = r.declaredSize ?? r.data.count, csize = payload.count
            let crc = r.crc ?? crc32(r.data)
            let method = r.method ?? (r.deflate ? 8 : 0)
            let flags = r.flags | (dataDescriptors ? 0x08 : 0) | 0x800
            let offset = out.count
            // Local header.
            let lname = Array((r.localName ?? r.name).utf8)
            var lextra: [UInt8] = []
            if zip64 { lextra = u16(1) + u16(16) + u64(usize + r.localSizeDelta) + u64(csize) }
            out += u32(0x0403_4b50) + u16(45) + u16(flags) + u16(r.localMethod ?? method) + u16(0) + u16(0)
            if dataDescriptors {
                out += u32(0) + u32(0) + u32(0)
            } else if zip64 {
                out += u32(crc) + u32(0xFFFF_FFFF) + u32(0xFFFF_FFFF)
            } else {
                out += u32(crc) + u32(UInt32(csize)) + u32(UInt32(usize + r.localSizeDelta))
            }
            out += u16(lname.count) + u16(lextra.count) + lname + lextra + payload
            if dataDescriptors {
                out += u32(0x0807_4b50) + u32(crc) + (zip64 ? u64(csize) + u64(usize) : u32(UInt32(csize)) + u32(UInt32(usize)))
            }
            // Central directory entry.
            let name = Array(r.name.utf8)
            var cextra: [UInt8] = []
            if zip64 { cextra = u16(1) + u16(24) + u64(usize) + u64(csize) + u64(offset) }
            central += u32(0x0201_4b50) + u16(0x032D) + u16(45) + u16(flags) + u16(method) + u16(0) + u16(0) + u32(crc)
            central += zip64 ? u32(0xFFFF_FFFF) + u32(0xFFFF_FFFF) : u32(UInt32(csize)) + u32(UInt32(usize))
            central += u16(name.count) + u16(cextra.count) + u16(0) + u16(0) + u16(0) + u32(0)
            central += (zip64 ? u32(0xFFFF_FFFF) : u32(UInt32(offset))) + name + cextra
        }
        let cdOffset = out.count
        out += central
        if zip64 {
            let recordOffset = out.count
            out += u32(0x0606_4b50) + u64(44) + u16(45) + u16(45) + u32(0) + u32(0)
            out += u64(records.count) + u64(records.count) + u64(central.count) + u64(cdOffset)
            out += u32(0x0706_4b50) + u32(0) + u64(recordOffset) + u32(1)
            out += u32(0x0605_4b50) + u16(0) + u16(0) + u16(0xFFFF) + u16(0xFFFF) + u32(0xFFFF_FFFF) + u32(0xFFFF_FFFF) + u16(0)
        } else {
            out += u32(0x0605_4b50) + u16(0) + u16(0) + u16(records.count) + u16(records.count)
            out += u32(UInt32(central.count)) + u32(UInt32(cdOffset)) + u16(0)
        }
        return out
    }
}

func u16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
func u16(_ v: UInt16) -> [UInt8] { u16(Int(v)) }
func u32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }
func u64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8(UInt64(bitPattern: Int64(v)) >> (8 * UInt64($0)) & 0xFF) } }

func crc32(_ b: [UInt8]) -> UInt32 { UInt32(b.withUnsafeBufferPointer { CZlib.crc32(0, $0.baseAddress, uInt($0.count)) }) }

/// Raw deflate (no zlib wrapper), as zip's method 8 stores it.
func deflateRaw(_ input: [UInt8]) -> [UInt8] {
    var s = z_stream()
    precondition(deflateInit2_(&s, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    defer { deflateEnd(&s) }
    var out = [UInt8](repeating: 0, count: Int(deflateBound(&s, uLong(input.count))) + 64)
    var input = input
    let rc = input.withUnsafeMutableBufferPointer { i in
        out.withUnsafeMutableBufferPointer { o in
            s.next_in = i.baseAddress
            s.avail_in = uInt(i.count)
            s.next_out = o.baseAddress
            s.avail_out = uInt(o.count)
            return deflate(&s, Z_FINISH)
        }
    }
    precondition(rc == Z_STREAM_END)
    return Array(out[0..<Int(s.total_out)])
}

/// Pickle byte strings in the shape torch.save writes them (protocol 2).
enum P {
    static let mark: [UInt8] = [0x28], tuple: [UInt8] = [0x74], reduce: [UInt8] = [0x52], stop: [UInt8] = [0x2E]

    static func str(_ s: String) -> [UInt8] { [0x58] + u32(UInt32(s.utf8.count)) + Array(s.utf8) }
    static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array(module.utf8) + [0x0A] + Array(name.utf8) + [0x0A] }
    static func int(_ i: Int) -> [UInt8] {
        if i >= 0 && i < 256 { return [0x4B, UInt8(i)] }
        if i >= Int(Int32.min) && i <= Int(Int32.max) { return [0x4A] + u32(UInt32(bitPattern: Int32(i))) }
        return [0x8A, 8] + u64(i)
    }
    static func ints(_ xs: [Int]) -> [UInt8] { mark + xs.flatMap(int) + tuple }

    /// `_rebuild_tensor_v2(('storage', torch.<T>, key, 'cpu', numel), offset, shape, stride, False, OrderedDict())`.
    static func tensor(key: String, numel: Int, offset: Int = 0, shape: [Int], stride: [Int],
                       storage: String = "FloatStorage") -> [UInt8] {
        global("torch._utils", "_rebuild_tensor_v2") + mark + mark + str("storage") + global("torch", storage) + str(key)
            + str("cpu") + int(numel) + tuple + [0x51] + int(offset) + ints(shape) + ints(stride) + [0x89]
            + global("collections", "OrderedDict") + [0x29] + reduce + tuple + reduce
    }

    /// `{k: v, ...}` of already pickled values, as a whole program (PROTO 2 ... STOP).
    static func dict(_ items: [(String, [UInt8])]) -> [UInt8] {
        [0x80, 2, 0x7D] + mark + items.flatMap { str($0.0) + $0.1 } + [0x75] + stop
    }
}

/// A torch.save-like archive: `<folder>/data.pkl`, `byteorder`, `version`, `data/<key>` records.
func torchArchive(_ pickle: [UInt8], storages: [(String, [UInt8])] = [], byteorder: String? = "little",
                  folder: String = "archive", configure: (inout ZipWriter) -> Void = { _ in }) -> [UInt8] {
    var w = ZipWriter()
    w.add("\(folder)/data.pkl", pickle)
    if let b = byteorder { w.add("\(folder)/byteorder", Array(b.utf8)) }
    for (key, bytes) in storages { w.add("\(folder)/data/\(key)", bytes) }
    w.add("\(folder)/version", Array("3\n".utf8))
    configure(&w)
    return w.bytes()
}

func floatBytes(_ xs: [Float]) -> [UInt8] { xs.flatMap { u32($0.bitPattern) } }

/// Writes `bytes` to a fresh temporary file named `name` and removes it after `body`.
func withTempFile<R>(_ name: String, _ bytes: [UInt8], _ body: (String) throws -> R) throws -> R {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("torchimport-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent(name).path
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return try body(path)
}

/// Asserts that `body` throws a TorchCheckpointError naming the file and containing `problem`, within
/// `seconds`, and returns its text.
@discardableResult
func assertRefused(_ name: String, _ bytes: [UInt8], _ problem: String, seconds: Double = 5,
                   readTensors: Bool = false, file: StaticString = #filePath, line: UInt = #line) -> String {
    let start = Date()
    var text = ""
    do {
        try withTempFile(name, bytes) { path in
            do {
                let c = try TorchCheckpoint(path: path)
                if readTensors { for n in c.tensorNames { _ = try c.tensor(n) } }
                XCTFail("\(name): accepted, expected an error containing \"\(problem)\"", file: file, line: line)
            } catch let e as TorchCheckpointError {
                text = e.description
                XCTAssertEqual(e.path, path, file: file, line: line)
                XCTAssertTrue(text.hasPrefix(path + ": "), "\(text) does not start with the path", file: file, line: line)
                XCTAssertTrue(text.contains(problem), "\(text)\n  does not contain \"\(problem)\"", file: file, line: line)
            }
        }
    } catch {
        XCTFail("\(name): unexpected error \(error)", file: file, line: line)
    }
    let elapsed = Date().timeIntervalSince(start)
    XCTAssertLessThan(elapsed, seconds, "\(name): took \(elapsed) s", file: file, line: line)
    return text
}

func fixturePath(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
    guard let p = Bundle.module.path(forResource: name, ofType: nil, inDirectory: "Fixtures") else {
        XCTFail("fixture \(name) missing: run tools/make_torch_fixtures.py --official PATH", file: file, line: line)
        throw XCTSkip("fixture missing")
    }
    return p
}
