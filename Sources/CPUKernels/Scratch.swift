#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// 64-byte-aligned scratch memory, reused across calls.
///
/// Packing buffers of a GEMM are a few MiB; allocating them per call would page-fault every call (a fresh
/// mmap'd 4 MiB block costs ~1000 page faults). The pool hands out blocks and takes them back.
///
/// Each `KernelContext` owns one (kernels borrow from the context they run with).
public final class ScratchPool: @unchecked Sendable {
    public init() {}

    deinit { for b in free { b.pointer.deallocate() } }  // the idle buffers (borrowed ones hold the pool alive)

    private struct Block { var pointer: UnsafeMutableRawPointer; var bytes: Int }
    private var free: [Block] = []  // guarded by `lock`
    private let lock = PThreadLock()
    private let keep = 16

    /// Frees the idle buffers (those borrowed now go back to the pool as usual).
    public func release() {
        let blocks = lock.with { () -> [Block] in
            defer { free.removeAll() }
            return free
        }
        for b in blocks { b.pointer.deallocate() }
    }

    /// Borrows at least `floats` floats of 64-byte-aligned memory for the duration of `body`.
    public func withFloats<R>(_ floats: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let bytes = max(64, floats * MemoryLayout<Float>.stride)
        let block = take(bytes)
        defer { give(block) }
        return try body(block.pointer.bindMemory(to: Float.self, capacity: block.bytes / 4))
    }

    private func take(_ bytes: Int) -> Block {
        let found: Block? = lock.with {
            var best = -1
            for (i, b) in free.enumerated() where b.bytes >= bytes {
                if best < 0 || b.bytes < free[best].bytes { best = i }
            }
            return best >= 0 ? free.remove(at: best) : nil
        }
        if let found { return found }
        // Round up so that slightly different sizes reuse the same block.
        let rounded = (bytes + 65535) & ~65535
        return Block(pointer: UnsafeMutableRawPointer.allocate(byteCount: rounded, alignment: 64), bytes: rounded)
    }

    private func give(_ block: Block) {
        let evicted: Block? = lock.with {
            free.append(block)
            if free.count > keep {
                // Drop the smallest: big blocks are the expensive ones to fault in again.
                let i = free.indices.min { free[$0].bytes < free[$1].bytes }!
                return free.remove(at: i)
            }
            return nil
        }
        evicted?.pointer.deallocate()
    }
}

/// A mutex over pthread_mutex_t, for the pools. Not the standard library's `Mutex`: that one is built on
/// atomics and futexes inside the (uninstrumented) standard library, so ThreadSanitizer sees no ordering through
/// it and reported the pool's guarded array as raced; pthread locks are intercepted and understood.
package final class PThreadLock: @unchecked Sendable {
    private let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    package init() { pthread_mutex_init(m, nil) }
    deinit { pthread_mutex_destroy(m); m.deallocate() }
    @inline(__always) package func with<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}
