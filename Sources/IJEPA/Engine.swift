import TensorCore

/// How forward passes run: the threads and kernel settings (GEMM blocking, scratch memory), the fusion policy
/// and an optional per-op profiler. An ``Encoder`` runs on its ``Encoder/engine``; nothing of it is global,
/// so encoders with different engines run side by side.
public typealias Engine = TensorCore.Engine
