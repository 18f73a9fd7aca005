import Foundation

/// Element types of the storages a checkpoint may reference (torch.{Float,Half,BFloat16}Storage).
enum StorageDType: String {
    case float32 = "FloatStorage", float16 = "HalfStorage", bfloat16 = "BFloat16Storage"

    var itemSize: Int { self == .float32 ? 4 : 2 }
}

/// A storage named by a persistent id `('storage', torch.<T>Storage, key, location, numel)`: the record
/// `<folder>/data/<key>` holds `numel` elements of `dtype`.
struct StorageRef {
    let key: String
    let dtype: StorageDType
    let numel: Int
    let location: String
}

/// A tensor as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` describes it: a strided
/// view of a storage, in elements. Nothing is checked against the storage here; `TorchCheckpoint` does that.
struct TensorView {
    let storage: StorageRef
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// The globals a checkpoint may name; everything else is refused.
enum AllowedGlobal {
    case orderedDict, rebuildTensorV2, storage(StorageDType)
}

/// Mutable containers are classes because pickle shares them through the memo (APPEND to a memoised list
/// changes every reference to it).
final class PickleList {
    var items: [PickleValue] = []
    var depth = 1
}

final class PickleDict {
    enum Key: Hashable {
        case string(String), int(Int)
        var text: String {
            switch self {
            case .string(let s): return s
            case .int(let i): return String(i)
            }
        }
    }
    var keys: [Key] = []
    var values: [PickleValue] = []
    var index: [Key: Int] = [:]
    var depth = 1
    /// True for a `collections.OrderedDict`, the only object BUILD may be applied to.
    let ordered: Bool
    init(ordered: Bool) { self.ordered = ordered }
}

final class PickleTuple {
    let items: [PickleValue]
    let depth: Int
    init(_ items: [PickleValue]) {
        self.items = items
        depth = 1 + (items.map { $0.depth }.max() ?? 0)
    }
}

/// The values a restricted unpickle can produce: plain data, and the few torch objects of a state dict.
enum PickleValue {
    case none, bool(Bool), int(Int), double(Double), string(String), bytes([UInt8])
    case list(PickleList), tuple(PickleTuple), dict(PickleDict)
    case global(AllowedGlobal), storage(StorageRef), tensor(TensorView)

    var depth: Int {
        switch self {
        case .list(let l): return l.depth
        case .dict(let d): return d.depth
        case .tuple(let t): return t.depth
        default: return 0
        }
    }

    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict(let d): return d.ordered ? "OrderedDict" : "dict"
        case .global(let g):
            switch g {
            case .orderedDict: return "collections.OrderedDict"
            case .rebuildTensorV2: return "torch._utils._rebuild_tensor_v2"
            case .storage(let t): return "torch.\(t.rawValue)"
            }
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// A problem in data.pkl; `offset` is the byte of the opcode, when known.
struct UnpicklingError: Error {
    let problem: String
    let offset: Int?
}

/// A restricted unpickler for the data.pkl of `torch.save` (pickle protocol 2): it interprets the opcodes of
/// plain data (protocols 0-2) and builds values, never executing anything. Only three kinds of global are
/// accepted: `collections.OrderedDict` (called with no arguments; BUILD on it sets attributes such as
/// `_metadata`, which are dropped), `torch._utils._rebuild_tensor_v2` (called to make a `TensorView`), and the
/// storage classes `torch.{Float,Half,BFloat16}Storage` (inside a persistent id only). Nesting, the stack, the
/// memo, the number of values made and integer widths are bounded, and every length is checked against the
/// bytes left, so a hostile file is refused quickly with bounded memory.
struct Unpickler {
    static let maxDepth = 1000
    static let maxMemo = 1_000_000
    static let maxStack = 1_000_000
    /// Values made in all (an official ViT-H checkpoint's data.pkl makes of the order of 10^5), so that a file of
    /// `N POP` or `N APPEND` cannot fill memory.
    static let maxObjects = 1 << 23
    static let allowedGlobals = "only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.{Float,Half,BFloat16}Storage"

    private let bytes: [UInt8]
    private var pos = 0
    private var opStart = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var objects = 0
    /// Every container made, so that reference cycles a hostile file builds can be broken afterwards.
    private var containers: [AnyObject] = []

    /// Runs the program in `bytes` and hands its result to `use`, whose answer is returned. The containers are
    /// emptied afterwards, which breaks any reference cycle a hostile file built (so `use` must copy out what it
    /// keeps).
    static func load<T>(_ bytes: [UInt8], _ use: (PickleValue) throws -> T) throws -> T {
        var u = Unpickler(bytes: bytes)
        defer { u.emptyContainers() }
        return try use(try u.run())
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func fail(_ problem: String) -> UnpicklingError { UnpicklingError(problem: problem, offset: opStart) }

    private mutating func run() throws -> PickleValue {
        while pos < bytes.count {
            opStart = pos
            let op = bytes[pos]
            pos += 1
            if op == 0x2E {  // STOP
                guard stack.count == 1, marks.isEmpty else {
                    throw fail("STOP with \(stack.count) values and \(marks.count) open MARKs on the stack (expected one value)")
                }
                guard pos == bytes.count else { throw fail("\(bytes.count - pos) bytes after STOP") }
                return stack[0]
            }
            try step(op)
        }
        throw UnpicklingError(problem: "ends without STOP after \(bytes.count) bytes (truncated)", offset: nil)
    }

    private mutating func emptyContainers() {
        stack = []
        memo = [:]
        for c in containers {
            if let l = c as? PickleList { l.items = [] } else if let d = c as? PickleDict { (d.keys, d.values, d.index) = ([], [], [:]) }
        }
        containers = []
    }

    // MARK: Opcodes

    private mutating func step(_ op: UInt8) throws {
        switch op {
        case 0x80:  // PROTO
            let v = try u8()
            guard v <= 2 else { throw fail("pickle protocol \(v) is not supported (torch.save writes protocol 2)") }
        case 0x28:  // MARK
            guard marks.count < Self.maxDepth else { throw fail("MARKs nested deeper than \(Self.maxDepth)") }
            marks.append(stack.count)
        case 0x30: _ = try pop()  // POP
        case 0x31: _ = try popMark()  // POP_MARK
        case 0x32: try push(try top())  // DUP
        case 0x4E: try push(.none)  // NONE
        case 0x88: try push(.bool(true))  // NEWTRUE
        case 0x89: try push(.bool(false))  // NEWFALSE
        case 0x49:  // INT: decimal line; "00" and "01" are protocol 0's False and True
            let line = try textLine()
            if line == "00" { try push(.bool(false)) } else if line == "01" { try push(.bool(true)) } else {
                try push(.int(try decimal(line)))
            }
        case 0x4A: try push(.int(Int(Int32(bitPattern: try le32()))))  // BININT
        case 0x4B: try push(.int(Int(try u8())))  // BININT1
        case 0x4D: try push(.int(Int(try le16())))  // BININT2
        case 0x4C:  // LONG: decimal line with an optional trailing L
            var line = try textLine()
            if line.hasSuffix("L") { line.removeLast() }
            try push(.int(try decimal(line)))
        case 0x8A: try push(.int(try longBytes(Int(try u8()))))  // LONG1
        case 0x8B:  // LONG4
            let n = Int(Int32(bitPattern: try le32()))
            guard n >= 0 else { throw fail("LONG4 with negative length \(n)") }
            try push(.int(try longBytes(n)))
        case 0x46:  // FLOAT
            let line = try textLine()
            guard let d = Double(line) else { throw fail("FLOAT '\(line.prefix(40))' is not a number") }
            try push(.double(d))
        case 0x47: try push(.double(Double(bitPattern: try be64())))  // BINFLOAT
        case 0x53: try push(try quotedString(try textLine()))  // STRING
        case 0x54:  // BINSTRING
            let n = Int(Int32(bitPattern: try le32()))
            guard n >= 0 else { throw fail("BINSTRING with negative length \(n)") }
            try push(Self.text(try take(n)))
        case 0x55: try push(Self.text(try take(Int(try u8()))))  // SHORT_BINSTRING
        case 0x58:  // BINUNICODE
            let raw = try take(Int(try le32()))
            guard let s = String(validating: raw, as: UTF8.self) else { throw fail("BINUNICODE string is not valid UTF-8") }
            try push(.string(s))
        case 0x56: try push(.string(try rawUnicodeEscape(try lineBytes())))  // UNICODE
        case 0x5D: try push(try newList([]))  // EMPTY_LIST
        case 0x6C: try push(try newList(try popMark()))  // LIST
        case 0x61:  // APPEND
            let v = try pop()
            try append(to: try top(), [v])
        case 0x65:  // APPENDS
            let items = try popMark()
            try append(to: try top(), items)
        case 0x29: try push(try tuple([]))  // EMPTY_TUPLE
        case 0x74: try push(try tuple(try popMark()))  // TUPLE
        case 0x85: let a = try pop(); try push(try tuple([a]))  // TUPLE1
        case 0x86: let b = try pop(), a = try pop(); try push(try tuple([a, b]))  // TUPLE2
        case 0x87: let c = try pop(), b = try pop(), a = try pop(); try push(try tuple([a, b, c]))  // TUPLE3
        case 0x7D: try push(try newDict(ordered: false, []))  // EMPTY_DICT
        case 0x64: try push(try newDict(ordered: false, try popMark()))  // DICT
        case 0x73:  // SETITEM
            let v = try pop(), k = try pop()
            try setItems(try top(), [k, v])
        case 0x75:  // SETITEMS
            let kv = try popMark()
            try setItems(try top(), kv)
        case 0x67: try push(try memoGet(try decimal(try textLine()), "GET"))  // GET
        case 0x68: try push(try memoGet(Int(try u8()), "BINGET"))  // BINGET
        case 0x6A: try push(try memoGet(Int(try le32()), "LONG_BINGET"))  // LONG_BINGET
        case 0x70: try memoPut(try decimal(try textLine()))  // PUT
        case 0x71: try memoPut(Int(try u8()))  // BINPUT
        case 0x72: try memoPut(Int(try le32()))  // LONG_BINPUT
        case 0x63:  // GLOBAL
            let module = try textLine(), name = try textLine()
            try push(.global(try global(module, name)))
        case 0x52:  // REDUCE
            let args = try pop(), callable = try pop()
            try push(try reduce(callable, args))
        case 0x62:  // BUILD
            let state = try pop()
            try build(try top(), state)
        case 0x51: try push(try persistentLoad(try pop()))  // BINPERSID
        case 0x50: throw fail("PERSID (a text persistent id) is not what torch.save writes; only BINPERSID storage ids are accepted")
        default:
            throw fail("opcode \(Self.opcodeName(op)) is not allowed (only plain data opcodes of pickle protocols 0-2)")
        }
    }

    static func opcodeName(_ op: UInt8) -> String {
        let names: [UInt8: String] = [
            0x69: "INST", 0x6F: "OBJ", 0x81: "NEWOBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x42: "BINBYTES",
            0x43: "SHORT_BINBYTES", 0x8C: "SHORT_BINUNICODE", 0x8D: "BINUNICODE8", 0x8E: "BINBYTES8",
            0x8F: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET", 0x92: "NEWOBJ_EX", 0x93: "STACK_GLOBAL",
            0x94: "MEMOIZE", 0x95: "FRAME", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
        ]
        let hex = String(op, radix: 16)
        let code = "0x" + (hex.count < 2 ? "0" : "") + hex
        if let n = names[op] { return "\(n) (\(code))" }
        if op >= 0x20 && op < 0x7F { return "'\(Character(Unicode.Scalar(op)))' (\(code))" }
        return code
    }

    // MARK: Stack and memo

    private mutating func push(_ v: PickleValue) throws {
        guard stack.count < Self.maxStack else { throw fail("more than \(Self.maxStack) values on the stack") }
        objects += 1
        guard objects <= Self.maxObjects else { throw fail("more than \(Self.maxObjects) values made") }
        stack.append(v)
    }

    private mutating func pop() throws -> PickleValue {
        if let m = marks.last, stack.count <= m { throw fail("pops past a MARK (malformed pickle)") }
        guard let v = stack.popLast() else { throw fail("pops from an empty stack (malformed pickle)") }
        return v
    }

    private func top() throws -> PickleValue {
        if let m = marks.last, stack.count <= m { throw fail("reads past a MARK (malformed pickle)") }
        guard let v = stack.last else { throw fail("reads from an empty stack (malformed pickle)") }
        return v
    }

    private mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw fail("no MARK to pop to (malformed pickle)") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private func memoGet(_ i: Int, _ op: String) throws -> PickleValue {
        guard let v = memo[i] else { throw fail("memo index \(i) read (\(op)) before it was written") }
        return v
    }

    private mutating func memoPut(_ i: Int) throws {
        guard i >= 0, i < Self.maxMemo else { throw fail("memo index \(i) is outside the \(Self.maxMemo)-entry limit") }
        memo[i] = try top()
    }

    // MARK: Containers

    private func checkDepth(_ d: Int) throws {
        guard d <= Self.maxDepth else { throw fail("values nested deeper than \(Self.maxDepth)") }
    }

    private mutating func newList(_ items: [PickleValue]) throws -> PickleValue {
        let l = PickleList()
        containers.append(l)
        l.items = items
        l.depth = 1 + (items.map { $0.depth }.max() ?? 0)
        try checkDepth(l.depth)
        return .list(l)
    }

    private func tuple(_ items: [PickleValue]) throws -> PickleValue {
        let t = PickleTuple(items)
        try checkDepth(t.depth)
        return .tuple(t)
    }

    private func append(to target: PickleValue, _ items: [PickleValue]) throws {
        guard case .list(let l) = target else { throw fail("APPEND to a \(target.typeName), not a list") }
        l.items += items
        l.depth = max(l.depth, 1 + (items.map { $0.depth }.max() ?? 0))
        try checkDepth(l.depth)
    }

    private mutating func newDict(ordered: Bool, _ kv: [PickleValue]) throws -> PickleValue {
        let d = PickleDict(ordered: ordered)
        containers.append(d)
        try setItems(.dict(d), kv)
        return .dict(d)
    }

    /// Adds key/value pairs; keys must be str or int and new (a state dict with a repeated name is refused).
    private func setItems(_ target: PickleValue, _ kv: [PickleValue]) throws {
        guard case .dict(let d) = target else { throw fail("SETITEM on a \(target.typeName), not a dict") }
        guard kv.count % 2 == 0 else { throw fail("SETITEMS with an odd number of values (\(kv.count))") }
        var i = 0
        while i < kv.count {
            let key: PickleDict.Key
            switch kv[i] {
            case .string(let s): key = .string(s)
            case .int(let n): key = .int(n)
            default: throw fail("dict key of type \(kv[i].typeName) (only str and int keys are accepted)")
            }
            guard d.index[key] == nil else { throw fail("duplicate dict key '\(key.text)'") }
            d.index[key] = d.keys.count
            d.keys.append(key)
            d.values.append(kv[i + 1])
            d.depth = max(d.depth, 1 + kv[i + 1].depth)
            try checkDepth(d.depth)
            i += 2
        }
    }

    // MARK: Globals and objects

    private func global(_ module: String, _ name: String) throws -> AllowedGlobal {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch", "FloatStorage"): return .storage(.float32)
        case ("torch", "HalfStorage"): return .storage(.float16)
        case ("torch", "BFloat16Storage"): return .storage(.bfloat16)
        default:
            let shown = "\(module).\(name)".unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : "?" }.joined()
            throw UnpicklingError(problem: "global '\(shown.prefix(200))' is not allowed (\(Self.allowedGlobals))", offset: nil)
        }
    }

    private mutating func reduce(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = args else { throw fail("REDUCE arguments are a \(args.typeName), not a tuple") }
        let a = t.items
        switch callable {
        case .global(.orderedDict):
            guard a.isEmpty else { throw fail("collections.OrderedDict called with \(a.count) arguments (torch.save passes none)") }
            return try newDict(ordered: true, [])
        case .global(.rebuildTensorV2):
            return .tensor(try rebuildTensor(a))
        default:
            throw fail("REDUCE calls a \(callable.typeName) (only collections.OrderedDict and torch._utils._rebuild_tensor_v2 may be called)")
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
    private func rebuildTensor(_ a: [PickleValue]) throws -> TensorView {
        guard a.count == 6 || a.count == 7 else { throw fail("_rebuild_tensor_v2 called with \(a.count) arguments (expected 6 or 7)") }
        guard case .storage(let storage) = a[0] else { throw fail("_rebuild_tensor_v2: argument 1 is a \(a[0].typeName), not a storage") }
        guard case .int(let offset) = a[1] else { throw fail("_rebuild_tensor_v2: storage offset is a \(a[1].typeName), not an int") }
        func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
            guard case .tuple(let t) = v else { throw fail("_rebuild_tensor_v2: \(what) is a \(v.typeName), not a tuple") }
            return try t.items.map {
                guard case .int(let i) = $0 else { throw fail("_rebuild_tensor_v2: \(what) holds a \($0.typeName)") }
                return i
            }
        }
        let shape = try ints(a[2], "size"), strides = try ints(a[3], "stride")
        guard case .bool = a[4] else { throw fail("_rebuild_tensor_v2: requires_grad is a \(a[4].typeName), not a bool") }
        // backward_hooks: torch.save writes an empty OrderedDict; hooks would be code, so any entry is refused.
        switch a[5] {
        case .none: break
        case .dict(let d) where d.keys.isEmpty: break
        default: throw fail("_rebuild_tensor_v2: backward_hooks must be empty (got a \(a[5].typeName))")
        }
        // metadata (tensor flags such as conj/neg bits) would change the values: only absent or empty passes.
        if a.count == 7 {
            switch a[6] {
            case .none: break
            case .dict(let d) where d.keys.isEmpty: break
            default: throw fail("_rebuild_tensor_v2: non-empty tensor metadata (\(a[6].typeName)) is not supported")
            }
        }
        return TensorView(storage: storage, offset: offset, shape: shape, strides: strides)
    }

    /// BUILD: only attributes of an OrderedDict (a state dict's `_metadata`), which are dropped.
    private func build(_ target: PickleValue, _ state: PickleValue) throws {
        guard case .dict(let d) = target, d.ordered else {
            throw fail("BUILD on a \(target.typeName) (only on a collections.OrderedDict)")
        }
        guard case .dict = state else { throw fail("BUILD on an OrderedDict with a \(state.typeName) state (only a dict of attributes)") }
    }

    /// BINPERSID: `('storage', torch.<T>Storage, key, location, numel)`.
    private func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.items.count == 5, case .string("storage") = t.items[0] else {
            throw fail("persistent id is not a ('storage', type, key, location, numel) tuple")
        }
        guard case .global(.storage(let dtype)) = t.items[1] else {
            throw fail("persistent id names a \(t.items[1].typeName) as its storage type (\(Self.allowedGlobals))")
        }
        guard case .string(let key) = t.items[2], !key.isEmpty, !key.contains("/") else {
            throw fail("persistent id has a storage key that is not a plain name")
        }
        guard case .string(let location) = t.items[3] else { throw fail("persistent id location is a \(t.items[3].typeName), not a str") }
        guard case .int(let numel) = t.items[4], numel >= 0 else { throw fail("persistent id has a bad element count") }
        return .storage(StorageRef(key: key, dtype: dtype, numel: numel, location: location))
    }

    // MARK: Reading arguments

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - pos else {
            throw fail("declares \(n) bytes but only \(bytes.count - pos) are left (truncated or corrupt)")
        }
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }

    private mutating func u8() throws -> UInt8 { try take(1).first ?? 0 }
    private mutating func le16() throws -> UInt16 { try take(2).reversed().reduce(0) { $0 << 8 | UInt16($1) } }
    private mutating func le32() throws -> UInt32 { try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) } }
    private mutating func be64() throws -> UInt64 { try take(8).reduce(0) { $0 << 8 | UInt64($1) } }

    /// Little-endian two's complement of `n` bytes (LONG1/LONG4), at most 8.
    private mutating func longBytes(_ n: Int) throws -> Int {
        guard n <= 8 else { throw fail("integer of \(n) bytes is wider than 64 bits") }
        let b = try take(n)
        guard n > 0 else { return 0 }
        var v = b.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        if n < 8 && (b.last ?? 0) & 0x80 != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) }  // sign-extend
        return Int(Int64(bitPattern: v))
    }

    /// The bytes up to the next newline (which is consumed).
    private mutating func lineBytes() throws -> ArraySlice<UInt8> {
        guard let nl = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("text argument without a newline (truncated)") }
        defer { pos = nl + 1 }
        return bytes[pos..<nl]
    }

    private mutating func textLine() throws -> String {
        let b = try lineBytes()
        guard let s = String(validating: b, as: UTF8.self) else { throw fail("text argument is not valid UTF-8") }
        return s
    }

    private func decimal(_ s: String) throws -> Int {
        guard let v = Int(s.trimmingCharacters(in: .whitespaces)) else {
            throw fail("'\(s.prefix(40))' is not an integer that fits 64 bits")
        }
        return v
    }

    /// BINSTRING data: text when it is UTF-8 (torch.load decodes Python 2 strings so), bytes otherwise.
    private static func text(_ b: ArraySlice<UInt8>) -> PickleValue {
        if let s = String(validating: b, as: UTF8.self) { return .string(s) }
        return .bytes(Array(b))
    }

    /// STRING: a Python 2 string literal in quotes with backslash escapes.
    private func quotedString(_ line: String) throws -> PickleValue {
        let s = Array(line.utf8)
        guard s.count >= 2, let q = s.first, q == 0x27 || q == 0x22, s.last == q else {
            throw fail("STRING argument is not a quoted string")
        }
        var out: [UInt8] = []
        var i = 1
        while i < s.count - 1 {
            let c = s[i]
            i += 1
            guard c == 0x5C else { out.append(c); continue }
            guard i < s.count - 1 else { throw fail("STRING ends in a lone backslash") }
            let e = s[i]
            i += 1
            switch e {
            case 0x6E: out.append(0x0A)
            case 0x74: out.append(0x09)
            case 0x72: out.append(0x0D)
            case 0x30...0x37:  // up to three octal digits
                var v = Int(e - 0x30)
                var k = 0
                while k < 2, i < s.count - 1, (0x30...0x37).contains(s[i]) { v = v * 8 + Int(s[i] - 0x30); i += 1; k += 1 }
                out.append(UInt8(truncatingIfNeeded: v))
            case 0x78:
                guard i + 2 <= s.count - 1, let v = UInt8(String(decoding: s[i..<(i + 2)], as: UTF8.self), radix: 16) else {
                    throw fail("STRING has a bad \\x escape")
                }
                out.append(v)
                i += 2
            default: out.append(e)  // \\, \', \" and unknown escapes stand for the character
            }
        }
        return Self.text(out[...])
    }

    /// UNICODE: raw-unicode-escape (Latin-1 bytes, with \uXXXX and \UXXXXXXXX escapes).
    private func rawUnicodeEscape(_ b: ArraySlice<UInt8>) throws -> String {
        let s = Array(b)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < s.count {
            if s[i] == 0x5C, i + 1 < s.count, s[i + 1] == 0x75 || s[i + 1] == 0x55 {
                let n = s[i + 1] == 0x75 ? 4 : 8
                guard i + 2 + n <= s.count, let v = UInt32(String(decoding: s[(i + 2)..<(i + 2 + n)], as: UTF8.self), radix: 16),
                      let scalar = Unicode.Scalar(v) else { throw fail("UNICODE has a bad \\u escape") }
                out.append(scalar)
                i += 2 + n
            } else {
                out.append(Unicode.Scalar(s[i]))
                i += 1
            }
        }
        return String(out)
    }
}
