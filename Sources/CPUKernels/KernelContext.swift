import Synchronization

/// How kernels run: the threads they may use, the GEMM blocking, the scratch memory they borrow, and a count of
/// the parallel regions they opened. Every kernel takes one; the engine keeps no such setting in a global, so
/// two parts of one program can run kernels with different settings at the same time.
///
/// A value with reference members: copies share the scratch pool and the region counter (`with(threads:)`
/// keeps both; `init` makes new ones).
public struct KernelContext: Sendable {
    /// Threads a kernel may use (at least 1). Kernels cut work by problem size alone, so results do not depend
    /// on it; small problems run on fewer.
    public var threads: Int {
        didSet { threads = max(1, threads) }
    }
    /// The GEMM's blocking (`GEMMBlocking`): KC changes where partial sums are rounded (results), the rest speed.
    @_spi(Tuning) public var blocking: GEMMBlocking.Tuning
    /// The GEMM's KC under this context (what an operand packed ahead must match).
    package var gemmKC: Int { blocking.kc }
    /// Scratch memory the kernels borrow (packed GEMM panels, per-worker buffers).
    public let scratch: ScratchPool
    /// Parallel regions kernels opened with this context.
    public let regions: RegionCounter
    /// The threads that run those regions (shared by copies, like the scratch pool).
    let workers: WorkerPool

    /// A context for `threads` threads (default: every hardware thread) with its own scratch pool and counter.
    public init(threads: Int = Parallel.hardwareThreads) {
        self.threads = max(1, threads)
        blocking = GEMMBlocking.Tuning()
        scratch = ScratchPool()
        regions = RegionCounter()
        workers = WorkerPool()
    }

    /// This context on `threads` threads (same scratch pool and counter).
    public func with(threads: Int) -> KernelContext {
        var c = self
        c.threads = threads
        return c
    }

    /// `Parallel.forEach`'s contract on up to `threads` (default: the context's) workers, run by the context's
    /// `WorkerPool`, counting the region when it runs on more than one.
    @inline(__always)
    public func forEach(tasks: Int, threads: Int? = nil, _ body: (_ task: Int, _ worker: Int) -> Void) {
        let t = min(threads ?? self.threads, tasks)
        if t <= 1 {
            for i in 0..<tasks { body(i, 0) }
            return
        }
        regions.add()
        workers.run(tasks: tasks, workers: t, body)
    }
}

/// A count shared by the copies of a `KernelContext`.
public final class RegionCounter: Sendable {
    private let value = Atomic<Int>(0)
    public init() {}
    /// Regions counted so far.
    public var count: Int { value.load(ordering: .relaxed) }
    @inline(__always) func add() { value.add(1, ordering: .relaxed) }
}
