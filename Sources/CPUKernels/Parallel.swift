import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one parallel-for of the engine.
///
/// Work is cut into `tasks` pieces by the caller, from the problem size alone, never from the thread count, so
/// every output element is computed the same way whatever the number of threads (bit-identical results).
/// Workers take tasks on demand from a shared counter: with more tasks than threads, a worker that gets
/// descheduled by another process on the machine delays only its current task, not a static share (static
/// shares, as numpy's BLAS and PyTorch use, ran slower at 2 threads than at 1 under such load).
public enum Parallel {
    /// Number of hardware threads available to this process.
    public static var hardwareThreads: Int {
        #if canImport(Glibc)
        let n = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return max(1, n)
        #else
        return max(1, Int(sysconf(_SC_NPROCESSORS_ONLN)))
        #endif
    }

    /// Runs `body(task, worker)` for every task in `0..<tasks`, on up to `threads` workers (kernels go through
    /// `KernelContext.forEach`, which counts the regions it opens).
    ///
    /// `worker` is in `0..<min(threads, tasks)` and is stable for the duration of one task, so callers can give
    /// each worker its own scratch buffer. Serial when `threads <= 1` or there is a single task.
    @inline(__always)
    public static func forEach(
        tasks: Int, threads: Int, _ body: (_ task: Int, _ worker: Int) -> Void
    ) {
        let t = min(threads, tasks)
        if t <= 1 {
            for i in 0..<tasks { body(i, 0) }
            return
        }
        let next = TaskCounter()
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: t) { worker in
                while true {
                    let i = next.take()
                    if i >= tasks { break }
                    body(i, worker)
                }
            }
        }
    }

    /// Splits `count` items into contiguous chunks of at least `minChunk` items and at most `maxChunks` chunks.
    /// The split depends on `count` only (determinism).
    @inline(__always)
    public static func chunking(count: Int, minChunk: Int, maxChunks: Int = 16) -> (chunks: Int, size: Int) {
        if count <= 0 { return (0, 0) }
        let byWork = max(1, count / max(1, minChunk))
        let chunks = min(maxChunks, byWork)
        let size = (count + chunks - 1) / chunks
        return ((count + size - 1) / size, size)
    }
}

private final class TaskCounter: @unchecked Sendable {
    let value = Atomic<Int>(0)
    @inline(__always) func take() -> Int { value.add(1, ordering: .relaxed).oldValue }
}
