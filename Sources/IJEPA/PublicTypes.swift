import ImageData
import JEPA
import TensorCore
import TorchImport

// The types of the layers under IJEPA that its API is made of, named here so that one `import IJEPA` reaches them
// and its documentation lists them (DocC does not document re-exported modules).

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

/// Mask settings that cannot make masks on the model's grid (the message names the `mask.` key).
public typealias MaskConfigError = JEPA.MaskConfigError

/// An image file, a folder of images or an IDX file that cannot be read: the path and the problem.
public typealias ImageDataError = ImageData.ImageDataError

/// An official PyTorch checkpoint (a `torch.save` zip) that cannot be read: the path and the problem.
public typealias TorchCheckpointError = TorchImport.TorchCheckpointError

/// A safetensors file (a checkpoint of this engine, or features) that cannot be read or written.
public typealias SafeTensorsError = TensorCore.SafeTensorsError

/// A tensor shape or value count that does not fit, e.g. `Tensor(shape:values:)` with the wrong count.
public typealias TensorError = TensorCore.TensorError
