import CPUKernels

/// How the engine runs a model: the kernel context (threads, GEMM blocking, scratch memory), the fusion policy
/// of the transformer blocks, and the profiler that records each op, if any. It travels with the tape of
/// every forward pass (`Tape(engine)`), so two parts of one program can run models with different settings at
/// the same time; nothing of it is kept in a global.
///
/// A value with reference members: copies share the tensor storage pool, the kernel context's scratch pool and
/// region counter, and the profiler.
public struct Engine: Sendable {
    /// Threads, GEMM blocking and scratch memory of every kernel the ops call.
    public var kernels: KernelContext
    /// Where the ops' outputs and gradients come from and go back to (`StoragePool`).
    package let storage: StoragePool
    /// The ops' per-op profiler (`OpProfiler`); nil: no profiling.
    public var profiler: OpProfiler?
    /// Transformer blocks take their LayerNorms inside the next GEMM's packing (true) or run them as their own
    /// ops (false): the same bits, so `bench ijepa --ab` can switch from one step to the next.
    public var fusedNorms = true
    /// The MLP's GELU inside fc2's packing (true) or as its own op (false): the same bits.
    public var fusedGELU = true
    /// Attention keeps its probabilities for the backward pass (true) or recomputes them there (false, the
    /// default, less memory): the same bits.
    public var attentionKeepsProbabilities = false
    /// Activation checkpointing of every transformer block a recording tape runs (`recomputed`): each block
    /// keeps only its input for the backward pass and runs again there. The same results with far less memory
    /// (ViT-S/16's I-JEPA step: peak RSS 2387 -> 1453 MiB) for a step 15-20 % slower (docs/performance.md).
    public var recomputeBlocks = false

    /// An engine on `threads` threads (default: every hardware thread), fused blocks, no profiler.
    public init(threads: Int = Parallel.hardwareThreads) {
        kernels = KernelContext(threads: threads)
        storage = StoragePool()
    }

    /// Gives the memory this engine keeps for reuse (idle tensor blocks, scratch buffers) back to the system.
    public func releaseMemory() {
        kernels.scratch.release()
        storage.release()
    }

    /// This engine on `threads` threads (same scratch memory and profiler).
    public func with(threads: Int) -> Engine {
        var e = self
        e.kernels.threads = threads
        return e
    }

    /// Threads its kernels may use.
    public var threads: Int {
        get { kernels.threads }
        set { kernels.threads = newValue }
    }
}
