import XCTest
import CPUKernels
import NNLayers
@testable import JEPA
@testable import TensorCore

/// Same seed, same results, whatever the thread count: a forward and backward pass of the encoder and
/// predictor, and the parameters after an AdamW step, are bit-identical for 1 and 2 threads.
final class DeterminismTests: XCTestCase {
    func run(threads: Int) throws -> [[UInt32]] {
        let engine = Engine(threads: threads)
        var rng = RandomGenerator(seed: 7)
        let cfg = ViTConfig(imageSize: 32, patchSize: 4, inChannels: 3, embedDim: 48, depth: 2, heads: 3)
        let encoder = try VisionTransformer(cfg, rng: &rng)
        let predictor = try Predictor(gridSize: 8, embedDim: 48, predictorDim: 24, depth: 1, heads: 3, rng: &rng)
        let images = Variable(try rng.normal([16, 3, 32, 32]))  // large enough for the kernels to go parallel
        let ctx = try TokenIndices(batch: 16, count: 20, indices: (0..<16).flatMap { b in (0..<20).map { Int32(($0 * 3 + b) % 64) }.sorted() })
        let tgt = try TokenIndices(batch: 16, count: 6, indices: (0..<16).flatMap { b in (0..<6).map { Int32(40 + (($0 + b) % 20)) }.sorted() })
        let tape = Tape(engine)
        let z = try predictor(try encoder(images, masks: [ctx], tape: tape), contextMasks: [ctx], targetMasks: [tgt], tape: tape)
        let target = try gatherTokens(try encoder(images, tape: engine.noGrad), [tgt], tape: engine.noGrad)
        let loss = try smoothL1Loss(z, target, tape: tape)
        try tape.backward(from: loss)
        let params = encoder.namedParameters + predictor.namedParameters
        let opt = try AdamW(params, lr: 1e-3, weightDecay: 0.04)
        let grads = params.map { $0.1.grad!.scalars.map(\.bitPattern) }
        opt.update(engine: engine)
        return [loss.value.scalars.map(\.bitPattern)] + grads + params.map { $0.1.value.scalars.map(\.bitPattern) }
    }

    func testOneAndTwoThreadsGiveIdenticalBits() throws {
        let one = try run(threads: 1), two = try run(threads: 2)
        XCTAssertEqual(one.count, two.count)
        for (i, (a, b)) in zip(one, two).enumerated() {
            XCTAssertEqual(a, b, "tensor \(i) differs between 1 and 2 threads")
        }
    }
}
