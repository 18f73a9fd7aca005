import CPUKernels
import Foundation
import ImageData
import JEPA
import NNLayers
import TensorCore
import TorchImport

/// A trained I-JEPA encoder that turns images into feature vectors:
///
/// ```swift
/// let encoder = try Encoder(checkpoint: "runs/fashion-mnist/checkpoint.safetensors")
/// let features = try encoder.embed([try Image(contentsOfFile: "shoe.png")])  // (1, 192)
/// ```
///
/// It reads only the network it needs from a checkpoint (no optimizer, no predictor, no data set) and runs it
/// without autograd. Images are converted to the encoder's channels and normalised exactly as the training
/// run's evaluation transform does (see `Preprocessing`). Its weights never change after `init`, so one
/// instance may embed from several tasks or threads at once (`batchSize` aside: set it before sharing).
public final class Encoder: @unchecked Sendable {  // immutable after init; forward passes only read the weights
    /// Which encoder of an I-JEPA checkpoint: the EMA target encoder (what the paper evaluates) or the context
    /// encoder trained by gradient descent.
    public enum Network: String, Sendable, CaseIterable {
        case target, context
        var prefix: String { self == .target ? "target_encoder." : "encoder." }
    }

    /// What `embed` returns per image.
    public enum Output: Sendable, Equatable {
        /// The average of the output tokens (after the final norm): the paper's probe feature, (n, D).
        case pooled
        /// The average-pooled outputs of the last k blocks, each through the final norm, concatenated last block
        /// first: the paper's other probe feature, (n, k D).
        case lastLayers(Int)
        /// Every output token, (n, N, D), tokens in raster order.
        case patchTokens
    }

    /// How an image becomes the encoder's input tensor.
    public struct Preprocessing: Sendable, Equatable {
        public enum Resize: Sendable, Equatable {
            /// The whole image resized to size x size (aspect ratio not kept): the evaluation transform of our
            /// training runs (`Augmentation.evaluation`).
            case stretch
            /// Shorter side to `shorterSide`, then the centre size x size: the usual ImageNet evaluation
            /// (torchvision `Resize(256)`, `CenterCrop(224)`), for checkpoints trained on ImageNet.
            case centreCrop(shorterSide: Int)
        }
        /// Input size in pixels and channels (1 gray, 3 RGB).
        public var size: Int
        public var channels: Int
        /// Per-channel normalisation of x / 255.
        public var mean: [Float]
        public var std: [Float]
        public var resize: Resize
    }

    public let architecture: ViTConfig
    public let preprocessing: Preprocessing
    public let network: Network
    /// The file the weights came from.
    public let source: String
    /// Images per forward pass (the work is cut into chunks of this many; results do not depend on it). The one
    /// setting that can change after `init`: set it before the encoder is shared between tasks.
    public var batchSize = 64
    /// Threads and kernels of the forward passes (default: every hardware thread). Set it before sharing the
    /// encoder; each `embed` runs on a tape of its own.
    public var engine = Engine()
    let vit: VisionTransformer

    /// Width of one output token (and of `.pooled` features).
    public var dimension: Int { architecture.embedDim }

    /// Loads an encoder from
    /// - a checkpoint written by `ijepa train` or `ijepa import` (any format version; the configuration it
    ///   carries gives the heads and the normalisation);
    /// - a safetensors state dict with the `encoder.` / `target_encoder.` names plus `config`, the path of its
    ///   training configuration (JSON, as `ijepa train` writes to `config.json`);
    /// - an official I-JEPA checkpoint (`torch.save` zip archive, e.g. facebookresearch/ijepa's ViT-H/14), read
    ///   in Swift by `TorchCheckpoint` without running its pickle; `module.` prefixes are handled, the
    ///   preprocessing is the ImageNet evaluation (`Preprocessing.Resize.centreCrop`, shorter side size x 8 / 7,
    ///   ImageNet mean and std, RGB).
    /// The architecture is read from the weights' shapes; `heads` overrides the heads, which shapes do not show
    /// (default: the configuration's, else the official preset for the width).
    public convenience init(checkpoint path: String, network: Network = .target, config: String? = nil,
                            heads: Int? = nil) throws {
        if isTorchSave(path) {
            try self.init(torchCheckpoint: path, network: network, heads: heads)
            return
        }
        let file = try SafeTensorsFile(path: path)
        let configText: String
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else {
                throw SafeTensorsError(path: config, problem: "cannot read the configuration (missing or unreadable)")
            }
            configText = String(decoding: data, as: UTF8.self)
        } else if let text = file.metadata["ijepa.state"] {
            guard let state = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                  let c = state["config"] as? String else {
                throw SafeTensorsError(path: path, problem: "the checkpoint's state record is corrupt (no configuration in it)")
            }
            configText = c
        } else if let c = file.metadata["ijepa.config"] {
            configText = c
        } else {
            throw SafeTensorsError(path: path, problem: "carries no training configuration: pass config: (the run's config.json)")
        }
        var settings = try TrainingSettings(json: configText, source: config ?? path)
        if let p = file.metadata["ijepa.preprocessing"] {  // `ijepa import`: the official checkpoint's evaluation
            guard p.hasPrefix("centre-crop:"), let side = Int(p.dropFirst("centre-crop:".count)), side > 0 else {
                throw SafeTensorsError(path: path, problem: "unknown preprocessing '\(p)' (this build knows centre-crop:<shorter side>)")
            }
            settings.resize = .centreCrop(shorterSide: side)
        }
        let prefix = network.prefix
        let arch = try ViTConfig.inferred(shape: { file.shape(of: prefix + $0) }, heads: heads ?? settings.heads, file: path,
                                         prefix: prefix)
        try ViTConfig.requireFile(path, holds: arch.weightCountLowerBound, bytesEach: 2, what: "the encoder its tensors describe")
        try self.init(architecture: arch, preprocessing: settings.preprocessing(channels: arch.inChannels, size: arch.imageSize),
                      network: network, source: path, prefix: prefix,
                      shape: { file.shape(of: $0) }, read: { try file.read($0, into: $1) })
    }

    /// An official `torch.save` checkpoint: the network's records only are read.
    convenience init(torchCheckpoint path: String, network: Network, heads: Int?) throws {
        let file = try TorchCheckpoint(path: path)
        let prefix = try torchPrefix(file, network: network)
        let arch = try ViTConfig.inferred(shape: { file.shape(of: prefix + $0) }, heads: heads, file: path, prefix: prefix)
        // Shapes are claims (a stride-0 view holds one value for many): the file must be large enough for them.
        try ViTConfig.requireFile(path, holds: arch.weightCountLowerBound, bytesEach: 2, what: "the encoder its tensors describe")
        // ImageNet's mean and std for RGB (the official checkpoints); the gray default for a 1-channel network.
        let a = Augmentation(outputSize: arch.imageSize, channels: arch.inChannels)
        let preprocessing = Preprocessing(size: arch.imageSize, channels: arch.inChannels, mean: a.mean, std: a.std,
                                          resize: .centreCrop(shorterSide: arch.imageSize * 8 / 7))
        try self.init(architecture: arch, preprocessing: preprocessing, network: network, source: path, prefix: prefix,
                      shape: { file.shape(of: $0) }, read: { try file.read($0, into: $1) })
    }

    /// An encoder of `architecture` whose parameters `read(name, into)` writes, names in full (the network's
    /// prefix, then the official state-dict name).
    init(architecture: ViTConfig, preprocessing: Preprocessing, network: Network, source: String, prefix: String,
         shape: (String) -> [Int]?, read: (String, UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
        var rng = RandomGenerator(seed: 0)  // the initial values are all overwritten by the checkpoint's
        vit = try VisionTransformer(architecture, rng: &rng)
        // The position table too, when the file has one: it is the official formula's, but a checkpoint's own
        // copy is what its network was evaluated with (an official EMA target's table may differ in the last bits).
        let table = shape(prefix + "pos_embed") != nil ? [("pos_embed", vit.posEmbed)] : []
        try loadParameters(table + vit.namedParameters, shape: shape, read: read, prefix: prefix, file: source)
        self.architecture = architecture
        self.preprocessing = preprocessing
        self.network = network
        self.source = source
        try vit.prepackLinearWeights(kernels: engine.kernels, releasingValues: true)  // read-only from here on
    }

    /// Features of `images`, one row per image, in order (see `Output`); any number of images, processed in
    /// chunks of `batchSize`.
    public func embed(_ images: [Image], output: Output = .pooled) throws -> Tensor {
        try run(count: images.count, output: output) { try inputTensor(images[$0]) }
    }

    /// The forward passes over `count` inputs in chunks of `batchSize`; `input(range)` makes a chunk's tensor.
    func run(count n: Int, output: Output, input: (Range<Int>) throws -> Tensor) throws -> Tensor {
        let layers: Int
        switch output {
        case .pooled, .patchTokens: layers = 1
        case .lastLayers(let k):
            guard k >= 1 && k <= architecture.depth else {
                throw TensorError.incompatibleShapes(operation: "Encoder.embed: lastLayers(k) needs k in 1...depth", [k], [architecture.depth])
            }
            layers = k
        }
        let rows = try features(count: n, layers: layers, tokens: output == .patchTokens, input: input)
        return output == .patchTokens ? try rows.reshaped([n, architecture.tokens, dimension]) : rows
    }

    /// (n, layers x width): for each input, the outputs of the last `layers` blocks through the final norm, last
    /// block first, each average-pooled (width D) or, with `tokens`, every token in raster order (width N D).
    /// The inputs come from `input(range)` in chunks of `batchSize`. `ijepa probe` and `ijepa embed` extract
    /// their features here too (`encoderFeatures`).
    package func features(count n: Int, layers: Int, tokens: Bool, input: (Range<Int>) throws -> Tensor) throws -> Tensor {
        let per = dimension * (tokens ? architecture.tokens : 1), width = layers * per
        var out = try Tensor(zeros: [n, width])
        var start = 0
        while start < n {
            let end = min(start + max(batchSize, 1), n)
            let x = Variable(try input(start..<end))
            let blocks = try vit.lastBlockOutputs(x, count: layers, engine: engine)  // (b, N, D) each, last block first
            let rows = try tokens ? blocks.map(\.value) : blocks.map { try meanTokens($0, tape: engine.noGrad).value }
            out.withUnsafeMutableBufferPointer { o in
                for (j, r) in rows.enumerated() {
                    r.withUnsafeBufferPointer { src in
                        for i in 0..<(end - start) {
                            (o.baseAddress! + (start + i) * width + j * per).update(from: src.baseAddress! + i * per, count: per)
                        }
                    }
                }
            }
            start = end
        }
        return out
    }

    /// An encoder around a network already in memory (a training run's, a checkpoint's): shares its weights, so
    /// it does not pack them ahead (they may still change).
    package init(_ network: VisionTransformer, preprocessing: Preprocessing, source: String) {
        vit = network
        architecture = network.config
        self.preprocessing = preprocessing
        self.network = .target
        self.source = source
    }

    /// An encoder of `architecture` with the official random initialisation and the ImageNet (3 channels) or
    /// Fashion-MNIST (1 channel) normalisation: for benchmarks, which need the architecture, not trained weights.
    package init(randomWeights architecture: ViTConfig, seed: UInt64 = 1) throws {
        var rng = RandomGenerator(seed: seed).stream(.initialisation)
        vit = try VisionTransformer(architecture, rng: &rng)
        let a = Augmentation(outputSize: architecture.imageSize, channels: architecture.inChannels)
        self.architecture = architecture
        preprocessing = Preprocessing(size: architecture.imageSize, channels: architecture.inChannels, mean: a.mean,
                                      std: a.std, resize: .stretch)
        network = .target
        source = "random weights (seed \(seed))"
        try vit.prepackLinearWeights(kernels: engine.kernels, releasingValues: true)
    }

    /// Features of images already preprocessed: `images` (n, C, S, S) as `Preprocessing` would make them (for
    /// an app with its own pipeline, and for parity checks against other engines on the same input tensors).
    public func embed(preprocessed images: Tensor, output: Output = .pooled) throws -> Tensor {
        let a = architecture
        guard images.shape.count == 4, images.shape[1] == a.inChannels, images.shape[2] == a.imageSize,
              images.shape[3] == a.imageSize else {
            throw TensorError.incompatibleShapes(operation: "Encoder.embed(preprocessed:) needs (n, \(a.inChannels), \(a.imageSize), \(a.imageSize))", images.shape, [])
        }
        return try run(count: images.shape[0], output: output) { range in
            let per = images.count / max(images.shape[0], 1)
            var t = try Tensor(zeros: [range.count] + Array(images.shape.dropFirst()))
            t.withUnsafeMutableBufferPointer { o in
                images.withUnsafeBufferPointer { o.baseAddress!.update(from: $0.baseAddress! + range.lowerBound * per, count: range.count * per) }
            }
            return t
        }
    }

    /// (b, C, S, S): the preprocessed images, each converted on its own thread slot (same bits for any count).
    func inputTensor(_ images: ArraySlice<Image>) throws -> Tensor {
        let p = preprocessing, s = p.size, c = p.channels, per = c * s * s
        let aug = Augmentation(outputSize: s, channels: c, randomResizedCrop: false, mean: p.mean, std: p.std)
        let list = Array(images)
        var decoded = [(width: Int, height: Int, pixels: [UInt8])?](repeating: nil, count: list.count)
        for (i, image) in list.enumerated() { decoded[i] = try image.decoded(channels: c) }
        var t = try Tensor(zeros: [list.count, c, s, s])
        t.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress!
            engine.kernels.forEach(tasks: list.count) { k, _ in
                guard let img = decoded[k] else { return }
                switch p.resize {
                case .stretch:
                    var rng = RandomGenerator(seed: 0)  // not drawn from: no random crop, no flip
                    aug.apply(img.pixels[...], width: img.width, height: img.height, channels: c, rng: &rng, into: base + k * per)
                case .centreCrop(let side):
                    aug.applyCentreCrop(img.pixels, width: img.width, height: img.height, channels: c, resize: side,
                                        into: base + k * per)
                }
            }
        }
        return t
    }
}

/// The few settings of a training configuration (JSON, official section and key names) that an encoder needs:
/// heads, normalisation. Keys left out take the training defaults.
struct TrainingSettings {
    var heads: Int?
    var mean: [Float]
    var std: [Float]
    var resize = Encoder.Preprocessing.Resize.stretch

    init(json: String, source: String) throws {
        guard let root = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw SafeTensorsError(path: source, problem: "the training configuration is not a JSON object")
        }
        let meta = root["meta"] as? [String: Any] ?? [:], data = root["data"] as? [String: Any] ?? [:]
        let numHeads = (meta["num_heads"] as? NSNumber)?.intValue ?? 0
        let model = meta["model_name"] as? String ?? "vit_tiny"
        heads = numHeads > 0 ? numHeads : ViTConfig.presetHeads[model]
        mean = (data["mean"] as? [NSNumber])?.map(\.floatValue) ?? []
        std = (data["std"] as? [NSNumber])?.map(\.floatValue) ?? []
    }

    func preprocessing(channels: Int, size: Int) -> Encoder.Preprocessing {
        let a = Augmentation(outputSize: size, channels: channels, mean: mean.isEmpty ? nil : mean, std: std.isEmpty ? nil : std)
        return Encoder.Preprocessing(size: size, channels: channels, mean: a.mean, std: a.std, resize: resize)
    }
}

/// The prefix of `network` in an official checkpoint: `target_encoder.module.` as `train.py` saves it from
/// DistributedDataParallel, `target_encoder.` without DDP; a bare encoder state dict (no network names at all)
/// is taken as it is, with or without `module.`.
func torchPrefix(_ file: TorchCheckpoint, network: Encoder.Network) throws -> String {
    let wanted = network == .target ? "target_encoder" : "encoder"
    for p in [wanted + ".module.", wanted + ".", "module.", ""] where file.shape(of: p + "patch_embed.proj.weight") != nil {
        if p.hasPrefix(wanted) || (file.shape(of: "target_encoder.module.patch_embed.proj.weight") == nil
                                   && file.shape(of: "target_encoder.patch_embed.proj.weight") == nil
                                   && file.shape(of: "encoder.module.patch_embed.proj.weight") == nil
                                   && file.shape(of: "encoder.patch_embed.proj.weight") == nil) {
            return p
        }
    }
    let roots = Set(file.tensorNames.compactMap { $0.split(separator: ".").first.map(String.init) }).sorted()
    throw TorchCheckpointError(path: file.path, problem: "no \(wanted) in this checkpoint (its entries: \(roots.joined(separator: ", ")))")
}

/// Whether `path` starts as a `torch.save` file does: a zip archive ("PK\u{3}\u{4}"), or the legacy format's
/// pickle protocol 2 and magic number (80 02 8A 0A), which `TorchCheckpoint` refuses with its own message. No
/// safetensors file starts either way (its first 8 bytes are a header length under 100 MB).
func isTorchSave(_ path: String) -> Bool {
    guard let h = FileHandle(forReadingAtPath: path) else { return false }
    defer { try? h.close() }
    let head = [UInt8]((try? h.read(upToCount: 4)) ?? Data())
    return head == [0x50, 0x4B, 0x03, 0x04] || head == [0x80, 0x02, 0x8A, 0x0A]
}
