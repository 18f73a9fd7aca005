import CPUKernels
import Foundation
import ImageData
import JEPA
import NNLayers
import TensorCore

/// A trained I-JEPA encoder that turns images into feature vectors:
///
/// ```swift
/// let encoder = try Encoder(checkpoint: "runs/fashion-mnist/checkpoint.safetensors")
/// let features = try encoder.embed([try Image(contentsOfFile: "shoe.png")])  // (1, 192)
/// ```
///
/// It reads only the network it needs from a checkpoint (no optimizer, no predictor, no data set) and runs it
/// without autograd. Images are converted to the encoder's channels and normalised exactly as the training
/// run's evaluation transform does (see `Preprocessing`). An `Encoder` never changes after `init`, so one
/// instance may embed from several tasks or threads at once.
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
    /// Images per forward pass (the work is cut into chunks of this many; results do not depend on it).
    public var batchSize = 64
    let vit: VisionTransformer

    /// Width of one output token (and of `.pooled` features).
    public var dimension: Int { architecture.embedDim }

    /// Loads an encoder from a checkpoint written by `ijepa train` (any format version; the configuration it
    /// carries gives the architecture and the preprocessing), or from a safetensors state dict with the
    /// `encoder.` / `target_encoder.` names plus `config`, the path of its training configuration (JSON, as
    /// `ijepa train` writes to `config.json`).
    public convenience init(checkpoint path: String, network: Network = .target, config: String? = nil) throws {
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
        let settings = try TrainingSettings(json: configText, source: config ?? path)
        let prefix = network.prefix
        let arch = try inferArchitecture(shape: { file.shape(of: prefix + $0) }, heads: settings.heads, file: path,
                                         prefix: prefix)
        try self.init(architecture: arch, preprocessing: settings.preprocessing(channels: arch.inChannels, size: arch.imageSize),
                      network: network, source: path,
                      shape: { file.shape(of: $0) }, tensor: { try file.tensor($0) })
    }

    /// An encoder of `architecture` whose parameters come from `tensor(name)`, names in full (the network's
    /// prefix, then the official state-dict name).
    init(architecture: ViTConfig, preprocessing: Preprocessing, network: Network, source: String,
         shape: (String) -> [Int]?, tensor: (String) throws -> Tensor) throws {
        var rng = RandomGenerator(seed: 0)  // the initial values are all overwritten by the checkpoint's
        vit = try VisionTransformer(architecture, rng: &rng)
        try loadParameters(vit.namedParameters, shape: shape, tensor: tensor, prefix: network.prefix, file: source)
        self.architecture = architecture
        self.preprocessing = preprocessing
        self.network = network
        self.source = source
    }

    /// Features of `images`, one row per image, in order (see `Output`); any number of images, processed in
    /// chunks of `batchSize`.
    public func embed(_ images: [Image], output: Output = .pooled) throws -> Tensor {
        let n = images.count, d = dimension, tokens = architecture.tokens
        let layers: Int
        switch output {
        case .pooled, .patchTokens: layers = 1
        case .lastLayers(let k):
            guard k >= 1 && k <= architecture.depth else {
                throw TensorError.incompatibleShapes(operation: "Encoder.embed: lastLayers(k) needs k in 1...depth", [k], [architecture.depth])
            }
            layers = k
        }
        let width = output == .patchTokens ? tokens * d : layers * d
        var out = try Tensor(zeros: output == .patchTokens ? [n, tokens, d] : [n, layers * d])
        var start = 0
        while start < n {
            let end = min(start + max(batchSize, 1), n)
            let x = Variable(try inputTensor(images[start..<end]))
            let blocks = try vit.lastBlockOutputs(x, count: layers)  // (b, N, D) each, last block first
            let rows = try output == .patchTokens ? blocks.map(\.value) : blocks.map { try meanTokens($0, tape: nil).value }
            let per = output == .patchTokens ? tokens * d : d
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
            Parallel.forEach(tasks: list.count) { k, _ in
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
        return Encoder.Preprocessing(size: size, channels: channels, mean: a.mean, std: a.std, resize: .stretch)
    }
}

/// The architecture of the encoder whose official state-dict shapes `shape` gives: width, channels and patch
/// from `patch_embed.proj.weight` (D, C, P, P), the grid from `pos_embed` ((1, N, D) or (N, D)), depth from the
/// `blocks.i` present, MLP ratio from `blocks.0.mlp.fc1.weight`. Heads cannot be seen in the shapes: `heads`,
/// else the official preset for that width.
func inferArchitecture(shape: (String) -> [Int]?, heads: Int?, file: String, prefix: String) throws -> ViTConfig {
    func fail(_ problem: String) -> SafeTensorsError { SafeTensorsError(path: file, problem: problem) }
    guard let pw = shape("patch_embed.proj.weight"), pw.count == 4, pw[2] == pw[3], pw[2] > 0 else {
        throw fail("no encoder under '\(prefix)': '\(prefix)patch_embed.proj.weight' is missing or not (D, C, P, P)")
    }
    let (d, c, p) = (pw[0], pw[1], pw[2])
    guard let pos = shape("pos_embed"), pos.last == d, let n = pos.dropLast().last, n > 0 else {
        throw fail("'\(prefix)pos_embed' is missing or not (1, N, \(d))")
    }
    let grid = Int(Double(n).squareRoot().rounded())
    guard grid * grid == n else { throw fail("'\(prefix)pos_embed' has \(n) positions, not a square grid") }
    var depth = 0
    while shape("blocks.\(depth).norm1.weight") != nil { depth += 1 }
    var ratio = 4
    if depth > 0 {
        guard let fc1 = shape("blocks.0.mlp.fc1.weight"), fc1.count == 2, fc1[1] == d, fc1[0] % d == 0 else {
            throw fail("'\(prefix)blocks.0.mlp.fc1.weight' is missing or its width is not a multiple of \(d) (an MLP ratio this engine does not build, e.g. ViT-g's 48/11)")
        }
        ratio = fc1[0] / d
    }
    guard let h = heads ?? ViTConfig.officialHeads(width: d) else {
        throw fail("width \(d) is no official preset's: give the number of heads")
    }
    let config = ViTConfig(imageSize: grid * p, patchSize: p, inChannels: c, embedDim: d, depth: depth, heads: h, mlpRatio: ratio)
    do { try config.validate() } catch { throw fail("inferred architecture \(config) is not valid: \(error)") }
    return config
}
