import Foundation
import XCTest
import ImageData
import JEPA
@testable import IJEPA
import TensorCore

/// Checkpoint format v2 (official (1, N, D) position tables), v1 files for evaluation only, and evaluation of a
/// trained checkpoint on another data set.
final class CheckpointFormatTests: XCTestCase {
    /// A 2-step run of the tiny config; returns its folder.
    func trainedRun(_ data: ImageDataset) throws -> (folder: String, run: TrainingRun) {
        let f = temporaryFolder()
        let run = try TrainingRun(config: try tinyConfig(folder: f, extra: ["optimization.max_steps=2"]), resume: false,
                                  datasets: (data, data))
        run.log = { _ in }
        _ = try run.run()
        return (f, run)
    }

    func testVersion2HoldsTheOfficialShapesAndNames() throws {
        let (f, run) = try trainedRun(syntheticDataset(count: 16))
        let (state, tensors) = try Checkpoint.readState(f + "/checkpoint.safetensors")
        XCTAssertEqual(state.version, "ijepa-checkpoint-v2")
        let n = run.model.config.tokens, d = run.model.config.embedDim
        for prefix in ["encoder.", "target_encoder."] {
            XCTAssertEqual(tensors[prefix + "pos_embed"]?.shape, [1, n, d])
        }
        XCTAssertEqual(tensors["predictor.predictor_pos_embed"]?.shape, [1, n, 16])
        XCTAssertEqual(tensors["predictor.mask_token"]?.shape, [1, 1, 16])
        // Every network tensor under its official name, once: the state dict split by prefix is the module's.
        let names = Set(tensors.keys.filter { !$0.hasPrefix("optimizer.") })
        XCTAssertEqual(names, Set(run.model.stateTensors.map(\.0)))
        XCTAssertEqual(names.filter { $0.hasPrefix("encoder.") }.count, run.model.encoder.stateDict.count)
    }

    /// A v1 file (tables (N, D), the old random streams) is refused by --resume with the reason, and its
    /// networks still load for evaluation, equal to what was saved.
    func testVersion1LoadsForEvaluationButIsNotResumed() throws {
        let data = syntheticDataset(count: 16)
        let (f, run) = try trainedRun(data)
        let path = f + "/checkpoint.safetensors"
        var (state, tensors) = try Checkpoint.readState(path)
        state.version = TrainingState.version1
        for key in ["encoder.pos_embed", "target_encoder.pos_embed", "predictor.predictor_pos_embed"] {
            let t = tensors[key]!
            tensors[key] = try t.reshaped(Array(t.shape.dropFirst()))
        }
        let json = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        try SafeTensors.write(tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                              metadata: [Checkpoint.stateKey: json], to: path)

        XCTAssertThrowsError(try TrainingRun(config: try tinyConfig(folder: f), resume: true, datasets: (data, data))) {
            let m = "\($0)"
            XCTAssert(m.contains(path) && m.contains("cannot be resumed") && m.contains("random streams"), m)
        }
        let opened = try TrainedCheckpoint(path: path)
        XCTAssertEqual(opened.state?.version, TrainingState.version1)
        XCTAssertEqual(opened.state?.stepsDone, 2)
        for ((name, a), (_, b)) in zip(opened.model.stateDict, run.model.stateDict) {
            XCTAssertEqual(a.value.scalars, b.value.scalars, name)
        }
    }

    /// Evaluation is not tied to the training data: the configuration hash guards --resume only.
    func testEvaluationTakesAnotherDataSetAndABareStateDict() throws {
        let (f, run) = try trainedRun(syntheticDataset(count: 16))
        let path = f + "/checkpoint.safetensors"
        let other = temporaryFolder()
        let opened = try TrainedCheckpoint(path: path, overrides: ["data.dataset=\"idx\"", "data.root_path=\"\(other)\""])
        XCTAssertEqual(opened.config.data.dataset, "idx")
        XCTAssertEqual(opened.config.data.rootPath, other)
        XCTAssertNotEqual(opened.config.trainingHash, run.config.trainingHash)
        XCTAssertEqual(opened.evaluatedEncoder.norm.weight.value.scalars, run.model.target.norm.weight.value.scalars)

        // The networks alone, as the official modules' state dicts would be saved: needs the configuration.
        let bare = other + "/bare.safetensors"
        try SafeTensors.write(run.model.stateTensors, metadata: [:], to: bare)
        XCTAssertThrowsError(try TrainedCheckpoint(path: bare)) { XCTAssert("\($0)".contains("--config"), "\($0)") }
        let fromBare = try TrainedCheckpoint(path: bare, config: run.config)
        XCTAssertNil(fromBare.state)
        for ((name, a), (_, b)) in zip(fromBare.model.stateDict, run.model.stateDict) {
            XCTAssertEqual(a.value.scalars, b.value.scalars, name)
        }
        // Another architecture is refused, naming the file and a tensor.
        XCTAssertThrowsError(try TrainedCheckpoint(path: bare, config: try tinyConfig(folder: f, extra: ["meta.embed_dim=16"]))) {
            XCTAssert("\($0)".contains(bare) && "\($0)".contains("shape"), "\($0)")
        }
    }

    /// A checkpoint whose configuration describes networks far larger than its tensors (ViT-L widths in a file of
    /// a tiny run) is refused from its size, before the networks are built.
    func testConfigurationLargerThanTheFileIsRefusedBeforeBuilding() throws {
        let (f, run) = try trainedRun(syntheticDataset(count: 16))
        let path = f + "/checkpoint.safetensors"
        let (tensors, meta) = try SafeTensors.read(path)
        var state = try Checkpoint.state(from: meta, path: path)
        state.config = try run.config.applying(["meta.embed_dim=1024", "meta.depth=24", "meta.num_heads=16"]).jsonText()
        let forged = f + "/forged.safetensors"
        try SafeTensors.write(tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                              metadata: [Checkpoint.stateKey: String(decoding: try JSONEncoder().encode(state), as: UTF8.self)],
                              to: forged)
        XCTAssertThrowsError(try TrainedCheckpoint(path: forged)) { e in
            XCTAssert("\(e)".contains(forged) && "\(e)".contains("bytes of weights"), "\(e)")
        }
        XCTAssertNoThrow(try TrainedCheckpoint(path: path))
    }

    /// The evaluation of a trained run: probe and k-NN for the three feature sets, and the collapse diagnostics
    /// of both encoders' features.
    func testEvaluationReportsScoresAndFeatureStatistics() throws {
        let data = syntheticDataset(count: 16)
        let (_, run) = try trainedRun(data)
        var evaluator = Evaluator(train: data, test: data, augmentation: augmentation(run.config),
                                  options: run.config.evaluation, seed: 0)
        evaluator.log = { _ in }
        let report = try evaluator.compare(trained: run.evaluatedEncoder, randomInit: try run.config.randomInitEncoder())
        XCTAssertEqual(Set(report.probe.keys), ["ijepa", "randomInit", "rawPixels"])
        XCTAssertEqual(Set(report.knn.keys), ["ijepa", "randomInit", "rawPixels"])
        XCTAssertEqual(Set(report.features?.keys ?? [:].keys), ["ijepa", "randomInit"])
        XCTAssertEqual(report.evaluatedOn, "test")
        // A validation split carved from train: disjoint from the images the probes are fitted on, the same for
        // every seed, and the test split is not read (here a test split of other images would fail the probes).
        var options = run.config.evaluation
        options.validationSamples = 5
        let other = syntheticDataset(count: 16, seed: 9)
        let v0 = Evaluator(train: data, test: other, augmentation: augmentation(run.config), options: options, seed: 0)
        let v1 = Evaluator(train: data, test: other, augmentation: augmentation(run.config), options: options, seed: 7)
        XCTAssertEqual(v0.evaluatedOn, "validation")
        XCTAssertEqual([v0.train.count, v0.test.count], [11, 5])
        XCTAssertEqual(v0.test, v1.test)
        XCTAssertNotEqual(v0.test, data.subset(Array(0..<5)))
        let fitted = Set((0..<v0.train.count).map { v0.train.image($0) }), scored = (0..<5).map { v0.test.image($0) }
        XCTAssert(scored.allSatisfy { !fitted.contains($0) })
        XCTAssert(scored.allSatisfy { s in (0..<data.count).contains { data.image($0) == s } })
        for (name, s) in report.features ?? [:] {
            XCTAssertEqual(s.dimensions, run.config.meta.embedDim, name)
            XCTAssert(s.effectiveRank >= 1 && s.effectiveRank <= Double(s.dimensions), "\(name): \(s)")
            XCTAssert(s.minStd > 0 && s.minStd <= s.meanStd && s.meanStd <= s.maxStd, "\(name): \(s)")
        }
    }

    /// An IDX folder other than Fashion-MNIST: its own size, class names from classes.txt or numbers.
    func testIDXFolderOfAnyDataSet() throws {
        let dir = temporaryFolder()
        for (split, count) in [("train", 5), ("t10k", 3)] {
            try IDX.writeImages(path: dir + "/\(split)-images-idx3-ubyte.gz", count: count, height: 8, width: 8,
                                pixels: (0..<count * 64).map { UInt8($0 % 256) }, gzip: true)
            try IDX.writeLabels(path: dir + "/\(split)-labels-idx1-ubyte.gz", labels: (0..<count).map { $0 % 3 }, gzip: true)
        }
        let train = try IDXFolder.load(split: "train", directory: dir)
        XCTAssertEqual(train.count, 5)
        XCTAssertEqual(train.width, 8)
        XCTAssertEqual(train.classNames, ["0", "1", "2"])
        XCTAssert(train.name.hasSuffix("-train"), train.name)
        try "zero\none\ntwo\n".write(toFile: dir + "/classes.txt", atomically: true, encoding: .utf8)
        XCTAssertEqual(try IDXFolder.load(split: "test", directory: dir).classNames, ["zero", "one", "two"])
        try "zero\none\n".write(toFile: dir + "/classes.txt", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try IDXFolder.load(split: "train", directory: dir)) {
            XCTAssert("\($0)".contains("label 2 outside 0..<2"), "\($0)")
        }
    }
}
