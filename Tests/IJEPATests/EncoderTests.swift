@_spi(Tuning) import CPUKernels
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

    /// An encoder packs its Linear weights once for inference (`prepackLinearWeights`) and keeps them in the
    /// packed copy only; unpacked (`withValue`), each weight has the bits of the network's initial one; the
    /// features equal those of the same network with the unpacked values written back (a write drops the packed
    /// copy), bit for bit, at widths that leave edge panels (40, 120, 160 columns) and on 1 and 2 threads; and a
    /// GEMM blocking with another KC (whose products cannot read the packed copy) reads unpacked values.
    func testPrepackedWeightsGiveTheUnpackedFeatures() throws {
        let arch = ViTConfig(imageSize: 32, patchSize: 4, inChannels: 3, embedDim: 40, depth: 2, heads: 2)
        let packed = try Encoder(randomWeights: arch, seed: 3), plain = try Encoder(randomWeights: arch, seed: 3)
        var rng = RandomGenerator(seed: 3).stream(.initialisation)
        let initial = try VisionTransformer(arch, rng: &rng)
        for (b, b0) in zip(plain.vit.blocks, initial.blocks) {
            for (w, w0) in zip([b.attn.qkv.weight, b.attn.proj.weight, b.mlp.fc1.weight, b.mlp.fc2.weight],
                               [b0.attn.qkv.weight, b0.attn.proj.weight, b0.mlp.fc1.weight, b0.mlp.fc2.weight]) {
                XCTAssertNotNil(w.packedWeight)
                XCTAssertTrue(w.valueReleased)
                XCTAssertEqual(w.value.count, 0, "the value is kept besides its packed copy")
                XCTAssertEqual(w.shape, w0.shape)
                let unpacked = w.withValue { Array(UnsafeBufferPointer(start: $0, count: w0.value.count)) }
                XCTAssertEqual(unpacked.map(\.bitPattern), w0.value.scalars.map(\.bitPattern), "unpacked weight \(w0.shape)")
                w.value = try Tensor(shape: w0.shape, values: unpacked)
                XCTAssertNil(w.packedWeight, "a write to the weight keeps a stale packed copy")
                XCTAssertFalse(w.valueReleased)
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
        var otherKC = Engine(threads: 2)
        otherKC.kernels.blocking.kc = 24  // k of 40 / 160 in two blocks: other rounding points, close results
        packed.engine = otherKC
        plain.engine = otherKC
        let viaUnpacked = try packed.embed(preprocessed: images).scalars, reference = try plain.embed(preprocessed: images).scalars
        XCTAssertEqual(viaUnpacked.map(\.bitPattern), reference.map(\.bitPattern), "KC 24: the unpacked values")
        XCTAssert(zip(viaUnpacked, try Encoder(randomWeights: arch, seed: 3).embed(preprocessed: images).scalars)
            .allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) }, "KC 24 against the built-in KC")
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
