import CPUKernels
import Foundation
import NNLayers
import TensorCore

/// Shape of a ViT encoder. No cls token, fixed sin-cos positions, LayerNorm eps 1e-6, MLP ratio 4.
public struct ViTConfig: Sendable, Equatable, Codable {
    public var imageSize: Int
    public var patchSize: Int
    public var inChannels: Int
    public var embedDim: Int
    public var depth: Int
    public var heads: Int
    public var mlpRatio: Int = 4

    public init(imageSize: Int, patchSize: Int, inChannels: Int = 3, embedDim: Int, depth: Int, heads: Int, mlpRatio: Int = 4) {
        (self.imageSize, self.patchSize, self.inChannels) = (imageSize, patchSize, inChannels)
        (self.embedDim, self.depth, self.heads, self.mlpRatio) = (embedDim, depth, heads, mlpRatio)
    }

    public var gridSize: Int { imageSize / patchSize }
    public var tokens: Int { gridSize * gridSize }

    /// The official variants (`vit_*` in src/models/vision_transformer.py), at 224 px with patch 16 unless changed.
    public static func tiny(imageSize: Int = 224, patchSize: Int = 16, inChannels: Int = 3) -> ViTConfig {
        ViTConfig(imageSize: imageSize, patchSize: patchSize, inChannels: inChannels, embedDim: 192, depth: 12, heads: 3)
    }
    public static func small(imageSize: Int = 224, patchSize: Int = 16, inChannels: Int = 3) -> ViTConfig {
        ViTConfig(imageSize: imageSize, patchSize: patchSize, inChannels: inChannels, embedDim: 384, depth: 12, heads: 6)
    }
    public static func base(imageSize: Int = 224, patchSize: Int = 16, inChannels: Int = 3) -> ViTConfig {
        ViTConfig(imageSize: imageSize, patchSize: patchSize, inChannels: inChannels, embedDim: 768, depth: 12, heads: 12)
    }
    public static func large(imageSize: Int = 224, patchSize: Int = 16, inChannels: Int = 3) -> ViTConfig {
        ViTConfig(imageSize: imageSize, patchSize: patchSize, inChannels: inChannels, embedDim: 1024, depth: 24, heads: 16)
    }
    public static func huge(imageSize: Int = 224, patchSize: Int = 14, inChannels: Int = 3) -> ViTConfig {
        ViTConfig(imageSize: imageSize, patchSize: patchSize, inChannels: inChannels, embedDim: 1280, depth: 32, heads: 16)
    }
    /// Small-image presets: ViT-Tiny width on 32x32 (8x8 grid) and 28x28 (7x7 grid, e.g. Fashion-MNIST) inputs.
    package static func tiny32(inChannels: Int = 3, depth: Int = 12) -> ViTConfig {
        ViTConfig(imageSize: 32, patchSize: 4, inChannels: inChannels, embedDim: 192, depth: depth, heads: 3)
    }
    package static func tiny28(inChannels: Int = 1, depth: Int = 6) -> ViTConfig {
        ViTConfig(imageSize: 28, patchSize: 4, inChannels: inChannels, embedDim: 192, depth: depth, heads: 3)
    }

    /// Heads of the official presets (`src/models/vision_transformer.py`), by config name and by width: heads
    /// cannot be read from a state dict's shapes.
    package static let officialPresets: [(name: String, width: Int, heads: Int)] = [
        ("vit_tiny", 192, 3), ("vit_small", 384, 6), ("vit_base", 768, 12), ("vit_large", 1024, 16),
        ("vit_huge", 1280, 16), ("vit_giant", 1408, 16),
    ]
    package static var presetHeads: [String: Int] {
        Dictionary(uniqueKeysWithValues: officialPresets.map { ($0.name, $0.heads) })
    }
    package static func officialHeads(width: Int) -> Int? { officialPresets.first { $0.width == width }?.heads }

    /// The architecture of the encoder whose official state-dict shapes `shape` gives (names relative to
    /// `prefix`, which only names it in errors): width, channels and patch
    /// from `patch_embed.proj.weight` (D, C, P, P), the grid from `pos_embed` ((1, N, D) or (N, D)), depth from the
    /// `blocks.i` present, MLP ratio from `blocks.0.mlp.fc1.weight`. Heads cannot be seen in the shapes: `heads`,
    /// else the official preset for that width.
    package static func inferred(shape: (String) -> [Int]?, heads: Int?, file: String, prefix: String) throws -> ViTConfig {
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

    /// The weights of the patch embedding and of the blocks' linear layers (qkv, proj, fc1, fc2): a lower bound
    /// of the parameter count, which loaders compare with a file's size before building the network it
    /// describes. Nil when it overflows `Int`.
    package var weightCountLowerBound: Int? {
        checkedSum([checkedProduct([depth, 4 + 2 * mlpRatio, embedDim, embedDim]),
                    checkedProduct([embedDim, inChannels, patchSize, patchSize])])
    }

    /// Refuses, before anything is allocated, a file of fewer than `bytesEach` bytes per weight of `weights`
    /// (what a configuration or a list of tensor names claims): a few bytes must not make a loader build
    /// networks of gigabytes. `what` names the networks in the message.
    package static func requireFile(_ path: String, holds weights: Int?, bytesEach: Int, what: String) throws {
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        let need = weights.flatMap { checkedProduct([$0, bytesEach]) }
        guard let need, need <= size else {
            throw SafeTensorsError(path: path, problem: "\(what) would need at least \(need.map { "\($0)" } ?? "an overflowing number of") bytes of weights, but the file has \(size): truncated, or its architecture or configuration does not match its tensors")
        }
    }

    package func validate() throws {
        guard imageSize > 0, patchSize > 0, imageSize % patchSize == 0, inChannels > 0, depth >= 0,
              heads > 0, embedDim % heads == 0, embedDim % 4 == 0, mlpRatio > 0 else {
            throw TensorError.incompatibleShapes(
                operation: "ViTConfig: image \(imageSize) must be a multiple of patch \(patchSize); embedDim \(embedDim) divisible by 4 and by heads \(heads)",
                [imageSize, patchSize, embedDim], [heads])
        }
    }
}

/// The I-JEPA Vision Transformer encoder (`src/models/vision_transformer.py`): patch embedding, fixed
/// positions, optional `masks` (keep those patch indices, after the positions are added), blocks, final norm.
package final class VisionTransformer: ParameterContainer {
    package let config: ViTConfig
    package let patchWeight: Variable  // (D, C, P, P)
    package let patchBias: Variable    // (D)
    package let posEmbed: Variable     // (N, D), fixed
    package let blocks: [Block]
    package let norm: LayerNorm

    package init(_ config: ViTConfig, rng: inout RandomGenerator) throws {
        try config.validate()
        self.config = config
        let (d, p) = (config.embedDim, config.patchSize)
        patchWeight = try officialWeight([d, config.inChannels, p, p], rng: &rng)
        patchBias = Variable(try Tensor(zeros: [d]), requiresGrad: true)
        posEmbed = Variable(try sinCosPositionTable(gridSize: config.gridSize, dim: d))
        blocks = try (0..<config.depth).map { _ in
            try Block(dim: d, heads: config.heads, mlpRatio: config.mlpRatio, rng: &rng)
        }
        norm = try LayerNorm(d)
    }

    /// images (B, C, H, W) -> (B M, K, D) for M masks of K indices each, or (B, N, D) without masks.
    /// Packs the blocks' Linear weights once as their forward GEMMs read them (`Variable.prepackWeight`), so an
    /// inference pass does not pack them per call: for a network whose weights no longer change (an `Encoder`).
    /// `releasingValues`: each weight is then kept in its packed copy only (`releaseValueKeepingPackedCopy`),
    /// released as soon as it is packed, so the peak holds one weight twice, not all of them.
    package func prepackLinearWeights(kernels: KernelContext, releasingValues: Bool = false) throws {
        for b in blocks {
            for w in [b.attn.qkv.weight, b.attn.proj.weight, b.mlp.fc1.weight, b.mlp.fc2.weight] {
                w.prepackWeight(kernels: kernels)
                if releasingValues { try w.releaseValueKeepingPackedCopy() }
            }
        }
    }

    package func callAsFunction(_ images: Variable, masks: [TokenIndices]? = nil, tape: Tape) throws -> Variable {
        let c = config
        guard images.shape.count == 4, images.shape[1] == c.inChannels, images.shape[2] == c.imageSize,
              images.shape[3] == c.imageSize else {
            throw TensorError.incompatibleShapes(
                operation: "VisionTransformer: images (B, \(c.inChannels), \(c.imageSize), \(c.imageSize))", images.shape, [])
        }
        var x = try patchEmbed(images, weight: patchWeight, bias: patchBias, patch: c.patchSize, tape: tape)
        x = try addBroadcast(x, posEmbed, tape: tape)
        if let masks { x = try gatherTokens(x, masks, tape: tape) }
        for block in blocks { x = try block(x, recompute: tape.engine.recomputeBlocks, tape: tape) }
        return try norm(x, tape: tape)
    }

    /// The outputs of the last `count` blocks over all tokens, each through the final norm as the encoder's
    /// output is (the last one equals `self(images)`), last block first; no autograd. For the probes'
    /// "last k layers" representation, on `engine`.
    package func lastBlockOutputs(_ images: Variable, count: Int, engine: Engine) throws -> [Variable] {
        let tape = engine.noGrad
        guard count >= 1 && count <= max(blocks.count, 1) else {
            throw TensorError.incompatibleShapes(operation: "lastBlockOutputs: count in 1...depth", [count], [blocks.count])
        }
        var x = try patchEmbed(images, weight: patchWeight, bias: patchBias, patch: config.patchSize, tape: tape)
        x = try addBroadcast(x, posEmbed, tape: tape)
        var outputs: [Variable] = blocks.isEmpty ? [try norm(x, tape: tape)] : []
        for (i, block) in blocks.enumerated() {
            x = try block(x, tape: tape)
            if i >= blocks.count - count { outputs.append(try norm(x, tape: tape)) }
        }
        return outputs.reversed()
    }

    /// Official state_dict names: pos_embed, patch_embed.proj.{weight,bias}, blocks.i.*, norm.*.
    package var namedParameters: [(String, Variable)] {
        var out: [(String, Variable)] = [("patch_embed.proj.weight", patchWeight), ("patch_embed.proj.bias", patchBias)]
        for (i, b) in blocks.enumerated() { out += prefixed("blocks.\(i)", b) }
        return out + prefixed("norm", norm)
    }

    /// Parameters plus the fixed table a state_dict carries, as this model holds them (pos_embed (N, D)).
    package var stateDict: [(String, Variable)] {
        [("pos_embed", posEmbed)] + namedParameters
    }

    /// The official module's state_dict: the same names, with pos_embed as the official (1, N, D) parameter,
    /// so `load_state_dict(strict=True)` of `src/models/vision_transformer.py`'s encoder takes it as it is.
    package var stateTensors: [(String, Tensor)] {
        [("pos_embed", withLeadingAxis(posEmbed.value))] + parameterTensors(namedParameters)
    }
}
