import CPUKernels
import NNLayers
import TensorCore

/// The three networks of I-JEPA: the context encoder and the predictor (trained by AdamW) and the target
/// encoder (an EMA of the context encoder, never differentiated). The target starts as an exact copy of the
/// encoder (official `copy.deepcopy` after init).
package final class IJEPAModel {
    package let config: ViTConfig
    package let encoder: VisionTransformer
    package let predictor: Predictor
    package let target: VisionTransformer

    package init(_ config: ViTConfig, predictorDim: Int, predictorDepth: Int, seed: UInt64) throws {
        self.config = config
        var rng = RandomGenerator(seed: seed).stream(.initialisation)
        encoder = try VisionTransformer(config, rng: &rng)
        predictor = try Predictor(gridSize: config.gridSize, embedDim: config.embedDim, predictorDim: predictorDim,
                                  depth: predictorDepth, heads: config.heads, rng: &rng)
        var scratch = rng  // the target's own init is overwritten by the copy below
        target = try VisionTransformer(config, rng: &scratch)
        copyParameters(from: encoder, to: target)
    }


    /// Every tensor of a checkpoint, under the official module names: `encoder.`, `predictor.`,
    /// `target_encoder.` followed by the official state_dict keys (fixed tables included).
    package var stateDict: [(String, Variable)] {
        encoder.stateDict.map { ("encoder." + $0.0, $0.1) }
            + predictor.stateDict.map { ("predictor." + $0.0, $0.1) }
            + target.stateDict.map { ("target_encoder." + $0.0, $0.1) }
    }

    /// `stateDict` with the official shapes (position tables (1, N, D)): what a checkpoint stores, loadable
    /// into the official modules after splitting by prefix.
    package var stateTensors: [(String, Tensor)] {
        encoder.stateTensors.map { ("encoder." + $0.0, $0.1) }
            + predictor.stateTensors.map { ("predictor." + $0.0, $0.1) }
            + target.stateTensors.map { ("target_encoder." + $0.0, $0.1) }
    }

    /// The trained parameters, in optimizer order (encoder first, then predictor; official groups by name).
    package var trainableParameters: [(String, Variable)] {
        encoder.namedParameters.map { ("encoder." + $0.0, $0.1) }
            + predictor.namedParameters.map { ("predictor." + $0.0, $0.1) }
    }
}

/// target <- source, parameter by parameter (same architecture).
func copyParameters(from source: VisionTransformer, to target: VisionTransformer) {
    for ((_, s), (_, t)) in zip(source.namedParameters, target.namedParameters) {
        t.value = s.value
        t.value.withUnsafeMutableBufferPointer { _ in }  // force a private copy now, not on the first EMA write
    }
}

/// (N, D) -> (1, N, D): the same values with the batch axis the official modules keep on their tables.
func withLeadingAxis(_ t: Tensor) -> Tensor {
    try! t.reshaped([1] + t.shape)  // same count: cannot fail
}
