import Foundation
import XCTest
import CPUKernels
import NNLayers
@testable import IJEPA
@testable import JEPA
@testable import TensorCore

/// Parity of whole training steps with PyTorch: tools/make_step_fixtures.py runs the official step (schedules,
/// target encoder + layer norm, context encoder, predictor, smooth-L1, backward, AdamW with the official
/// groups, EMA) for a few steps from saved weights, images and masks, and saves the loss, lr, wd and momentum of
/// every step, every gradient of step 1, and all three networks after steps 1 and 3.
final class StepParityTests: XCTestCase {
    static let fixtureVersion = "step-v1"

    func testTrainingStepsMatchPyTorch() throws {
        let (t, meta, path) = try loadFixture("step", version: Self.fixtureVersion, script: "make_step_fixtures.py")
        let cfg = try JSONSerialization.jsonObject(with: Data(meta["config"]!.utf8)) as! [String: Any]
        func int(_ k: String) -> Int { (cfg[k] as! NSNumber).intValue }
        func dbl(_ k: String) -> Double { (cfg[k] as! NSNumber).doubleValue }
        let vit = ViTConfig(imageSize: int("image"), patchSize: int("patch"), inChannels: int("channels"),
                            embedDim: int("dim"), depth: int("depth"), heads: int("heads"))
        let model = try IJEPAModel(vit, predictorDim: int("pred_dim"), predictorDepth: int("pred_depth"), seed: 0)
        try loadParameters(model.encoder.namedParameters, from: t, prefix: "init.encoder.", file: path)
        try loadParameters(model.target.namedParameters, from: t, prefix: "init.encoder.", file: path)
        try loadParameters(model.predictor.namedParameters, from: t, prefix: "init.predictor.", file: path)
        let schedules = Schedules(
            itersPerEpoch: int("ipe"), epochs: int("epochs"), warmupEpochs: dbl("warmup_epochs"),
            ipeScale: dbl("ipe_scale"), startLR: dbl("start_lr"), refLR: dbl("ref_lr"), finalLR: dbl("final_lr"),
            refWD: dbl("wd0"), finalWD: dbl("wd1"), ema: (dbl("ema0"), dbl("ema1")))
        let trainer = try IJEPATrainer(model: model, schedules: schedules)

        // The key third of every qkv bias has a zero true gradient (softmax ignores a constant added to every
        // key), so both engines hold rounding noise there (~1e-9) and Adam turns that noise into +-lr steps of
        // arbitrary sign: those entries are compared only by their gradient (~0 on both sides, checked below).
        func withoutKeyBias(_ name: String, _ x: Tensor) throws -> Tensor {
            guard name.hasSuffix("attn.qkv.bias") else { return x }
            let d = x.count / 3, v = x.scalars
            return try Tensor(shape: [2 * d], values: Array(v[0..<d]) + Array(v[2 * d..<3 * d]))
        }
        func compareNetwork(_ label: String, _ params: [(String, Variable)], tolerance: Double) throws {
            for (name, p) in params {
                let key = "\(label).\(name)"
                compareToFixture(key, try withoutKeyBias(name, p.value), try t[key].map { try withoutKeyBias(name, $0) },
                                 tolerance: tolerance)
            }
        }
        func networks(after k: Int) throws {
            try compareNetwork("step\(k).after.encoder", model.encoder.namedParameters, tolerance: 1e-4)
            try compareNetwork("step\(k).after.predictor", model.predictor.namedParameters, tolerance: 1e-4)
            try compareNetwork("step\(k).after.target", model.target.namedParameters, tolerance: 1e-4)
        }

        for k in 1...int("steps") {
            let images = try XCTUnwrap(t["step\(k).images"])
            let context = [try tokenIndices(try XCTUnwrap(t["step\(k).mask.context.0"]))]
            let targets = try (0..<int("npred")).map { try tokenIndices(try XCTUnwrap(t["step\(k).mask.target.\($0)"])) }
            if k == 1 {
                // The gradients of the first step, before AdamW consumes them.
                let (loss, _) = try trainer.lossAndPrediction(images: images, context: context, targets: targets, backward: true)
                compareToFixture("step1.loss (gradient pass)", try Tensor(shape: [1], values: [loss]), t["step1.loss"], tolerance: 1e-5)
                for (name, p) in model.encoder.namedParameters {
                    compareToFixture("step1.grad.encoder.\(name)", p.grad ?? Tensor.zeros(like: p.value), t["step1.grad.encoder.\(name)"], tolerance: 1e-3)
                }
                for (name, p) in model.predictor.namedParameters {
                    compareToFixture("step1.grad.predictor.\(name)", p.grad ?? Tensor.zeros(like: p.value), t["step1.grad.predictor.\(name)"], tolerance: 1e-3)
                }
                for (name, p) in model.trainableParameters where name.hasSuffix("attn.qkv.bias") {
                    let d = p.value.count / 3
                    let ours = p.grad!.scalars[d..<2 * d].map { abs($0) }.max()!
                    let theirs = t["step1.grad.\(name)"]!.scalars[d..<2 * d].map { abs($0) }.max()!
                    let scale = p.grad!.scalars.map { abs($0) }.max()!
                    XCTAssertLessThan(ours, 1e-5 * scale, "\(name): key-bias gradient must vanish")
                    XCTAssertLessThan(theirs, 1e-5 * scale, "\(name): key-bias gradient must vanish in the fixture")
                }
                for (_, p) in model.trainableParameters { p.zeroGrad() }
            }
            let r = try trainer.step(images: images, context: context, targets: targets)
            XCTAssertEqual(r.step, k)
            compareToFixture("step\(k).loss", try Tensor(shape: [1], values: [r.loss]), t["step\(k).loss"], tolerance: 1e-5)
            XCTAssertEqual(r.learningRate, Double(t["step\(k).lr"]!.scalars[0]), accuracy: 1e-9 + 1e-6 * r.learningRate, "lr of step \(k)")
            XCTAssertEqual(r.weightDecay, Double(t["step\(k).wd"]!.scalars[0]), accuracy: 1e-7, "wd of step \(k)")
            XCTAssertEqual(r.momentum, Double(t["step\(k).momentum"]!.scalars[0]), accuracy: 1e-7, "momentum of step \(k)")
            // Parameters after AdamW and after the EMA (relative to each tensor's largest value).
            if k == 1 { try networks(after: 1) }
        }
        try networks(after: int("steps"))
    }

    func testSchedulesMatchTheOfficialTable() {
        // Reference section 5: ipe 625, 300 epochs, warmup 40, lr 2e-4 -> 1e-3 -> 1e-6, wd 0.04 -> 0.4, EMA 0.996 -> 1.
        let s = Schedules(itersPerEpoch: 625, epochs: 300, warmupEpochs: 40, startLR: 2e-4, refLR: 1e-3,
                          finalLR: 1e-6, refWD: 0.04, finalWD: 0.4, ema: (0.996, 1.0))
        XCTAssertEqual(s.learningRate(step: 1), 2.00032e-4, accuracy: 1e-9)
        XCTAssertEqual(s.learningRate(step: 25_000), 1e-3, accuracy: 1e-12)
        XCTAssertEqual(s.learningRate(step: 93_750), 6.20e-4, accuracy: 5e-6)
        XCTAssertEqual(s.learningRate(step: 187_500), 1e-6, accuracy: 1e-12)
        XCTAssertEqual(s.weightDecay(step: 1), 0.04, accuracy: 1e-6)
        XCTAssertEqual(s.weightDecay(step: 25_000), 0.0556, accuracy: 5e-5)
        XCTAssertEqual(s.weightDecay(step: 93_750), 0.22, accuracy: 1e-6)
        XCTAssertEqual(s.weightDecay(step: 187_500), 0.4, accuracy: 1e-12)
        XCTAssertEqual(s.momentum(step: 1), 0.996, accuracy: 1e-15)
        XCTAssertEqual(s.momentum(step: 25_000), 0.99653, accuracy: 1e-5)
        XCTAssertEqual(s.momentum(step: 93_751), 0.998, accuracy: 1e-12)
        XCTAssertEqual(s.momentum(step: 187_501), 1.0, accuracy: 1e-12)
        XCTAssertEqual(s.momentum(step: 300_000), 1.0, accuracy: 1e-12, "clamped after the end")
    }
}

final class StepCostTests: XCTestCase {
    /// Reference section 8's table: (a) ViT-T/4 32 px, L6, predictor 96 x 4, npred 4, Kc 12, Kp 11 -> 0.817
    /// GFLOP per image; (b) ViT-S/16, predictor 384 x 6, Kc 50, Kp 33 -> 38.07.
    func testMatchesTheReferenceTable() {
        let a = StepCost(vit: .tiny32(depth: 6), predictorDim: 96, predictorDepth: 4)
        XCTAssertEqual(a.step(batch: 1, nenc: 1, npred: 4, kc: 12, kp: 11) / 1e9, 0.817, accuracy: 0.002)
        let b = StepCost(vit: .small(), predictorDim: 384, predictorDepth: 6)
        XCTAssertEqual(b.step(batch: 1, nenc: 1, npred: 4, kc: 50, kp: 33) / 1e9, 38.07, accuracy: 0.1)
        XCTAssertEqual(b.encoderForward(tokens: 196, batch: 1) / 1e9, 9.147, accuracy: 0.01)
        XCTAssertEqual(a.step(batch: 8, nenc: 1, npred: 4, kc: 12, kp: 11), 8 * a.step(batch: 1, nenc: 1, npred: 4, kc: 12, kp: 11), accuracy: 1)
    }
}
