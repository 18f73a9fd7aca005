import JEPA
import TensorCore

/// How forward passes and training steps run: the threads and kernel settings (GEMM blocking, scratch memory),
/// the fusion policy, recomputation, an optional per-op profiler, and the pool of tensor memory it owns
/// (`releaseMemory()` gives it back). An ``Encoder`` runs on its ``Encoder/engine``, a ``TrainingRun`` on the one
/// it was made with; nothing of it is global, so two engines with different settings run side by side.
public typealias Engine = TensorCore.Engine

/// A row-major Float32 tensor: `shape`, `scalars`, `subscript(_:)`, `init(shape:values:)`. ``Encoder`` returns
/// features as one, (images, dimension) for pooled features.
public typealias Tensor = TensorCore.Tensor

/// Reads and writes safetensors files (the format of this engine's checkpoints), e.g. to keep features.
public typealias SafeTensors = TensorCore.SafeTensors

/// A safetensors file opened by its header alone: names, shapes and metadata, then one tensor at a time.
public typealias SafeTensorsFile = TensorCore.SafeTensorsFile

/// The Vision Transformer's architecture (image and patch size, width, depth, heads), the official presets.
public typealias ViTConfig = JEPA.ViTConfig

/// The multi-block mask sampler's settings, the `mask` section of a ``TrainingConfig`` (official key names).
public typealias MaskConfig = JEPA.MaskConfig
