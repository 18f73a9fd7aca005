import Foundation
import XCTest
@testable import IJEPA
@testable import JEPA
@testable import TensorCore

/// Loads Fixtures/<name>.safetensors and checks its version: a stale fixture fails with the regeneration
/// command instead of comparing against the wrong numbers.
func loadFixture(_ name: String, version: String, script: String) throws
    -> (tensors: [String: Tensor], metadata: [String: String], path: String)
{
    guard let path = Bundle.module.path(forResource: name, ofType: "safetensors", inDirectory: "Fixtures") else {
        XCTFail("fixture \(name).safetensors missing: run tools/\(script)")
        throw XCTSkip("fixture missing")
    }
    let (t, m) = try SafeTensors.read(path)
    guard m["version"] == version else {
        XCTFail("\(path) is version \(m["version"] ?? "none"), the test expects \(version): the fixture is stale; regenerate it with tools/\(script)")
        throw XCTSkip("stale fixture")
    }
    return (t, m, path)
}

/// A (B, K) index tensor stored as Float in a fixture.
func tokenIndices(_ t: Tensor) throws -> TokenIndices {
    try TokenIndices(batch: t.shape[0], count: t.shape[1], indices: t.scalars.map { Int32($0) })
}

/// max |a - b| / max(max |b|, 1e-6), printed per tensor and asserted against `tolerance`.
func compareToFixture(_ name: String, _ a: Tensor, _ b: Tensor?, tolerance: Double,
                      file: StaticString = #filePath, line: UInt = #line) {
    guard let b else { return XCTFail("fixture has no tensor \(name)", file: file, line: line) }
    XCTAssertEqual(a.count, b.count, "\(name): \(a.shape) vs \(b.shape)", file: file, line: line)
    let x = a.scalars, y = b.scalars
    let scale = max(y.map { Double(abs($0)) }.max() ?? 0, 1e-6)
    let err = zip(x, y).map { abs(Double($0) - Double($1)) }.max() ?? 0
    print(String(format: "parity %-60@ max abs err %.3e, relative %.3e", name as NSString, err, err / scale))
    XCTAssertLessThanOrEqual(err / scale, tolerance, "\(name): relative error \(err / scale)", file: file, line: line)
}

/// A tiny I-JEPA setup for whole-step tests: 16 px, patch 4, D 32, depth 2; 4 images; npred 2 masks; a
/// 10-step schedule. `trainer(predictorDepth:)` builds the model (seed 1) and its trainer.
struct TinyIJEPA {
    let vit = ViTConfig(imageSize: 16, patchSize: 4, inChannels: 1, embedDim: 32, depth: 2, heads: 2)
    let images: Tensor
    let collator: MaskCollator
    let schedules = Schedules(itersPerEpoch: 10, epochs: 1, warmupEpochs: 0.5, startLR: 1e-4, refLR: 1e-3,
                              finalLR: 1e-6, refWD: 0.04, finalWD: 0.4, ema: (0.996, 1))

    init() throws {
        var rng = RandomGenerator(seed: 5)
        images = try rng.normal([4, 1, 16, 16])
        var mc = MaskConfig.official
        (mc.minKeep, mc.numPredMasks, mc.predMaskScale) = (2, 2, [0.3, 0.4])
        collator = try MaskCollator(mc, gridHeight: 4, gridWidth: 4)
    }

    func masks(step: Int) -> MaskBatch { collator.sample(batch: 4, step: step, seed: 0) }

    func trainer(predictorDepth: Int = 1, recompute: Bool = false, engine: Engine = Engine()) throws -> IJEPATrainer {
        let model = try IJEPAModel(vit, predictorDim: 16, predictorDepth: predictorDepth, seed: 1)
        var engine = engine
        engine.recomputeBlocks = recompute
        return try IJEPATrainer(model: model, schedules: schedules, engine: engine)
    }
}
