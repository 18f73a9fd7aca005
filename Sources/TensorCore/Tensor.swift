import CPUKernels

/// Errors of tensor construction and shape handling, with messages that say what was expected.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    case invalidShape([Int])
    case countMismatch(shape: [Int], expected: Int, got: Int)
    case reshapeMismatch(from: [Int], to: [Int])
    case incompatibleShapes(operation: String, [Int], [Int])

    public var description: String {
        switch self {
        case .invalidShape(let s): return "invalid tensor shape \(s): dimensions must be >= 0"
        case let .countMismatch(shape, expected, got):
            return "shape \(shape) holds \(expected) values, but \(got) were given"
        case let .reshapeMismatch(from, to):
            return "cannot reshape \(from) (\(from.reduce(1, *)) values) to \(to) (\(to.reduce(1, *)) values)"
        case let .incompatibleShapes(op, a, b): return "\(op): incompatible shapes \(a) and \(b)"
        }
    }
}

/// 64-byte-aligned, contiguous Float32 storage.
@usableFromInline
package final class TensorStorage: @unchecked Sendable {
    @usableFromInline package let pointer: UnsafeMutablePointer<Float>
    @usableFromInline package let count: Int

    /// Zero-filled storage of `count` floats (64-byte aligned: a cache line, and an AVX-512 vector), from no pool.
    package convenience init(count: Int) { self.init(count: count, zeroed: true, pool: nil) }

    /// Storage from `pool` (an engine's, reused block by block; nil: straight from the system); `zeroed: false`
    /// leaves the old contents (for outputs written in full).
    init(count: Int, zeroed: Bool, pool: StoragePool?) {
        precondition(count >= 0, "TensorStorage: negative count \(count)")
        let bytes = max(64, count * 4)
        let block = pool?.take(bytes: bytes) ?? StoragePool.allocate(bytes: bytes)
        pointer = block.pointer.bindMemory(to: Float.self, capacity: max(16, count))
        blockBytes = block.bytes
        self.pool = pool
        if zeroed && !block.fresh { pointer.update(repeating: 0, count: count) }
        self.count = count
    }

    /// Bytes of the block behind `pointer` (its size class, or a larger class's block reused).
    private let blockBytes: Int
    /// Where the block goes back to.
    let pool: StoragePool?

    deinit {
        let block = StoragePool.Block(pointer: UnsafeMutableRawPointer(pointer), bytes: blockBytes)
        if let pool { pool.give(block) } else { StoragePool.free(block) }
    }
}

/// Keeps freed tensor memory for reuse by the next tensor of the same size. A training step allocates the
/// same activation and gradient sizes every time; without the pool each large block came fresh from mmap and
/// was page-faulted in again (with its zero-fill, 11 % of a ViT-Tiny training step).
///
/// Blocks of 64 KiB and more are mapped from the system one by one (`mmap`) and unmapped whole, never taken
/// from malloc: glibc serves a large block from its main heap once its dynamic mmap threshold has risen (after
/// the first large free), and with block sizes that change with the masks every step, the holes left in that
/// heap stayed resident. The default model's resident memory then rose in steps of ~4 MiB over a long run
/// (417.9 -> 425.7 MiB from step 1 000 to 11 580, 362 MiB of it in the heap; docs/training.md). Blocks below
/// 64 KiB stay with malloc, which reuses them well.
///
/// Each `Engine` owns one (`Engine.storage`); the ops of a tape take their outputs and gradients from it.
package final class StoragePool: @unchecked Sendable {
    /// One block: its start and its usable bytes (what `unmap` needs back).
    struct Block {
        var pointer: UnsafeMutableRawPointer
        var bytes: Int
        /// Freshly mapped: already zero (the kernel hands out zero pages).
        var fresh = false
        /// When it was given back (for the oldest-first eviction).
        var stamp = 0
    }

    private let lock = PThreadLock()
    // Guarded by `lock`:
    private var free: [Int: [Block]] = [:]  // idle blocks by size class, oldest first
    private var cachedBytes = 0  // bytes in `free`
    private var liveBytes = 0  // mapped bytes held by tensors
    private var peakLiveBytes = 0
    private var clock = 0

    /// Idle memory kept at least (more for a larger working set, see `capacity`): less, and fresh pages fault in
    /// at every step; ViT-S/16 needs a quarter of its peak working set (docs/performance.md, Decisions).
    let minimumCapacityBytes: Int

    /// A pool that keeps at least `minimumCapacityBytes` of idle blocks (see `capacity`).
    package init(minimumCapacityBytes: Int = 128 << 20) { self.minimumCapacityBytes = minimumCapacityBytes }

    deinit { drain() }  // the idle blocks (every tensor of the pool holds it alive)

    /// Idle bytes kept now: the larger of the minimum and a quarter of the most bytes tensors ever held at
    /// once (bounded by the largest step the model runs, so resident memory between steps stays bounded).
    private var capacity: Int { max(minimumCapacityBytes, peakLiveBytes / 4) }

    /// Blocks from this size on are mapped one by one and pooled.
    static let mappedFrom = 1 << 16

    /// False in a process built with AddressSanitizer: its checks cover malloc's blocks, not raw mappings, so
    /// there every block comes from malloc (still pooled) and an overflow past a tensor's end is still caught.
    static let mapsBlocks: Bool = {
        guard let program = dlopen(nil, RTLD_NOW) else { return true }
        defer { dlclose(program) }
        return dlsym(program, "__asan_init") == nil
    }()

    /// Pooled blocks come in size classes, 8 per octave (at most 12.5 % slack), multiples of 8 KiB (whole
    /// pages): an I-JEPA step's shapes change with the mask sizes every step, and exact-size keys let idle
    /// blocks of ever new sizes pile up to the cap.
    @inline(__always)
    static func sizeClass(_ bytes: Int) -> Int {
        guard bytes >= mappedFrom else { return bytes }
        let step = (1 << (Int.bitWidth - 1 - bytes.leadingZeroBitCount)) >> 3
        return (bytes + step - 1) / step * step
    }

    /// Larger size classes `take` may use, each 12.5 % up: 8 reach twice the request. The mask sizes change
    /// every step, and an idle block somewhat larger serves a request better than a fresh mapping (which
    /// faults its pages in and may push a block the next step needs out of the pool).
    static let spareClasses = 8

    func take(bytes requested: Int) -> Block {
        let bytes = StoragePool.sizeClass(requested)
        guard bytes >= StoragePool.mappedFrom else { return StoragePool.allocate(bytes: bytes) }  // malloc's
        let reused = lock.with { () -> Block? in
            var c = bytes
            for _ in 0...StoragePool.spareClasses {
                if let b = free[c]?.popLast() {  // the most recently freed: its pages are the warmest
                    cachedBytes -= c
                    liveBytes += c
                    peakLiveBytes = max(peakLiveBytes, liveBytes)
                    return b
                }
                c = StoragePool.sizeClass(c + 1)
            }
            liveBytes += bytes
            peakLiveBytes = max(peakLiveBytes, liveBytes)
            return nil
        }
        return reused ?? StoragePool.map(bytes)
    }

    /// A block from no pool: mapped (64 KiB and more) or from malloc.
    static func allocate(bytes requested: Int) -> Block {
        let bytes = sizeClass(requested)
        guard bytes >= mappedFrom else {
            return Block(pointer: UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64), bytes: bytes)
        }
        return map(bytes)
    }

    /// Gives back a block of no pool.
    static func free(_ block: Block) {
        if block.bytes >= mappedFrom { unmap(block) } else { block.pointer.deallocate() }
    }

    /// Idle bytes in the pool and bytes held by tensors (mapped blocks only), for tests.
    var usage: (idle: Int, live: Int) { lock.with { (cachedBytes, liveBytes) } }

    /// Returns every idle block to the system, and glibc's freed heap memory too (the engine otherwise keeps
    /// idle blocks, at least 128 MiB and at most a quarter of the largest working set, for the next tensors).
    package func release() {
        drain()
        #if canImport(Glibc)
        _ = glibcMallocTrim(0)
        #endif
    }

    /// Returns every idle block to the system.
    func drain() {
        let blocks = lock.with { () -> [Block] in
            let all = free.values.flatMap { $0 }
            free.removeAll()
            cachedBytes = 0
            return all
        }
        for b in blocks { StoragePool.unmap(b) }
    }

    func give(_ block: Block) {
        guard block.bytes >= StoragePool.mappedFrom else { return StoragePool.free(block) }  // malloc's
        let unmapped = lock.with { () -> [Block] in
            liveBytes -= block.bytes
            let cap = capacity
            guard block.bytes <= cap else { return [block] }
            // The oldest idle blocks go first: the sizes freed last are the ones the next step asks for.
            var out: [Block] = []
            while cachedBytes + block.bytes > cap {
                var oldest = Int.max, key = 0
                for (k, list) in free where !list.isEmpty && list[0].stamp < oldest { (oldest, key) = (list[0].stamp, k) }
                let b = free[key]!.removeFirst()
                cachedBytes -= b.bytes
                out.append(b)
            }
            clock += 1
            free[block.bytes, default: []].append(Block(pointer: block.pointer, bytes: block.bytes, stamp: clock))
            cachedBytes += block.bytes
            return out
        }
        for b in unmapped { StoragePool.unmap(b) }
    }

    /// A new mapping of `bytes` (a multiple of the page size for every size class from `mappedFrom` on).
    private static func map(_ bytes: Int) -> Block {
        guard mapsBlocks else {
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            p.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            return Block(pointer: p, bytes: bytes, fresh: true)
        }
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | mapAnonymous, -1, 0),
              p != UnsafeMutableRawPointer(bitPattern: -1) else {
            // Out of address space or memory: the same outcome as malloc's failure, with the size named.
            fatalError("TensorStorage: cannot map \(bytes) bytes (errno \(errno))")
        }
        return Block(pointer: p, bytes: bytes, fresh: true)
    }

    private static func unmap(_ block: Block) {
        guard mapsBlocks else { return block.pointer.deallocate() }
        munmap(block.pointer, block.bytes)
    }

    #if canImport(Glibc)
    private static let mapAnonymous = MAP_ANONYMOUS
    #else
    private static let mapAnonymous = MAP_ANON
    #endif
}

#if canImport(Glibc)
/// glibc's `malloc_trim` (declared in malloc.h, which the Glibc module does not export).
@_silgen_name("malloc_trim") func glibcMallocTrim(_ pad: Int) -> Int32
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An n-dimensional array of Float32, row-major and contiguous, with value semantics (copy on write).
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    public private(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage

    /// Number of elements.
    public var count: Int { storage.count }
    public var rank: Int { shape.count }

    /// Zeros of the given shape.
    public init(zeros shape: [Int]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(shape) }
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *))
    }

    /// Zeros of the given shape, from `pool` (an engine's storage; nil: straight from the system).
    package init(zeros shape: [Int], pool: StoragePool?) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(shape) }
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *), zeroed: true, pool: pool)
    }

    /// A tensor whose values are left as they are in memory: only for outputs an op writes in full.
    package init(uninitialized shape: [Int], pool: StoragePool?) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(shape) }
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *), zeroed: false, pool: pool)
    }

    /// A tensor filled with `value`.
    public init(shape: [Int], repeating value: Float) throws {
        try self.init(zeros: shape)
        storage.pointer.update(repeating: value, count: count)
    }

    /// A tensor holding `values` in row-major order; their number must match the shape.
    public init(shape: [Int], values: [Float]) throws {
        try self.init(zeros: shape)
        guard values.count == count else {
            throw TensorError.countMismatch(shape: shape, expected: count, got: values.count)
        }
        values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: count) }
    }

    /// Zeros; for shapes known to be valid (stops with a message otherwise).
    package static func zeros(_ shape: Int...) -> Tensor {
        do { return try Tensor(zeros: shape) } catch { fatalError("\(error)") }
    }

    /// The values, row-major.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: count)) }

    /// Reads the buffer without copying.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Writes the buffer; copies first if the storage is shared with another tensor.
    @inlinable
    package mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    @usableFromInline
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(count: storage.count, zeroed: false, pool: storage.pool)
            copy.pointer.update(from: storage.pointer, count: storage.count)
            storage = copy
        }
    }

    /// The same values under another shape with the same number of elements (shares storage).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(newShape) }
        guard newShape.reduce(1, *) == count else { throw TensorError.reshapeMismatch(from: shape, to: newShape) }
        var t = self
        t.shape = newShape
        return t
    }

    /// Element at a multi-index (bounds-checked; for tests and small tools, not for kernels).
    public subscript(_ index: Int...) -> Float {
        get { storage.pointer[flatIndex(index)] }
        set {
            let i = flatIndex(index)
            makeUnique()
            storage.pointer[i] = newValue
        }
    }

    func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) has rank \(index.count), tensor has shape \(shape)")
        var flat = 0
        for (i, (x, n)) in zip(index, shape).enumerated() {
            precondition(x >= 0 && x < n, "index \(index) out of range for shape \(shape) (axis \(i))")
            flat = flat * n + x
        }
        return flat
    }

    public var description: String {
        let head = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(head)\(count > 8 ? ", ..." : "")])"
    }
}

extension Tensor {
    /// Matrix product of two rank-2 tensors, optionally transposed: op(a) (m, k) x op(b) (k, n), with the
    /// kernel context given (default: one thread, a scratch pool of its own).
    package static func matmul(
        _ a: Tensor, _ b: Tensor, transposeA ta: Bool = false, transposeB tb: Bool = false,
        context: KernelContext = KernelContext(threads: 1)
    ) throws -> Tensor {
        guard a.rank == 2, b.rank == 2 else {
            throw TensorError.incompatibleShapes(operation: "matmul needs two matrices", a.shape, b.shape)
        }
        let (m, k) = ta ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (k2, n) = tb ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == k2 else {
            throw TensorError.incompatibleShapes(
                operation: "matmul\(ta ? " (a transposed)" : "")\(tb ? " (b transposed)" : ""): inner sizes \(k) != \(k2)",
                a.shape, b.shape)
        }
        var c = try Tensor(zeros: [m, n])
        c.withUnsafeMutableBufferPointer { cp in
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    sgemm(c: cp.baseAddress!, ldc: max(1, n),
                          a: ap.baseAddress!, lda: max(1, a.shape[1]), transA: ta,
                          b: bp.baseAddress!, ldb: max(1, b.shape[1]), transB: tb,
                          m: m, n: n, k: k, context: context)
                }
            }
        }
        return c
    }
}

/// The product of `dims` (an element or byte count), or nil when it overflows Int: for sizes read from files,
/// which must be checked before anything is allocated.
package func checkedProduct(_ dims: [Int]) -> Int? {
    var n = 1
    for d in dims {
        let (r, overflow) = n.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        n = r
    }
    return n
}

/// The sum of `values`, or nil when one is nil or the sum overflows `Int`.
package func checkedSum(_ values: [Int?]) -> Int? {
    var n = 0
    for v in values {
        guard let v else { return nil }
        let (r, overflow) = n.addingReportingOverflow(v)
        if overflow { return nil }
        n = r
    }
    return n
}
