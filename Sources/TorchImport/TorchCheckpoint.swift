import Foundation
import TensorCore

/// An error reading a torch.save checkpoint; it names the file and what is wrong with it.
public struct TorchCheckpointError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String
    public var description: String { "\(path): \(problem)" }
    public init(path: String, problem: String) { (self.path, self.problem) = (path, problem) }
}

/// A non-tensor leaf of a checkpoint (an epoch, a learning rate, a flag, a name).
package enum TorchValue: Equatable, Sendable, CustomStringConvertible {
    case none, bool(Bool), int(Int), double(Double), string(String), bytes([UInt8])

    /// The number, for an int or a float (Python code mixes them, e.g. `weight_decay` 0 or 0.04).
    package var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    package var description: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return "'\(s)'"
        case .bytes(let b): return "bytes(\(b.count))"
        }
    }
}

/// A PyTorch `torch.save` checkpoint (the zip format of torch >= 1.6), read without running any Python and
/// without executing the pickle: e.g. the official I-JEPA checkpoints (`encoder`, `predictor`,
/// `target_encoder`, `opt`, `epoch`, ...).
///
/// Opening reads the zip's central directory and `data.pkl` (a restricted unpickle: plain data, ordered dicts,
/// `_rebuild_tensor_v2` and float32/float16/bfloat16 storages only), and checks every tensor view against its
/// storage record; no tensor data is read until `tensor(_:)` asks for it, one storage record at a time, so a
/// 10 GB checkpoint is read in bounded memory. Nested dicts, lists and tuples are flattened into dot-joined
/// names in file order ("encoder.module.blocks.0.attn.qkv.weight", "opt.state.1.exp_avg"); empty containers
/// leave no name, and a checkpoint that is a single tensor or value gets the name "". Refused with a
/// `TorchCheckpointError` that names the file: the legacy pre-zip format (re-save it with a current torch),
/// big-endian files, any other global (e.g. `os.system`), views that reach past their storage, storage records
/// smaller than their declared element count, duplicate names, corrupt or truncated archives.
package final class TorchCheckpoint {
    package let path: String
    /// Every tensor's name, in file order.
    package let tensorNames: [String]
    /// The non-tensor leaves by name, e.g. "epoch", "lr", "opt.param_groups.0.betas.0".
    package let values: [String: TorchValue]
    private let views: [String: TensorView]
    private let archive: ZipArchive
    private let folder: String

    /// data.pkl larger than this is refused before it is read (an official ViT-H checkpoint's is a few hundred KB).
    static let maxPickleBytes = 256 << 20
    /// A view with more elements than its storage (stride 0, e.g. `expand`) may have at most this many, so that
    /// a few bytes of storage cannot ask for gigabytes of Float32.
    static let maxExpandedElements = 1 << 24
    /// Values visited, and bytes of names made, while flattening: containers shared through the memo could
    /// otherwise flatten to exponentially many names, or to names of gigabytes (a long key reused at every level).
    static let maxVisits = 1 << 20
    static let maxNameBytes = 4096
    static let maxTotalNameBytes = 64 << 20

    package init(path: String) throws {
        self.path = path
        func fail(_ problem: String) -> TorchCheckpointError { TorchCheckpointError(path: path, problem: problem) }
        try Self.refuseLegacyFormat(path)
        archive = try ZipArchive(path: path)
        let folders = archive.entries.compactMap { e -> String? in
            let parts = e.name.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1] == "data.pkl" && !parts[0].isEmpty ? String(parts[0]) : nil
        }
        guard folders.count == 1, let folder = folders.first else {
            throw fail(folders.isEmpty ? "no <folder>/data.pkl record: not a torch.save checkpoint"
                                       : "several data.pkl records (\(folders.joined(separator: ", "))): not a torch.save checkpoint")
        }
        self.folder = folder
        if archive.entry("\(folder)/byteorder") != nil {
            let raw = try archive.read("\(folder)/byteorder", limit: 64)
            let order = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard order == "little" else {
                throw fail(order == "big" ? "big-endian checkpoint (byteorder record says 'big'): only little-endian files are supported"
                                          : "byteorder record says '\(order.prefix(20))', expected 'little'")
            }
        }
        let pickle = try archive.read("\(folder)/data.pkl", limit: Self.maxPickleBytes)
        var flat = Flattened()
        do {
            try Unpickler.load(pickle) { root in try flat.visit(root, name: "", depth: 0) }
        } catch let e as UnpicklingError {
            throw fail("data.pkl: " + (e.offset.map { "byte \($0): " } ?? "") + e.problem)
        } catch let e as FlattenError {
            throw fail("data.pkl: \(e.problem)")
        }
        // Every view against its storage and the storage against its record.
        var storages: [String: (StorageRef, String)] = [:]
        for (name, v) in flat.tensors {
            try Self.checkView(v) { fail("tensor '\(name)': \($0)") }
            let key = v.storage.key
            if let (s, first) = storages[key] {
                guard s.dtype == v.storage.dtype, s.numel == v.storage.numel else {
                    throw fail("tensor '\(name)': storage '\(key)' is declared as \(v.storage.numel) x \(v.storage.dtype.rawValue) here and as \(s.numel) x \(s.dtype.rawValue) by '\(first)'")
                }
                continue
            }
            storages[key] = (v.storage, name)
            guard let record = archive.entry("\(folder)/data/\(key)") else {
                throw fail("tensor '\(name)': no record \(folder)/data/\(key) for its storage")
            }
            let (bytes, overflow) = v.storage.numel.multipliedReportingOverflow(by: v.storage.dtype.itemSize)
            guard !overflow, bytes <= record.uncompressedSize else {
                throw fail("tensor '\(name)': storage '\(key)' declares \(v.storage.numel) x \(v.storage.dtype.rawValue) (\(overflow ? "overflowing" : "\(bytes)") bytes) but its record \(folder)/data/\(key) holds \(record.uncompressedSize) bytes")
            }
        }
        tensorNames = flat.tensors.map { $0.0 }
        views = Dictionary(flat.tensors, uniquingKeysWith: { a, _ in a })
        values = flat.values
    }

    /// The shape of tensor `name`, or nil when there is none.
    package func shape(of name: String) -> [Int]? { views[name]?.shape }

    /// Tensor `name` as a contiguous Float32 `Tensor` (float16 and bfloat16 converted exactly, strides and
    /// storage offset applied). Reads and CRC-checks only that tensor's storage record, streaming it, so memory
    /// is the storage's bytes plus the result.
    package func tensor(_ name: String) throws -> Tensor {
        guard let v = views[name] else {
            throw TorchCheckpointError(path: path, problem: "no tensor named '\(name)' (\(views.count) tensors, e.g. '\(tensorNames.first ?? "")')")
        }
        // The storage's bytes only (a record may be longer), its whole record CRC-checked.
        let needed = v.storage.numel * v.storage.dtype.itemSize  // no overflow: checked at open
        let raw = try archive.read("\(folder)/data/\(v.storage.key)", keep: needed)
        guard raw.count == needed else {  // checked at open; the file may have changed since
            throw TorchCheckpointError(path: path, problem: "tensor '\(name)': storage record shorter than declared")
        }
        var t = try Tensor(zeros: v.shape)
        raw.withUnsafeBytes { src in
            t.withUnsafeMutableBufferPointer { out in
                switch v.storage.dtype {
                case .float32: Self.gather(v, out) { Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
                case .float16: Self.gather(v, out) { Self.halfToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
                case .bfloat16: Self.gather(v, out) { Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) << 16) }
                }
            }
        }
        return t
    }

    /// Tensor `name` written straight into `out` (exactly its element count, row-major), e.g. a parameter's own
    /// memory: a contiguous float32 view (what state dicts hold) streams from its record into `out` with no copy
    /// of the storage; any other view goes through `tensor(_:)`. Loading a network this way holds nothing but
    /// the network (a fresh buffer per tensor left freed memory with glibc: ViT-H/14's peak RSS was 1.22x its
    /// bytes that way, 1.05x this way).
    package func read(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let v = views[name] else {
            throw TorchCheckpointError(path: path, problem: "no tensor named '\(name)'")
        }
        let count = v.shape.reduce(1, *)  // no overflow: checked at open
        guard out.count == count else {
            throw TorchCheckpointError(path: path, problem: "tensor '\(name)' has \(count) elements, the destination \(out.count)")
        }
        var expected = 1, contiguous = true
        for (size, stride) in zip(v.shape, v.strides).reversed() where size > 1 {
            contiguous = contiguous && stride == expected
            expected *= size
        }
        guard v.storage.dtype == .float32, contiguous, count > 0 else {
            let t = try tensor(name)
            t.withUnsafeBufferPointer { if count > 0 { out.baseAddress!.update(from: $0.baseAddress!, count: count) } }
            return
        }
        // Bytes [4 offset, 4 (offset + count)) of the record are the tensor; copy them as they stream past.
        let first = 4 * v.offset, end = 4 * (v.offset + count)
        let dst = UnsafeMutableRawPointer(out.baseAddress!)
        var copied = 0
        try archive.stream("\(folder)/data/\(v.storage.key)") { position, chunk in
            let lo = max(first, position), hi = min(end, position + chunk.count)
            guard lo < hi, let src = chunk.baseAddress else { return }
            (dst + (lo - first)).copyMemory(from: UnsafeRawPointer(src + (lo - position)), byteCount: hi - lo)
            copied += hi - lo
        }
        guard copied == end - first else {  // checked at open; the file may have changed since
            throw TorchCheckpointError(path: path, problem: "tensor '\(name)': storage record shorter than declared")
        }
        #if _endian(big)
        for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
        #endif
    }

    // MARK: Internals

    /// Writes the view's elements in row-major order; `load(i)` reads storage element i (checked in range).
    @inline(__always)
    static func gather(_ v: TensorView, _ out: UnsafeMutableBufferPointer<Float>, _ load: (Int) -> Float) {
        guard out.count > 0 else { return }
        let rank = v.shape.count
        guard rank > 0 else { out[0] = load(v.offset); return }
        // A dimension of size 1 never moves, whatever its stride says (which may be anything, even Int.max).
        let strides = zip(v.shape, v.strides).map { $0 == 1 ? 0 : $1 }
        let inner = v.shape[rank - 1], innerStride = strides[rank - 1]
        var index = [Int](repeating: 0, count: rank)
        var base = v.offset
        var o = 0
        while o < out.count {
            var s = base
            for _ in 0..<inner { out[o] = load(s); s += innerStride; o += 1 }
            // Next row: an odometer over the outer dimensions.
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                base += strides[d]
                if index[d] < v.shape[d] { break }
                base -= strides[d] * v.shape[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    /// IEEE binary16 to binary32, exactly (subnormals and infinities included); a NaN keeps its payload with the
    /// quiet bit set, as the hardware conversion (x86 vcvtph2ps, numpy) gives it. (torch's own `.float()` gives
    /// that in its vectorised chunks and 0x7fffffff in its scalar tail, so NaN payloads are no contract.)
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16, exponent = UInt32(h >> 10 & 0x1F), mantissa = UInt32(h & 0x3FF)
        switch exponent {
        case 0x1F: return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13 | (mantissa != 0 ? 0x0040_0000 : 0))
        case 0:
            let v = Float(mantissa) * 0x1p-24  // subnormal (or zero): mantissa x 2^-24, exact in Float
            return sign != 0 ? -v : v
        default: return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
        }
    }

    /// Sizes and strides non-negative, element count without overflow, and every element inside the storage.
    static func checkView(_ v: TensorView, _ fail: (String) -> TorchCheckpointError) throws {
        let desc = "view (offset \(v.offset), size \(v.shape), stride \(v.strides))"
        guard v.shape.count == v.strides.count else { throw fail("\(desc) has \(v.shape.count) sizes but \(v.strides.count) strides") }
        guard v.offset >= 0, v.shape.allSatisfy({ $0 >= 0 }), v.strides.allSatisfy({ $0 >= 0 }) else {
            throw fail("\(desc) has a negative offset, size or stride")
        }
        var count = 1, last = v.offset, overflow = false
        for (size, stride) in zip(v.shape, v.strides) {
            var o1 = false, o2 = false, o3 = false
            (count, o1) = count.multipliedReportingOverflow(by: size)
            if size > 0 {
                let step: Int
                (step, o2) = (size - 1).multipliedReportingOverflow(by: stride)
                (last, o3) = last.addingReportingOverflow(step)
            }
            overflow = overflow || o1 || o2 || o3
        }
        guard !overflow else { throw fail("\(desc): element count or extent overflows") }
        let numel = v.storage.numel
        if count > 0 {
            guard last < numel else { throw fail("\(desc) reaches element \(last) of a storage of \(numel) elements") }
        } else {
            guard v.offset <= numel else { throw fail("\(desc) starts past the end of a storage of \(numel) elements") }
        }
        guard count <= max(numel, maxExpandedElements) else {
            throw fail("\(desc) has \(count) elements from a storage of \(numel) (more than \(maxExpandedElements) repeated elements)")
        }
    }

    /// A pickle stream starting with PROTO, not a zip: the legacy format of torch < 1.6 (or
    /// `_use_new_zipfile_serialization=False`), whose storages follow the pickle in one stream.
    static func refuseLegacyFormat(_ path: String) throws {
        guard let h = FileHandle(forReadingAtPath: path) else {
            throw TorchCheckpointError(path: path, problem: "cannot be opened (missing or unreadable)")
        }
        defer { try? h.close() }
        let head = (try? h.read(upToCount: 2)) ?? Data()
        if head.first == 0x80 {
            throw TorchCheckpointError(path: path, problem: "legacy torch.save format (a pickle stream, not a zip archive: torch < 1.6 or _use_new_zipfile_serialization=False) is not supported; re-save it with a current torch: torch.save(torch.load(old, weights_only=True), new)")
        }
    }
}

struct FlattenError: Error { let problem: String }

/// The leaves of the unpickled tree, named by their dot-joined paths in file order.
struct Flattened {
    var tensors: [(String, TensorView)] = []
    var values: [String: TorchValue] = [:]
    private var names = Set<String>()
    private var visited = 0
    private var nameBytes = 0

    mutating func visit(_ v: PickleValue, name: String, depth: Int) throws {
        guard depth <= Unpickler.maxDepth else {
            throw FlattenError(problem: "values nested deeper than \(Unpickler.maxDepth) (or a cycle) at '\(name.prefix(200))...'")
        }
        visited += 1
        guard visited <= TorchCheckpoint.maxVisits else {
            throw FlattenError(problem: "more than \(TorchCheckpoint.maxVisits) values once flattened (shared containers?)")
        }
        func child(_ key: String) throws -> String {
            let length = name.utf8.count + 1 + key.utf8.count
            guard length <= TorchCheckpoint.maxNameBytes else {
                throw FlattenError(problem: "a name longer than \(TorchCheckpoint.maxNameBytes) bytes once flattened: '\(name.prefix(100))...'")
            }
            nameBytes += length
            guard nameBytes <= TorchCheckpoint.maxTotalNameBytes else {
                throw FlattenError(problem: "more than \(TorchCheckpoint.maxTotalNameBytes) bytes of names once flattened (shared containers?)")
            }
            return name.isEmpty ? key : name + "." + key
        }
        switch v {
        case .list(let l): for (i, x) in l.items.enumerated() { try visit(x, name: try child(String(i)), depth: depth + 1) }
        case .tuple(let t): for (i, x) in t.items.enumerated() { try visit(x, name: try child(String(i)), depth: depth + 1) }
        case .dict(let d): for (k, x) in zip(d.keys, d.values) { try visit(x, name: try child(k.text), depth: depth + 1) }
        case .tensor(let view): try leaf(name); tensors.append((name, view))
        case .none: try leaf(name); values[name] = TorchValue.none
        case .bool(let b): try leaf(name); values[name] = .bool(b)
        case .int(let i): try leaf(name); values[name] = .int(i)
        case .double(let d): try leaf(name); values[name] = .double(d)
        case .string(let s): try leaf(name); values[name] = .string(s)
        case .bytes(let b): try leaf(name); values[name] = .bytes(b)
        case .storage: throw FlattenError(problem: "'\(name)' is a bare storage, not a tensor (not supported)")
        case .global: throw FlattenError(problem: "'\(name)' holds the class or function \(v.typeName), not data")
        }
    }

    private mutating func leaf(_ name: String) throws {
        guard names.insert(name).inserted else { throw FlattenError(problem: "two entries have the name '\(name)' once flattened") }
    }
}
