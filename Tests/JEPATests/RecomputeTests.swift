import XCTest
@testable import JEPA
import NNLayers
@testable import TensorCore

/// Activation checkpointing (`recomputed`, `Block(_:recompute:tape:)`, `Engine.recomputeBlocks`): the same
/// bits as the plain backward pass, with only the blocks' inputs and outputs recorded.
final class RecomputeTests: XCTestCase {
    /// Two blocks in a row, the input wanting a gradient: output, input gradient and every parameter gradient
    /// equal the plain pass bit for bit, and the tape records one entry per block instead of every op.
    func testRecomputedBlocksGiveTheSameBitsAndRecordOneEntryEach() throws {
        var rng = RandomGenerator(seed: 11)
        let blocks = try (0..<2).map { _ in try Block(dim: 12, heads: 3, rng: &rng) }
        let x0 = try rng.normal([3, 7, 12])   // 3 sequences of 7 tokens: awkward for every kernel's blocking
        let seed = try rng.normal([3, 7, 12])

        func run(recompute: Bool) throws -> (y: [Float], dx: [Float], grads: [[Float]], entries: Int) {
            for b in blocks { b.zeroGrad() }
            let tape = Tape(Engine())
            let x = Variable(x0, requiresGrad: true)
            var h = x
            for b in blocks { h = try b(h, recompute: recompute, tape: tape) }
            let entries = tape.count
            try tape.backward(from: h, seed: seed)
            return (h.value.scalars, x.grad!.scalars,
                    blocks.flatMap { $0.namedParameters.map { $0.1.grad!.scalars } }, entries)
        }
        let plain = try run(recompute: false), again = try run(recompute: true)
        XCTAssertEqual(plain.y, again.y)
        XCTAssertEqual(plain.dx, again.dx)
        XCTAssertEqual(plain.grads.count, 2 * 12)
        for (g, h) in zip(plain.grads, again.grads) { XCTAssertEqual(g, h) }
        XCTAssertEqual(again.entries, 2, "a recomputed block records one entry")
        XCTAssertEqual(plain.entries, 2 * 5, "a block records norm1 + qkv, attention, proj, norm2 + fc1, GELU + fc2")
    }

    /// Without a recording tape a recomputed block is the plain call: no entry, the same output.
    func testNoGradCallRunsTheBlockOnce() throws {
        var rng = RandomGenerator(seed: 12)
        let block = try Block(dim: 8, heads: 2, rng: &rng)
        let x = Variable(try rng.normal([2, 5, 8]))
        var calls = 0
        let tape = Tape(Engine())
        tape.isRecording = false
        let y = try recomputed(x, tape: tape) { calls += 1; return try block($0, tape: $1) }
        XCTAssertEqual(calls, 1)
        XCTAssertEqual(tape.count, 0)
        XCTAssertEqual(y.value.scalars, try block(x, tape: Engine().noGrad).value.scalars)
    }

    /// Two full I-JEPA steps (target, context encoder, predictor, loss, backward, AdamW, EMA) with and without
    /// recomputation: identical losses and parameters; the profile shows the second forward passes as
    /// "recompute" rows of the context and predictor phases and still accounts for the step.
    func testIJEPAStepWithRecomputedBlocksMatchesThePlainStep() throws {
        let tiny = try TinyIJEPA()
        let plain = try tiny.trainer(predictorDepth: 2), again = try tiny.trainer(predictorDepth: 2, recompute: true)
        XCTAssertTrue(again.engine.recomputeBlocks && !plain.engine.recomputeBlocks)
        let p = OpProfiler()
        var wall = 0.0
        for step in 0..<2 {
            let m = tiny.masks(step: step)
            let a = try plain.step(images: tiny.images, context: m.context, targets: m.targets)
            again.engine.profiler = p
            let t0 = OpProfiler.now()
            let b = try again.step(images: tiny.images, context: m.context, targets: m.targets)
            wall += OpProfiler.now() - t0
            again.engine.profiler = nil
            XCTAssertEqual(a.loss, b.loss, "step \(step)")
        }
        for ((name, x), (_, y)) in zip(plain.model.stateDict, again.model.stateDict) {
            XCTAssertEqual(x.value.scalars, y.value.scalars, name)
        }
        for phase in ["context", "predictor"] {
            XCTAssert(p.rows.contains { $0.phase == phase && $0.op == "linear" && $0.pass == "recompute" }, phase)
            XCTAssert(p.rows.contains { $0.phase == phase && $0.op == "attention" && $0.pass == "backward" }, phase)
        }
        XCTAssertFalse(p.rows.contains { $0.phase == "target" && $0.pass == "recompute" })
        XCTAssertGreaterThan(p.totalSeconds / wall, 0.95, "the rows must account for the step")
        XCTAssertLessThanOrEqual(p.totalSeconds, wall * 1.0001)
    }
}

/// C-JEPA's regulariser in the step: the loss grows by exactly the variance-covariance value of the context
/// encoder's output; a zero weight leaves the official step's bits; the gradients reach the encoder.
final class RegularizerTests: XCTestCase {
    func testVarianceCovarianceTermIsAddedToTheLoss() throws {
        let tiny = try TinyIJEPA()
        let m = tiny.masks(step: 0)
        let plain = try tiny.trainer(), regularised = try tiny.trainer()
        regularised.regularizer = (variance: 25, covariance: 1)
        let (l0, _) = try plain.lossAndPrediction(images: tiny.images, context: m.context, targets: m.targets, backward: false)
        let (l1, _) = try regularised.lossAndPrediction(images: tiny.images, context: m.context, targets: m.targets, backward: false)
        let z = try regularised.model.encoder(Variable(tiny.images), masks: m.context, tape: Engine().noGrad)
        let vc = try varianceCovarianceLoss(z, varianceWeight: 25, covarianceWeight: 1, tape: Engine().noGrad).value.scalars[0]
        XCTAssertGreaterThan(vc, 0)
        XCTAssertEqual(l1, l0 + vc, accuracy: 1e-5 * max(1, vc))
        // Zero weights: the same bits as the official step, after a whole step.
        let zero = try tiny.trainer()
        zero.regularizer = (0, 0)
        let a = try plain.step(images: tiny.images, context: m.context, targets: m.targets)
        let b = try zero.step(images: tiny.images, context: m.context, targets: m.targets)
        XCTAssertEqual(a.loss.bitPattern, b.loss.bitPattern)
        XCTAssertEqual(plain.model.encoder.norm.weight.value.scalars, zero.model.encoder.norm.weight.value.scalars)
        // The regularised step moves the context encoder differently.
        _ = try regularised.step(images: tiny.images, context: m.context, targets: m.targets)
        XCTAssertNotEqual(plain.model.encoder.blocks[0].attn.qkv.weight.value.scalars,
                          regularised.model.encoder.blocks[0].attn.qkv.weight.value.scalars)
    }
}
