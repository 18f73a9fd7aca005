import ImageData
import TensorCore

/// The images a ``TrainingRun`` trains on, in memory, decoded and resized to the model's input once: the
/// training split of the data set a configuration names, or an app's own ``Image`` values.
///
/// Pixels are kept as bytes (`count` x `size` x `size` x `channels`); each step's batch is cropped, flipped and
/// normalised from them as the configuration's `data` section says (the official RandomResizedCrop).
public struct TrainingImages: Sendable {
    package let dataset: ImageDataset

    package init(_ dataset: ImageDataset) { self.dataset = dataset }

    /// The number of images.
    public var count: Int { dataset.count }
    /// Side of the stored (square) images in pixels.
    public var size: Int { dataset.width }
    /// 1 (gray) or 3 (RGB).
    public var channels: Int { dataset.channels }
    /// The data set's name, as the run's first line prints it.
    public var name: String { dataset.name }

    /// The training split of the data set `config.data` names: Fashion-MNIST, a folder of IDX files, or a folder
    /// of class folders of PNGs (resized to `data.crop_size`, decoded on the `engine`'s threads). Throws an error
    /// naming the file or key at fault.
    public init(config: TrainingConfig, engine: Engine = Engine()) throws {
        dataset = try loadDatasets(config, threads: engine.threads).train
    }

    /// `images` converted to `channels` (1: gray, 3: RGB; alpha dropped) and resized to `size` x `size` exactly as
    /// a folder of PNGs loads (`data.dataset = "image-folder"`: the whole image, bilinear, aspect ratio not kept),
    /// so a run on these values has the bits of a run on the same PNGs in a folder. `labels` (one class index per
    /// image, optional) only matter to the probes. Decoding runs on the `engine`'s threads; the first bad image is
    /// reported by its name.
    public init(_ images: [Image], size: Int, channels: Int, labels: [Int]? = nil, name: String = "images",
                engine: Engine = Engine()) throws {
        guard !images.isEmpty else { throw ConfigError(source: name, problem: "no images to train on") }
        guard size > 0 else { throw ConfigError(source: name, problem: "image size must be positive (got \(size))") }
        guard channels == 1 || channels == 3 else {
            throw ConfigError(source: name, problem: "channels must be 1 or 3 (got \(channels))")
        }
        let labels = labels ?? [Int](repeating: 0, count: images.count)
        guard labels.count == images.count else {
            throw ConfigError(source: name, problem: "\(labels.count) labels for \(images.count) images")
        }
        guard let top = labels.max(), labels.allSatisfy({ $0 >= 0 }) else {
            throw ConfigError(source: name, problem: "labels must be class indices 0, 1, 2, ...")
        }
        dataset = try ImageDataset.resizing(
            count: images.count, size: size, channels: channels, name: name, labels: labels,
            classNames: (0...top).map(String.init), threads: engine.threads, source: { images[$0].name }
        ) { i in try images[i].decoded(channels: channels) }
    }
}
