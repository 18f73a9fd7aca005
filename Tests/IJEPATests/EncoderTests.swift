import Foundation
import Synchronization
import XCTest
@testable import IJEPA
import ImageData
import JEPA
import TensorCore

/// The app-facing `Encoder`: the features `ijepa embed` computes, from a checkpoint alone.
final class EncoderTests: XCTestCase {
    /// A 2-step tiny run (16 px gray, patch 4, depth 1) and its checkpoint path.
    func trainedCheckpoint(_ data: ImageDataset) throws -> (run: TrainingRun, path: String) {
        let f = temporaryFolder()
        let run = try TrainingRun(config: try tinyConfig(folder: f, extra: ["optimization.max_steps=2", "meta.depth=2"]),
                                  resume: false, datasets: (data, data))
        run.log = { _ in }
        _ = try run.run()
        return (run, f + "/checkpoint.safetensors")
    }

    func pngImages(_ data: ImageDataset) throws -> [Image] {
        try (0..<data.count).map { i in
            let bytes = try PNGCodec.encode(width: data.width, height: data.height, channels: 1, pixels: Array(data.image(i)))
            return Image(pngData: Data(bytes), name: "image \(i)")
        }
    }

    func testEmbeddingsAreTheEvaluationFeaturesBitForBit() throws {
        let data = syntheticDataset(count: 10)
        let (run, path) = try trainedCheckpoint(data)
        let encoder = try Encoder(checkpoint: path)
        XCTAssertEqual(encoder.architecture, run.model.config)
        XCTAssertEqual(encoder.preprocessing.mean, [0.2860])
        let aug = augmentation(run.config).evaluation
        let reference = try encoderFeatures(run.model.target, data: data, augmentation: aug)
        let images = try pngImages(data)
        encoder.batchSize = 3  // chunks of 3, 3, 3, 1: the same rows
        let pooled = try encoder.embed(images)
        XCTAssertEqual(pooled.shape, [10, 32])
        XCTAssertEqual(pooled.scalars, reference.scalars)
        // The same pixels given as bytes, as RGBA whose colour is the gray value, or as PNG: the same features.
        let raw = try (0..<data.count).map { try Image(width: 16, height: 16, channels: 1, pixels: Array(data.image($0))) }
        XCTAssertEqual(try encoder.embed(raw).scalars, reference.scalars)
        let rgba = try (0..<data.count).map { i in
            try Image(width: 16, height: 16, channels: 4, pixels: data.image(i).flatMap { [$0, $0, $0, 7] })
        }
        XCTAssertEqual(try encoder.embed(rgba).scalars, reference.scalars)

        let two = try encoder.embed(images, output: .lastLayers(2))
        let referenceTwo = try encoderFeatures(run.model.target, data: data, augmentation: aug, layers: 2)
        XCTAssertEqual(two.scalars, referenceTwo.scalars)
        let tokens = try encoder.embed(Array(images.prefix(2)), output: .patchTokens)
        XCTAssertEqual(tokens.shape, [2, 16, 32])
        // The probes' unpooled features (evaluation.pooling "none") are those tokens, flattened per image.
        let flat = try encoderFeatures(run.model.target, data: data.subset([0, 1]), augmentation: aug, tokens: true)
        XCTAssertEqual(flat.shape, [2, 16 * 32])
        XCTAssertEqual(flat.scalars, tokens.scalars)
        XCTAssertThrowsError(try encoder.embed(images, output: .lastLayers(3)))

        let context = try Encoder(checkpoint: path, network: .context)
        XCTAssertEqual(try context.embed(images).scalars,
                       try encoderFeatures(run.model.encoder, data: data, augmentation: aug).scalars)
    }

    /// One encoder, several threads at once: each gets what it gets alone.
    func testConcurrentEmbeddingGivesTheSoloResults() throws {
        let data = syntheticDataset(count: 12)
        let (_, path) = try trainedCheckpoint(data)
        let encoder = try Encoder(checkpoint: path)
        let images = try pngImages(data)
        let solo = try (0..<4).map { k in try encoder.embed(Array(images[(3 * k)..<(3 * k + 3)])).scalars }
        let results = Mutex<[[Float]?]>(Array(repeating: nil, count: 4))
        DispatchQueue.concurrentPerform(iterations: 4) { k in
            let r = try? encoder.embed(Array(images[(3 * k)..<(3 * k + 3)])).scalars
            results.withLock { $0[k] = r }
        }
        XCTAssertEqual(results.withLock { $0 }.map { $0 ?? [] }, solo)
    }

    /// An encoder packs its Linear weights once for inference (`prepackLinearWeights`); its features equal those
    /// of the same network with the packed copies dropped (any write to a weight's value drops its copy), bit for
    /// bit, at widths that leave edge panels (40, 120, 160 columns) and on 1 and 2 threads.
    func testPrepackedWeightsGiveTheUnpackedFeatures() throws {
        let arch = ViTConfig(imageSize: 32, patchSize: 4, inChannels: 3, embedDim: 40, depth: 2, heads: 2)
        let packed = try Encoder(randomWeights: arch, seed: 3), plain = try Encoder(randomWeights: arch, seed: 3)
        for b in plain.vit.blocks {
            for w in [b.attn.qkv.weight, b.attn.proj.weight, b.mlp.fc1.weight, b.mlp.fc2.weight] {
                XCTAssertNotNil(w.packedWeight)
                let same = w.value
                w.value = same
                XCTAssertNil(w.packedWeight, "a write to the weight keeps a stale packed copy")
            }
        }
        var values = [Float](repeating: 0, count: 5 * 3 * 32 * 32)
        for i in values.indices { values[i] = Float((i * 7919) % 263) / 131 - 1 }
        let images = try Tensor(shape: [5, 3, 32, 32], values: values)
        for threads in [1, 2] {
            packed.engine = Engine(threads: threads)
            plain.engine = Engine(threads: threads)
            for output in [Encoder.Output.pooled, .patchTokens] {
                XCTAssertEqual(try packed.embed(preprocessed: images, output: output).scalars.map(\.bitPattern),
                               try plain.embed(preprocessed: images, output: output).scalars.map(\.bitPattern),
                               "\(output), \(threads) threads")
            }
        }
    }

    func testStateDictWithConfigAndBadInputs() throws {
        let data = syntheticDataset(count: 4)
        let (run, path) = try trainedCheckpoint(data)
        let folder = temporaryFolder()
        let bare = folder + "/networks.safetensors"
        try SafeTensors.write(run.model.stateTensors, to: bare)
        XCTAssertThrowsError(try Encoder(checkpoint: bare)) { XCTAssert("\($0)".contains("config"), "\($0)") }
        let config = folder + "/config.json"
        try run.config.jsonText().write(toFile: config, atomically: true, encoding: .utf8)
        let fromBare = try Encoder(checkpoint: bare, config: config)
        let images = try pngImages(data)
        XCTAssertEqual(try fromBare.embed(images).scalars, try Encoder(checkpoint: path).embed(images).scalars)

        XCTAssertThrowsError(try Encoder(checkpoint: folder + "/missing.safetensors")) {
            XCTAssert("\($0)".contains("missing.safetensors"), "\($0)")
        }
        let garbage = folder + "/garbage.png"
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: garbage))
        XCTAssertThrowsError(try fromBare.embed([try Image(contentsOfFile: garbage)])) {
            XCTAssert("\($0)".contains("garbage.png"), "\($0)")
        }
        XCTAssertThrowsError(try Image(width: 4, height: 4, channels: 3, pixels: [1, 2, 3]))
    }
}
