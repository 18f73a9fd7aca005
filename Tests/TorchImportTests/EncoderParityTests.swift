import Foundation
import XCTest
import IJEPA
import TensorCore
import TorchImport

/// The Swift `Encoder` on an official checkpoint (official.pth: the official modules after one training step,
/// saved from DistributedDataParallel) against the official modules' own forward passes on the same input
/// tensors (forward.safetensors, tools/make_torch_fixtures.py).
final class EncoderParityTests: XCTestCase {
    func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
        let worst = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? .infinity
        return worst / (b.scalars.map(abs).max() ?? 1)
    }

    func testOfficialCheckpointFeaturesMatchTheOfficialForward() throws {
        let forward = try SafeTensorsFile(path: try fixturePath("forward.safetensors"))
        let images = try forward.tensor("images")
        for (network, name) in [(Encoder.Network.target, "target_encoder"), (.context, "encoder")] {
            let encoder = try Encoder(checkpoint: try fixturePath("official.pth"), network: network, heads: 2)
            XCTAssertEqual(encoder.architecture.depth, 2)
            XCTAssertEqual(encoder.architecture.patchSize, 4)
            XCTAssertEqual(encoder.preprocessing.mean, [0.485, 0.456, 0.406])
            let pooled = try encoder.embed(preprocessed: images)
            let tokens = try encoder.embed(preprocessed: images, output: .patchTokens)
            let e1 = relativeError(pooled, try forward.tensor(name + ".pooled"))
            let e2 = relativeError(tokens, try forward.tensor(name + ".tokens"))
            XCTAssertEqual(tokens.shape, try forward.tensor(name + ".tokens").shape)
            XCTAssertLessThanOrEqual(e1, 1e-5, "\(name) pooled")
            XCTAssertLessThanOrEqual(e2, 1e-5, "\(name) tokens")
            print("\(name): max|diff|/max|ref| pooled \(e1), tokens \(e2)")
        }
        // Heads cannot be read from the shapes: this width (16) is no official preset's.
        XCTAssertThrowsError(try Encoder(checkpoint: try fixturePath("official.pth"))) {
            XCTAssert("\($0)".contains("heads"), "\($0)")
        }
    }

    /// `ijepa import` writes our layout; an Encoder of it gives the same bits as of the .pth, and the probe's
    /// checkpoint reader takes it with the configuration it carries.
    func testImportedCheckpointGivesTheSameFeatures() throws {
        let out = NSTemporaryDirectory() + "import-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let report = try importTorchCheckpoint(try fixturePath("official.pth"), to: out, heads: 2)
        XCTAssertEqual(report.networks, ["encoder": 29, "predictor": 20, "target_encoder": 29])
        XCTAssertEqual(report.values["epoch"], "0")
        let images = try SafeTensorsFile(path: try fixturePath("forward.safetensors")).tensor("images")
        let direct = try Encoder(checkpoint: try fixturePath("official.pth"), heads: 2).embed(preprocessed: images)
        let imported = try Encoder(checkpoint: out)
        XCTAssertEqual(imported.preprocessing.resize, .centreCrop(shorterSide: 18))
        XCTAssertEqual(try imported.embed(preprocessed: images).scalars, direct.scalars)
        let trained = try TrainedCheckpoint(path: out)
        XCTAssertNil(trained.state)
        XCTAssertEqual(trained.config.meta.predEmbDim, 8)
        // A bare encoder state dict in float16 (module. names): loads, and agrees to float16's precision.
        let half = try Encoder(checkpoint: try fixturePath("encoder-f16.pth"), network: .context, heads: 2)
        XCTAssertLessThan(relativeError(try half.embed(preprocessed: images),
                                        try Encoder(checkpoint: try fixturePath("official.pth"), network: .context, heads: 2)
                                            .embed(preprocessed: images)), 2e-2)
    }

    /// `read(_:into:)` (streaming a contiguous float32 view into the caller's memory) gives every fixture tensor
    /// exactly as `tensor(_:)` does: offsets, strides, float16 / bfloat16, 0-d and empty tensors included.
    func testReadIntoEqualsTensor() throws {
        var streamed = 0
        for stem in ["official", "encoder-f16", "encoder-bf16", "views"] {
            let c = try TorchCheckpoint(path: try fixturePath(stem + ".pth"))
            for name in c.tensorNames {
                let t = try c.tensor(name)
                var out = [Float](repeating: -1, count: t.count)
                try out.withUnsafeMutableBufferPointer { try c.read(name, into: $0) }
                XCTAssertEqual(out.map { $0.bitPattern }, t.scalars.map { $0.bitPattern }, "\(stem)/\(name)")
                streamed += 1
            }
            if let first = c.tensorNames.first, let n = c.shape(of: first)?.reduce(1, *) {
                var wrong = [Float](repeating: 0, count: n + 1)
                XCTAssertThrowsError(try wrong.withUnsafeMutableBufferPointer { try c.read(first, into: $0) })
            }
        }
        XCTAssertGreaterThan(streamed, 100)
    }
}
