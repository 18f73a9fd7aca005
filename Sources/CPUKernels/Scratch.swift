import Synchronization

/// 64-byte-aligned scratch memory, reused across calls.
///
/// Packing buffers of a GEMM are a few MiB; allocating them per call would page-fault every call (a fresh
/// mmap'd 4 MiB block costs ~1000 page faults). The pool hands out blocks and takes them back.
public final class ScratchPool: @unchecked Sendable {
    public static let shared = ScratchPool()

    private struct Block { var pointer: UnsafeMutableRawPointer; var bytes: Int }
    private let free = Mutex<[Block]>([])
    private let keep = 16

    /// Borrows at least `floats` floats of 64-byte-aligned memory for the duration of `body`.
    public func withFloats<R>(_ floats: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let bytes = max(64, floats * MemoryLayout<Float>.stride)
        let block = take(bytes)
        defer { give(block) }
        return try body(block.pointer.bindMemory(to: Float.self, capacity: block.bytes / 4))
    }

    private func take(_ bytes: Int) -> Block {
        let found: Block? = free.withLock { blocks in
            var best = -1
            for (i, b) in blocks.enumerated() where b.bytes >= bytes {
                if best < 0 || b.bytes < blocks[best].bytes { best = i }
            }
            return best >= 0 ? blocks.remove(at: best) : nil
        }
        if let found { return found }
        // Round up so that slightly different sizes reuse the same block.
        let rounded = (bytes + 65535) & ~65535
        return Block(pointer: UnsafeMutableRawPointer.allocate(byteCount: rounded, alignment: 64), bytes: rounded)
    }

    private func give(_ block: Block) {
        let evicted: Block? = free.withLock { blocks in
            blocks.append(block)
            if blocks.count > keep {
                // Drop the smallest: big blocks are the expensive ones to fault in again.
                let i = blocks.indices.min { blocks[$0].bytes < blocks[$1].bytes }!
                return blocks.remove(at: i)
            }
            return nil
        }
        evicted?.pointer.deallocate()
    }
}
