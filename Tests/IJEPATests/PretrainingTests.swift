import Foundation
import XCTest
import ImageData
import JEPA
@testable import IJEPA
import TensorCore

/// A tiny synthetic gray data set (deterministic), so runs take well under a second per step.
func syntheticDataset(count: Int, size: Int = 16, classes: Int = 4, seed: UInt64 = 1) -> ImageDataset {
    var g = RandomGenerator(seed: seed)
    var pixels = [UInt8](repeating: 0, count: count * size * size)
    var labels = [Int](repeating: 0, count: count)
    for i in 0..<count {
        labels[i] = i % classes
        for p in 0..<size * size {
            // Class-dependent stripes plus noise: learnable, not trivial.
            let stripe = ((p % size) / (size / 4)) == labels[i] ? 160.0 : 40.0
            pixels[i * size * size + p] = UInt8(min(255, stripe + 60 * g.nextUniform()))
        }
    }
    return ImageDataset(name: "synthetic", width: size, height: size, channels: 1, pixels: pixels, labels: labels,
                        classNames: (0..<classes).map { "c\($0)" })
}

func tinyConfig(folder: String, extra: [String] = []) throws -> TrainingConfig {
    try TrainingConfig.load(path: nil, overrides: [
        "data.dataset=\"image-folder\"", "data.image_folder=\"unused\"", "data.crop_size=16", "data.batch_size=4",
        "mask.patch_size=4", "mask.min_keep=2", "mask.num_pred_masks=2", "mask.pred_mask_scale=[0.3, 0.4]",
        "meta.depth=1", "meta.embed_dim=32", "meta.num_heads=2", "meta.pred_depth=1", "meta.pred_emb_dim=16",
        "optimization.epochs=2", "optimization.warmup=0.5", "logging.folder=\"\(folder)\"", "logging.checkpoint_every=3",
        "logging.log_every=100",
    ] + extra)
}

func temporaryFolder() -> String {
    let p = NSTemporaryDirectory() + "ijepa-test-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

func losses(_ folder: String) throws -> [String] {
    try String(contentsOfFile: folder + "/log.csv", encoding: .utf8).split(separator: "\n").dropFirst()
        .map { $0.split(separator: ",").prefix(3).joined(separator: ",") }  // step, epoch, loss
}

final class TrainingConfigTests: XCTestCase {
    func write(_ text: String) -> String {
        let p = temporaryFolder() + "/config.json"
        _ = FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
        return p
    }

    func assertRefused(_ text: String, mentions words: [String], file: StaticString = #filePath, line: UInt = #line) {
        let path = write(text)
        XCTAssertThrowsError(try TrainingConfig.load(path: path), file: file, line: line) { error in
            let message = "\(error)"
            for w in words { XCTAssert(message.contains(w), "message '\(message)' should mention '\(w)'", file: file, line: line) }
        }
    }

    func testDefaultsAreValidAndRoundTrip() throws {
        let c = try TrainingConfig.load(path: nil)
        XCTAssertEqual(c.meta.modelName, "vit_tiny")
        let again = try TrainingConfig.load(path: write(c.jsonText()))
        XCTAssertEqual(again, c)
        XCTAssertEqual(again.trainingHash, c.trainingHash)
        var other = c
        other.optimization.lr = 2e-3
        XCTAssertNotEqual(other.trainingHash, c.trainingHash)
        other = c
        other.logging.folder = "elsewhere"
        XCTAssertEqual(other.trainingHash, c.trainingHash, "the run folder does not change the numbers")
        let recomputing = try TrainingConfig.load(path: nil, overrides: ["engine.recompute_blocks=true"])
        XCTAssertTrue(recomputing.engine.recomputeBlocks)
        XCTAssertEqual(recomputing.trainingHash, c.trainingHash, "recomputation changes no number: a run may resume with it")
        XCTAssertEqual(try TrainingConfig.load(path: write(recomputing.jsonText())), recomputing)
    }

    func testBadConfigsAreRefusedWithTheFileAndKey() {
        assertRefused("{\"mask\": {\"min_kep\": 3}}", mentions: ["config.json", "mask.min_kep", "min_keep"])
        assertRefused("{\"masks\": {}}", mentions: ["unknown section 'masks'"])
        assertRefused("{\"optimization\": {\"epochs\": \"ten\"}}", mentions: ["optimization.epochs", "integer"])
        assertRefused("{\"optimization\": {\"epochs\": 2.5}}", mentions: ["optimization.epochs"])
        assertRefused("{\"data\": {\"use_horizontal_flip\": 1}}", mentions: ["data.use_horizontal_flip", "true or false"])
        assertRefused("{\"engine\": {\"recompute_blocks\": \"yes\"}}", mentions: ["engine.recompute_blocks", "true or false"])
        assertRefused("{\"data\": {\"batch_size\": 0}}", mentions: ["batch_size"])
        assertRefused("{\"data\": {\"crop_scale\": [0.5, 0.2]}}", mentions: ["crop_scale"])
        assertRefused("{\"mask\": {\"patch_size\": 5}}", mentions: ["patch_size", "crop_size"])
        assertRefused("{\"data\": {\"crop_size\": 0}}", mentions: ["data.crop_size 0", "positive multiple"])
        assertRefused("{\"meta\": {\"depth\": -1}}", mentions: ["meta.depth"])
        assertRefused("{\"meta\": {\"pred_depth\": 0}}", mentions: ["meta.pred_depth"])
        assertRefused("{\"optimization\": {\"ipe_scale\": 0}}", mentions: ["optimization.ipe_scale"])
        assertRefused("{\"optimization\": {\"weight_decay\": -0.1}}", mentions: ["optimization.weight_decay"])
        assertRefused("{\"evaluation\": {\"train_samples\": -5}}", mentions: ["evaluation.train_samples"])
        assertRefused("{\"evaluation\": {\"probe_iterations\": 0}}", mentions: ["evaluation.probe_iterations"])
        assertRefused("{\"evaluation\": {\"probe_weight_decay\": -1}}", mentions: ["evaluation.probe_weight_decay"])
        assertRefused("{\"meta\": {\"model_name\": \"vit_gigantic\"}}", mentions: ["vit_gigantic"])
        assertRefused("{\"data\": {\"batch_size\": 4,}", mentions: ["config.json", "malformed JSON"])
        assertRefused("[1, 2]", mentions: ["top level"])
        // The official sampler would loop forever here (a 7x7 grid's smallest target has 6 patches).
        assertRefused("{\"mask\": {\"min_keep\": 10}}", mentions: ["min_keep"])
        XCTAssertThrowsError(try TrainingConfig.load(path: "/nonexistent/config.json")) {
            XCTAssert("\($0)".contains("/nonexistent/config.json"))
        }
        XCTAssertThrowsError(try TrainingConfig.load(path: nil, overrides: ["epochs=3"])) {
            XCTAssert("\($0)".contains("section.key=value"))
        }
    }

    func testOverridesApply() throws {
        let c = try TrainingConfig.load(path: nil, overrides: ["optimization.epochs=7", "mask.fixed=true", "logging.folder=/tmp/x"])
        XCTAssertEqual(c.optimization.epochs, 7)
        XCTAssertTrue(c.mask.fixed)
        XCTAssertEqual(c.logging.folder, "/tmp/x")
    }

    /// The JSON the configuration writes is what checkpoints carry and hash: these two files were written by the
    /// code before the key table (`ijepa train --steps 1`, defaults and every optional key set), and must be
    /// reproduced byte for byte, so every existing run still resumes.
    func testConfigTextMatchesWhatEarlierRunsWrote() throws {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).path
        for (file, folder) in [("config-defaults.json", "cfgA"), ("config-every-key.json", "cfgB")] {
            let text = try String(contentsOfFile: dir + "/" + file, encoding: .utf8)
            let c = try TrainingConfig.load(text: text, source: file)
            XCTAssertEqual(c.jsonText() + "\n", text, file)
            XCTAssertEqual(c.logging.folder, folder)
        }
        var defaults = TrainingConfig()
        defaults.logging.folder = "cfgA"
        defaults.optimization.maxSteps = 1
        let text = try String(contentsOfFile: dir + "/config-defaults.json", encoding: .utf8)
        XCTAssertEqual(defaults.jsonText() + "\n", text)
        XCTAssertEqual(defaults.trainingHash, TrainingConfig().trainingHash, "the folder and max_steps are not hashed")
        let every = try TrainingConfig.load(text: try String(contentsOfFile: dir + "/config-every-key.json", encoding: .utf8), source: "x")
        XCTAssertEqual(every.optimization.gradientReduction, "allreduce")
        XCTAssertEqual(every.data.testFolder, "/tmp/none")
        XCTAssertEqual(every.data.mean, [0.5])
        XCTAssertTrue(every.engine.recomputeBlocks)
    }

    /// `Codable` reads and writes the same keys as `load` and `jsonText`, and refuses unknown ones.
    func testCodableUsesTheSameKeys() throws {
        var c = try TrainingConfig().applying(["optimization.variance_weight=25", "data.test_folder=/t", "mask.fixed=true"])
        c.meta.seed = 3
        let encoded = try JSONEncoder().encode(c)
        XCTAssertEqual(try JSONDecoder().decode(TrainingConfig.self, from: encoded), c)
        XCTAssertEqual(try TrainingConfig.load(text: String(decoding: encoded, as: UTF8.self), source: "x"), c)
        XCTAssertEqual(try JSONDecoder().decode(TrainingConfig.self, from: Data(c.jsonText().utf8)), c)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: encoded) as? [String: [String: Any]])
        XCTAssertEqual(object["optimization"]?["variance_weight"] as? Double, 25)
        XCTAssertNil(object["optimization"]?["gradient_shards"], "keys the official configs lack stay out at their default")
        XCTAssertEqual(try JSONDecoder().decode(TrainingConfig.self, from: Data("{\"meta\": {\"seed\": 9}}".utf8)).meta.seed, 9)
        for bad in ["{\"meta\": {\"sead\": 9}}", "{\"metta\": {}}", "{\"meta\": {\"seed\": \"9\"}}"] {
            XCTAssertThrowsError(try JSONDecoder().decode(TrainingConfig.self, from: Data(bad.utf8)), bad)
        }
    }

    /// The regulariser's weights are written only when set, so the official configuration's JSON and hash
    /// (which existing checkpoints carry) do not change; when set they round-trip and change the hash.
    func testRegularizerKeysOnlyWhenSet() throws {
        let official = TrainingConfig()
        XCTAssertFalse(official.jsonText().contains("variance_weight"))
        XCTAssertEqual(official.trainingHash, try TrainingConfig.load(text: official.jsonText(), source: "x").trainingHash)
        let c = try official.applying(["optimization.variance_weight=25", "optimization.covariance_weight=1"])
        XCTAssert(c.jsonText().contains("\"variance_weight\" : 25"), c.jsonText())
        XCTAssertEqual(try TrainingConfig.load(text: c.jsonText(), source: "x"), c)
        XCTAssertNotEqual(c.trainingHash, official.trainingHash)
        XCTAssertThrowsError(try official.applying(["optimization.covariance_weight=-1"]))
        XCTAssertFalse(official.jsonText().contains("gradient_shards"))
        XCTAssertEqual(try official.applying(["optimization.gradient_shards=8"]).optimization.gradientShards, 8)
        for bad in ["3", "0", "128"] {  // not a power of two; not >= 1; does not divide batch 64
            XCTAssertThrowsError(try official.applying(["optimization.gradient_shards=\(bad)"])) {
                XCTAssert("\($0)".contains("gradient_shards"), "\($0)")
            }
        }
    }

    /// A preset replaces the defaults; the JSON and the overrides still win; the run's JSON (which names the preset
    /// and, under a preset, every key) reads back to the same configuration, through `load` and `Codable` alike.
    func testPresetsStartTheConfigurationAndRoundTrip() throws {
        XCTAssertEqual(TrainingConfig.preset("official"), TrainingConfig())
        XCTAssertFalse(TrainingConfig().jsonText().contains("preset"), "the official JSON (and hash) stay as they were")
        let small = try XCTUnwrap(TrainingConfig.preset("small-images"))
        XCTAssertEqual(small.meta.preset, "small-images")
        XCTAssertEqual(small.optimization.varianceWeight, 1)
        XCTAssertEqual(small.optimization.covarianceWeight, 0.04)
        XCTAssertEqual(small.optimization.epochs, 5)
        XCTAssertEqual(small.evaluation.layers, 4)
        XCTAssertNotEqual(small.trainingHash, TrainingConfig().trainingHash)
        let spelledOut = try TrainingConfig().applying(["optimization.variance_weight=1", "optimization.covariance_weight=0.04",
                                                        "optimization.epochs=5"])
        XCTAssertEqual(small.trainingHash, spelledOut.trainingHash, "the name is not hashed: a run with the same values resumes")

        let loaded = try TrainingConfig.load(path: nil, overrides: ["meta.preset=small-images"])
        XCTAssertEqual(loaded, small)
        let file = write("{\"meta\": {\"preset\": \"small-images\"}, \"optimization\": {\"epochs\": 2}}")
        let fromFile = try TrainingConfig.load(path: file, overrides: ["optimization.covariance_weight=0"])
        XCTAssertEqual(fromFile.optimization.epochs, 2, "the file wins over the preset")
        XCTAssertEqual(fromFile.optimization.covarianceWeight, 0, "an override wins over the preset")
        XCTAssertEqual(fromFile.optimization.varianceWeight, 1, "what neither gives comes from the preset")
        // The value 0 would be left out under the official preset; under this one it must be written, or the
        // preset's 0.04 would come back when the run's config is read.
        XCTAssert(fromFile.jsonText().contains("\"covariance_weight\" : 0"), fromFile.jsonText())
        XCTAssertEqual(try TrainingConfig.load(text: fromFile.jsonText(), source: "x"), fromFile)
        XCTAssertEqual(try JSONDecoder().decode(TrainingConfig.self, from: JSONEncoder().encode(fromFile)), fromFile)
        XCTAssertEqual(try JSONDecoder().decode(TrainingConfig.self, from: Data(fromFile.jsonText().utf8)), fromFile)
        XCTAssertEqual(try TrainingConfig.load(path: nil, overrides: ["meta.preset=small-images", "meta.preset=official"]),
                       TrainingConfig(), "the last override names the preset")

        XCTAssertThrowsError(try TrainingConfig.load(path: nil, overrides: ["meta.preset=tiny"])) {
            XCTAssert("\($0)".contains("meta.preset 'tiny'") && "\($0)".contains("small-images"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingConfig.load(path: write("{\"meta\": {\"preset\": 3}}"))) {
            XCTAssert("\($0)".contains("config.json") && "\($0)".contains("meta.preset must be a string"), "\($0)")
        }
        XCTAssertThrowsError(try JSONDecoder().decode(TrainingConfig.self, from: Data("{\"meta\": {\"preset\": \"x\"}}".utf8)))
    }
}

final class TrainingRunTests: XCTestCase {
    /// Stop after 5 steps (checkpoints at 3 and at the stop), resume to the end: the losses after resuming equal
    /// those of an uninterrupted run, bit for bit; and so do the final weights.
    func testResumeReproducesTheUninterruptedRun() throws {
        let data = syntheticDataset(count: 24)
        let a = temporaryFolder(), b = temporaryFolder()
        let full = try TrainingRun(config: try tinyConfig(folder: a), resume: false, datasets: (data, data))
        full.log = { _ in }
        let s = try full.run()
        XCTAssertEqual(s.stepsDone, 12)

        let first = try TrainingRun(config: try tinyConfig(folder: b, extra: ["optimization.max_steps=5"]), resume: false, datasets: (data, data))
        first.log = { _ in }
        _ = try first.run()
        // Refuses to start over a run unless told to.
        XCTAssertThrowsError(try TrainingRun(config: try tinyConfig(folder: b), resume: false, datasets: (data, data))) {
            XCTAssert("\($0)".contains("--resume"))
        }
        let second = try TrainingRun(config: try tinyConfig(folder: b), resume: true, datasets: (data, data))
        XCTAssertEqual(second.trainer.stepsDone, 5)
        second.log = { _ in }
        _ = try second.run()
        XCTAssertEqual(try losses(b), try losses(a))
        for ((name, p), (_, q)) in zip(full.model.stateDict, second.model.stateDict) {
            XCTAssertEqual(p.value.scalars, q.value.scalars, "\(name) differs after resuming")
        }
    }

    /// A log that cannot be written (here log.csv is a folder) is reported once, naming the file, and the run
    /// still trains to the end and writes its checkpoint and its other log.
    func testUnwritableLogIsReportedAndTrainingGoesOn() throws {
        let data = syntheticDataset(count: 24)
        let folder = temporaryFolder()
        let run = try TrainingRun(config: try tinyConfig(folder: folder, extra: ["optimization.max_steps=3"]),
                                  resume: false, datasets: (data, data))
        try FileManager.default.createDirectory(atPath: folder + "/log.csv", withIntermediateDirectories: true)
        var lines: [String] = []
        run.log = { lines.append($0) }
        XCTAssertEqual(try run.run().stepsDone, 3)
        let warnings = lines.filter { $0.contains("warning:") }
        XCTAssertEqual(warnings.count, 1, "\(warnings)")
        XCTAssert(warnings.first?.contains(folder + "/log.csv") == true, "\(warnings)")
        XCTAssert(FileManager.default.fileExists(atPath: folder + "/checkpoint.safetensors"))
        let jsonl = try String(contentsOfFile: folder + "/log.jsonl", encoding: .utf8)
        XCTAssertFalse(jsonl.isEmpty)
    }

    /// log.csv and log.jsonl carry the same values under the same names, one row / object per step.
    func testLogsShareOneVocabulary() throws {
        let data = syntheticDataset(count: 16)
        let folder = temporaryFolder()
        let run = try TrainingRun(config: try tinyConfig(folder: folder, extra: ["optimization.max_steps=3"]),
                                  resume: false, datasets: (data, data))
        run.log = { _ in }
        _ = try run.run()
        let csv = try String(contentsOfFile: folder + "/log.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.first.map(String.init), StepRecord.columns.joined(separator: ","))
        let objects = try String(contentsOfFile: folder + "/log.jsonl", encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(objects.count, 3)
        XCTAssertEqual(csv.count, 4)
        for (row, object) in zip(csv.dropFirst(), objects) {
            XCTAssertEqual(Set(object.keys), Set(StepRecord.columns))
            for (name, text) in zip(StepRecord.columns, row.split(separator: ",")) {
                XCTAssertEqual((object[name] as? NSNumber)?.doubleValue, Double(text), name)
            }
            XCTAssertGreaterThan(Double(row.split(separator: ",").last ?? "") ?? 0, 1, "rss_mib")
        }
    }

    /// The run's parts on their own: `RunLog` appends, truncates on resume and warns once per unwritable file;
    /// `ProgressLine` averages over its window.
    func testRunLogAndProgressLineOnTheirOwn() throws {
        let folder = temporaryFolder()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var warnings: [String] = []
        let log = RunLog(folder: folder) { warnings.append($0) }
        func record(_ step: Int) -> StepRecord {
            StepRecord(result: StepResult(step: step, loss: 0.5, learningRate: 1e-4, weightDecay: 0.04, momentum: 0.996,
                                          contextTokens: 30, targetTokens: 9),
                       epoch: Double(step) / 10, imagesPerSecond: 100, gflops: 50, seconds: Double(step), rssMiB: 300)
        }
        for step in 1...3 { log.append(record(step)) }
        try log.truncate(after: 2)
        let csv = try String(contentsOfFile: folder + "/log.csv", encoding: .utf8)
        XCTAssertEqual(csv, StepRecord.columns.joined(separator: ",") + "\n" + record(1).csvLine + "\n" + record(2).csvLine + "\n")
        let jsonl = try String(contentsOfFile: folder + "/log.jsonl", encoding: .utf8)
        XCTAssertEqual(jsonl, record(1).jsonLine + "\n" + record(2).jsonLine + "\n")
        XCTAssert(record(3).csvLine.hasPrefix("3,0.3000,0.500000,1.000000e-04,0.040000,0.996000,30,9,100.00,50.00,3.000,300.0"), record(3).csvLine)
        // A log replaced by a folder: one warning naming it, and the other log still written.
        try FileManager.default.removeItem(atPath: folder + "/log.jsonl")
        try FileManager.default.createDirectory(atPath: folder + "/log.jsonl", withIntermediateDirectories: false)
        log.append(record(3))
        log.append(record(4))
        XCTAssertEqual(warnings.count, 1)
        XCTAssert(warnings.first?.contains(folder + "/log.jsonl") == true, "\(warnings)")
        XCTAssertEqual(try String(contentsOfFile: folder + "/log.csv", encoding: .utf8).split(separator: "\n").count, 5)

        var progress = ProgressLine(totalSteps: 10)
        _ = progress.add(record(1), seconds: 1, flops: 1e9, images: 64)
        let line = progress.add(record(2), seconds: 3, flops: 3e9, images: 64, ranks: 2, combineSeconds: 1)
        XCTAssert(line.contains(" 32.0 img/s"), line)  // 128 images in 4 s
        XCTAssert(line.contains("  1.0 GFLOP/s"), line)
        XCTAssert(line.contains("ETA 16s"), line)  // 8 steps at 2 s
        XCTAssert(line.hasSuffix("2 ranks, combine 25 %"), line)
        progress.commit()
        XCTAssert(progress.add(record(3), seconds: 1, flops: 1e9, images: 64).contains(" 64.0 img/s"))
    }

    func testCorruptAndMismatchedCheckpointsAreRefused() throws {
        let data = syntheticDataset(count: 16)
        let f = temporaryFolder()
        let run = try TrainingRun(config: try tinyConfig(folder: f, extra: ["optimization.max_steps=2"]), resume: false, datasets: (data, data))
        run.log = { _ in }
        _ = try run.run()
        let path = f + "/checkpoint.safetensors"
        let good = try Data(contentsOf: URL(fileURLWithPath: path))

        // Another configuration.
        XCTAssertThrowsError(try TrainingRun(config: try tinyConfig(folder: f, extra: ["optimization.lr=0.5"]), resume: true, datasets: (data, data))) {
            XCTAssert("\($0)".contains(path) && "\($0)".contains("configuration"), "\($0)")
        }
        // Truncated.
        try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TrainingRun(config: try tinyConfig(folder: f), resume: true, datasets: (data, data))) {
            XCTAssert("\($0)".contains(path), "\($0)")
        }
        // A bit flipped in the header's state record.
        var bad = good
        if let r = bad.range(of: Data("stepsDone".utf8)) { bad[r.lowerBound] = UInt8(ascii: "x") }
        try bad.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try TrainingRun(config: try tinyConfig(folder: f), resume: true, datasets: (data, data))) {
            XCTAssert("\($0)".contains(path), "\($0)")
        }
        // Missing.
        try FileManager.default.removeItem(atPath: path)
        XCTAssertThrowsError(try TrainingRun(config: try tinyConfig(folder: f), resume: true, datasets: (data, data))) {
            XCTAssert("\($0)".contains("no checkpoint"), "\($0)")
        }
    }

    func testStepFLOPsAndProgressFormatting() {
        XCTAssertEqual(formatDuration(59.4), "59s")
        XCTAssertEqual(formatDuration(61), "1m01s")
        XCTAssertEqual(formatDuration(3 * 3600 + 120), "3h02m")
        XCTAssertEqual(formatDuration(.nan), "?")
    }
}

final class EvaluationTests: XCTestCase {
    func testFeaturesAreThePooledEncoderOutputAndLastLayersConcatenate() throws {
        let data = syntheticDataset(count: 7)
        let cfg = try tinyConfig(folder: temporaryFolder(), extra: ["meta.depth=2"])
        let model = try IJEPAModel(try cfg.vitConfig(), predictorDim: 16, predictorDepth: 1, seed: 3)
        let aug = augmentation(cfg).evaluation
        let one = try encoderFeatures(model.encoder, data: data, augmentation: aug, layers: 1, batchSize: 3)
        let direct = try meanTokens(try model.encoder(Variable(evaluationTensor(data, augmentation: aug, range: 0..<7)), tape: Engine().noGrad), tape: Engine().noGrad).value
        XCTAssertEqual(one.shape, [7, 32])
        for (a, b) in zip(one.scalars, direct.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        let two = try encoderFeatures(model.encoder, data: data, augmentation: aug, layers: 2, batchSize: 4)
        XCTAssertEqual(two.shape, [7, 64])
        for r in 0..<7 {
            for c in 0..<32 { XCTAssertEqual(two[r, c], one[r, c], accuracy: 1e-5, "the last block comes first") }
        }
        XCTAssertThrowsError(try encoderFeatures(model.encoder, data: data, augmentation: aug, layers: 3))
    }

    func testSubsetsAreFixedAndDistinct() {
        let data = syntheticDataset(count: 50)
        let a = evaluationSubset(data, samples: 20, seed: 1, split: 0), b = evaluationSubset(data, samples: 20, seed: 1, split: 0)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.count, 20)
        XCTAssertNotEqual(evaluationSubset(data, samples: 20, seed: 2, split: 0), a)
        // Seed 1's train subset is not seed 0's test subset (they once shared a stream: seed + 1).
        XCTAssertNotEqual(evaluationSubset(data, samples: 20, seed: 0, split: 1), a)
        XCTAssertEqual(evaluationSubset(data, samples: 0, seed: 1, split: 0), data)
    }
}
