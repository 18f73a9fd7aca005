import Foundation
import JEPA
import TensorCore
import TorchImport

/// What `importTorchCheckpoint` wrote.
package struct ImportReport: Sendable {
    /// Tensors written per network (`encoder`, `predictor`, `target_encoder`).
    package var networks: [String: Int]
    package var architecture: ViTConfig
    package var config: TrainingConfig
    /// The checkpoint's own scalars (`epoch`, `loss`, `lr`, ...), as text.
    package var values: [String: String]
}

/// The metadata key of an imported checkpoint's preprocessing ("centre-crop:<shorter side>"), read by `Encoder`.
package let preprocessingKey = "ijepa.preprocessing"

/// Converts an official I-JEPA checkpoint (`torch.save` of `encoder`, `predictor`, `target_encoder` state dicts,
/// as facebookresearch/ijepa's `train.py` writes it; `module.` prefixes of DistributedDataParallel removed) into
/// our safetensors layout: the networks under `encoder.`, `predictor.`, `target_encoder.` (format v2 shapes), a
/// training configuration describing the architecture (`ijepa.config`: width, depth, heads, patch, input size,
/// predictor, RGB with ImageNet normalisation) and the ImageNet evaluation preprocessing. The optimizer state is
/// not imported. Tensors are read and written one at a time (peak memory: the largest tensor).
package func importTorchCheckpoint(_ path: String, to output: String, heads: Int? = nil) throws -> ImportReport {
    let file = try TorchCheckpoint(path: path)
    var names: [(ours: String, theirs: String)] = []
    var counts: [String: Int] = [:]
    for net in ["encoder", "predictor", "target_encoder"] {
        let prefix = file.tensorNames.contains { $0.hasPrefix(net + ".module.") } ? net + ".module." : net + "."
        let found = file.tensorNames.filter { $0.hasPrefix(prefix) }
        counts[net] = found.count
        names += found.map { (net + "." + $0.dropFirst(prefix.count), $0) }
    }
    guard let encoderNet = ["target_encoder", "encoder"].first(where: { counts[$0, default: 0] > 0 }) else {
        throw TorchCheckpointError(path: path, problem: "holds no 'encoder' or 'target_encoder' state dict (an official I-JEPA checkpoint has both)")
    }
    let theirs = Dictionary(uniqueKeysWithValues: names.map { ($0.ours, $0.theirs) })
    let arch = try ViTConfig.inferred(shape: { theirs[encoderNet + "." + $0].flatMap(file.shape(of:)) }, heads: heads,
                                      file: path, prefix: encoderNet + ".")
    var c = TrainingConfig()
    // A preset this configuration reader knows (ViT-g is not one), its width, depth and heads set explicitly.
    let known = ["vit_tiny", "vit_small", "vit_base", "vit_large", "vit_huge"]
    c.meta.modelName = ViTConfig.officialPresets.first { $0.width == arch.embedDim && known.contains($0.name) }?.name
        ?? "vit_base"
    (c.meta.depth, c.meta.embedDim, c.meta.numHeads) = (arch.depth, arch.embedDim, arch.heads)
    (c.data.cropSize, c.data.channels, c.mask.patchSize) = (arch.imageSize, arch.inChannels, arch.patchSize)
    if arch.inChannels == 3 {
        c.data.mean = [0.485, 0.456, 0.406]
        c.data.std = [0.229, 0.224, 0.225]
    }
    if counts["predictor", default: 0] > 0 {
        guard let pe = theirs["predictor.predictor_embed.weight"].flatMap(file.shape(of:)), pe.count == 2 else {
            throw TorchCheckpointError(path: path, problem: "the predictor has no predictor_embed.weight of (Dp, D)")
        }
        c.meta.predEmbDim = pe[0]
        var depth = 0
        while theirs["predictor.predictor_blocks.\(depth).norm1.weight"] != nil { depth += 1 }
        c.meta.predDepth = max(depth, 1)
    }
    // The mask settings describe no training here; on a grid too small for the default min_keep, lower it so
    // that the configuration stays valid (and trainable, if someone fine-tunes from it).
    if (try? c.maskCollator()) == nil { c.mask.minKeep = 0 }
    c = try c.applying([])  // validates the architecture as a config
    var values: [String: String] = [:]
    for (k, v) in file.values where !k.contains(".") { values[k] = v.description }
    let importInfo = String(decoding: try JSONSerialization.data(withJSONObject: ["source": path, "values": values],
                                                                  options: [.sortedKeys]), as: UTF8.self)
    try SafeTensors.write(
        shapes: try names.map { n in
            guard let s = file.shape(of: n.theirs) else { throw TorchCheckpointError(path: path, problem: "no shape for '\(n.theirs)'") }
            return (n.ours, s)
        },
        metadata: ["ijepa.config": c.jsonText(), "ijepa.format": TrainingState.currentVersion, "ijepa.import": importInfo,
                   preprocessingKey: "centre-crop:\(arch.imageSize * 8 / 7)"],
        to: output) { ours in try file.tensor(theirs[ours]!) }
    return ImportReport(networks: counts, architecture: arch, config: c, values: values)
}
