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
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Zero-filled storage of `count` floats (64-byte aligned: a cache line, and an AVX-512 vector).
    public convenience init(count: Int) { self.init(count: count, zeroed: true) }

    /// Storage from the reuse pool; `zeroed: false` leaves the old contents (for outputs written in full).
    init(count: Int, zeroed: Bool) {
        precondition(count >= 0, "TensorStorage: negative count \(count)")
        pointer = StoragePool.shared.take(bytes: max(64, count * 4)).bindMemory(to: Float.self, capacity: max(16, count))
        if zeroed { pointer.update(repeating: 0, count: count) }
        self.count = count
    }

    deinit { StoragePool.shared.give(UnsafeMutableRawPointer(pointer), bytes: max(64, count * 4)) }

    /// Returns the memory that freed tensors left for reuse to the system (it is otherwise kept, up to 32 MiB,
    /// for the next tensors of the same sizes).
    public static func releaseCachedMemory() {
        StoragePool.shared.drain()
        #if canImport(Glibc)
        _ = glibcMallocTrim(0)  // glibc keeps freed heap memory (large blocks move off mmap after the first free)
        #endif
    }
}

/// Keeps freed tensor memory for reuse by the next tensor of the same size. A training step allocates the
/// same activation and gradient sizes every time; without the pool each large block came fresh from mmap and
/// was page-faulted in again (with its zero-fill, 11 % of a ViT-Tiny training step).
final class StoragePool: @unchecked Sendable {
    static let shared = StoragePool()
    private let lock = PThreadLock()
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var cachedBytes = 0
    /// Idle memory kept at most; beyond it blocks go back to the system (to malloc, whose own free lists
    /// serve the next blocks). Measured on the I-JEPA step bench (2 threads, same run): a 2 GiB cap gave peak RSS
    /// 831 MiB (Fashion-MNIST model) and 4047 MiB (ViT-S/16), 256 MiB 461 and 2536 MiB at the same speed. Once
    /// the tape freed activations during the backward pass (2026-11-30), 192 MiB of idle blocks only sat on
    /// memory that malloc would have reused: `bench ijepa`, 3 alternating runs per setting, Zen 4 VM, 32 MiB
    /// against 192: (a) 137.7 against 135.0 images/s at 1 thread (RSS 262 against 397 MiB), 242.7 against 241.6
    /// at 2 (280 against 401 MiB); (b) 1532 against 1626 MiB at the same speed; ViT-Tiny's training step equal.
    /// No pool at all was as fast for training but 5 % slower for ViT-Tiny's forward pass (126 against 133
    /// images/s), which reuses a few blocks of the same sizes over and over.
    let capacityBytes = 32 << 20

    /// Pooled blocks come in size classes, 8 per octave (at most 12.5 % slack): an I-JEPA step's shapes change
    /// with the mask sizes every step, and exact-size keys let idle blocks of ever new sizes pile up to the cap
    /// (1.6 GiB RSS for a ViT-Tiny run whose working set is a fraction of that).
    @inline(__always)
    static func sizeClass(_ bytes: Int) -> Int {
        guard bytes >= 1 << 16 else { return bytes }
        let step = (1 << (Int.bitWidth - 1 - bytes.leadingZeroBitCount)) >> 3
        return (bytes + step - 1) / step * step
    }

    func take(bytes requested: Int) -> UnsafeMutableRawPointer {
        let bytes = StoragePool.sizeClass(requested)
        if bytes >= 1 << 16, let p = lock.with({ () -> UnsafeMutableRawPointer? in
            // Exact class first, then up to `spareClasses` larger ones: the mask sizes change every step, and
            // an idle block one class up serves a request better than a new block (which the cap may then
            // keep idle too). A larger block returned under the smaller class stays correct: every block in a
            // bucket holds at least that many bytes.
            var c = bytes
            for _ in 0...StoragePool.spareClasses {
                if let p = free[c]?.popLast() {
                    cachedBytes -= c  // what `give` added for this bucket
                    return p
                }
                c = StoragePool.sizeClass(c + 1)
            }
            return nil
        }) {
            return p
        }
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    }

    /// Larger size classes `take` may use (each 12.5 % up).
    static let spareClasses = 2

    /// Returns every cached block to the system.
    func drain() {
        let blocks = lock.with { () -> [UnsafeMutableRawPointer] in
            let all = free.values.flatMap { $0 }
            free.removeAll()
            cachedBytes = 0
            return all
        }
        for p in blocks { p.deallocate() }
    }

    func give(_ p: UnsafeMutableRawPointer, bytes requested: Int) {
        let bytes = StoragePool.sizeClass(requested)
        // Small blocks are cheap for malloc; only pool the ones that would come from mmap.
        let kept = bytes >= 1 << 16 && lock.with { () -> Bool in
            guard cachedBytes + bytes <= capacityBytes else { return false }
            free[bytes, default: []].append(p)
            cachedBytes += bytes
            return true
        }
        if !kept { p.deallocate() }
    }
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

    /// A tensor whose values are left as they are in memory: only for outputs an op writes in full.
    package init(uninitialized shape: [Int]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(shape) }
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *), zeroed: false)
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
    public static func zeros(_ shape: Int...) -> Tensor {
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
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    @usableFromInline
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(count: storage.count, zeroed: false)
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
    /// Matrix product of two rank-2 tensors, optionally transposed: op(a) (m, k) x op(b) (k, n).
    public static func matmul(
        _ a: Tensor, _ b: Tensor, transposeA ta: Bool = false, transposeB tb: Bool = false, threads: Int? = nil
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
                          m: m, n: n, k: k, threads: threads)
                }
            }
        }
        return c
    }
}

/// The product of `dims` (an element or byte count), or nil when it overflows Int: for sizes read from files,
/// which must be checked before anything is allocated.
public func checkedProduct(_ dims: [Int]) -> Int? {
    var n = 1
    for d in dims {
        let (r, overflow) = n.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        n = r
    }
    return n
}

/// The sum of `values`, or nil when one is nil or the sum overflows `Int`.
public func checkedSum(_ values: [Int?]) -> Int? {
    var n = 0
    for v in values {
        guard let v else { return nil }
        let (r, overflow) = n.addingReportingOverflow(v)
        if overflow { return nil }
        n = r
    }
    return n
}
