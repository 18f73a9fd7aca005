import Foundation
import XCTest
import CPUKernels
import NNLayers
@testable import JEPA
@testable import TensorCore

/// Parity with PyTorch: tools/make_parity_fixtures.py builds the same encoder, predictor and loss in PyTorch
/// from the same weights, runs a fixed batch with fixed masks and saves outputs, the loss and every gradient.
final class ParityTests: XCTestCase {
    static let fixtureVersion = "parity-v1"

    func compare(_ name: String, _ a: Tensor, _ b: Tensor?, tolerance: Double, file: StaticString = #filePath, line: UInt = #line) {
        compareToFixture(name, a, b, tolerance: tolerance, file: file, line: line)
    }

    func testEncoderPredictorLossAndGradientsMatchPyTorch() throws {
        let (t, meta, path) = try loadFixture("parity", version: Self.fixtureVersion, script: "make_parity_fixtures.py")
        let cfg = try JSONSerialization.jsonObject(with: Data(meta["config"]!.utf8)) as! [String: Int]
        let vit = ViTConfig(imageSize: cfg["image"]!, patchSize: cfg["patch"]!, inChannels: cfg["channels"]!,
                            embedDim: cfg["dim"]!, depth: cfg["depth"]!, heads: cfg["heads"]!)
        var rng = RandomGenerator(seed: 0)
        let encoder = try VisionTransformer(vit, rng: &rng)
        let target = try VisionTransformer(vit, rng: &rng)
        let predictor = try Predictor(gridSize: vit.gridSize, embedDim: vit.embedDim, predictorDim: cfg["pred_dim"]!,
                                      depth: cfg["pred_depth"]!, heads: vit.heads, rng: &rng)
        // Our fixed tables must equal the official ones; then load the weights by their official names.
        compare("encoder.pos_embed (sin-cos table)", encoder.posEmbed.value, t["encoder.pos_embed"], tolerance: 1e-6)
        compare("predictor.predictor_pos_embed", predictor.posEmbed.value, t["predictor.predictor_pos_embed"], tolerance: 1e-6)
        try loadParameters(encoder.namedParameters, from: t, prefix: "encoder.", file: path)
        try loadParameters(target.namedParameters, from: t, prefix: "encoder.", file: path)
        try loadParameters(predictor.namedParameters, from: t, prefix: "predictor.", file: path)

        let images = Variable(t["input.images"]!)
        let ctx = try tokenIndices(t["mask.context.0"]!)
        let tgts = [try tokenIndices(t["mask.target.0"]!), try tokenIndices(t["mask.target.1"]!)]

        // Target branch, no grad: full image, non-affine layer norm (eps 1e-5), target blocks.
        let h = try target(images, tape: Engine().noGrad)
        compare("output.target_full", h.value, t["output.target_full"], tolerance: 1e-4)
        let hNorm = try layerNorm(h, gamma: nil, beta: nil, eps: 1e-5, tape: Engine().noGrad)
        let tgt = try gatherTokens(hNorm, tgts, tape: Engine().noGrad)
        compare("output.target", tgt.value, t["output.target"], tolerance: 1e-4)

        let tape = Tape(Engine())
        let zCtx = try encoder(images, masks: [ctx], tape: tape)
        compare("output.context", zCtx.value, t["output.context"], tolerance: 1e-4)
        zCtx.retainGrad()
        let z = try predictor(zCtx, contextMasks: [ctx], targetMasks: tgts, tape: tape)
        compare("output.prediction", z.value, t["output.prediction"], tolerance: 1e-4)
        let loss = try smoothL1Loss(z, tgt, tape: tape)
        compare("output.loss", loss.value, t["output.loss"], tolerance: 1e-5)

        try tape.backward(from: loss)
        compare("grad.context", zCtx.grad!, t["grad.context"], tolerance: 1e-3)
        for (name, p) in encoder.namedParameters {
            compare("grad.encoder.\(name)", p.grad ?? Tensor.zeros(like: p.value), t["grad.encoder.\(name)"], tolerance: 1e-3)
        }
        for (name, p) in predictor.namedParameters {
            compare("grad.predictor.\(name)", p.grad ?? Tensor.zeros(like: p.value), t["grad.predictor.\(name)"], tolerance: 1e-3)
        }
    }
}
