import Foundation
import XCTest
import ImageData
import IJEPA
import TensorCore

/// The training run's parts an app uses: its own images, the per-step hook, the progress line switched off.
final class TrainingPartsTests: XCTestCase {
    /// Images of 20 px exported as a folder of PNGs, and the same PNGs as `Image` values in the folder's order.
    func folderAndImages(count: Int) throws -> (folder: String, images: [Image], labels: [Int]) {
        let data = syntheticDataset(count: count, size: 20)
        let folder = temporaryFolder() + "/images"
        try ImageFolder.export(data, to: folder, overwrite: false)
        var images: [Image] = [], labels: [Int] = []
        let classes = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        for (label, c) in classes.enumerated() {
            for file in try FileManager.default.contentsOfDirectory(atPath: folder + "/" + c).sorted() {
                images.append(try Image(contentsOfFile: folder + "/" + c + "/" + file))
                labels.append(label)
            }
        }
        return (folder, images, labels)
    }

    func checkpointTensors(_ folder: String) throws -> [String: [Float]] {
        try SafeTensors.read(folder + "/checkpoint.safetensors").tensors.mapValues(\.scalars)
    }

    func testInMemoryImagesTrainLikeTheSameFolderOfPNGs() throws {
        let (images, list, labels) = try folderAndImages(count: 12)
        let a = temporaryFolder(), b = temporaryFolder()
        let steps = ["optimization.max_steps=3", "data.image_folder=\"\(images)\"", "data.test_folder=\"\(images)\""]
        let fromFolder = try TrainingRun(config: try tinyConfig(folder: a, extra: steps))
        fromFolder.log = { _ in }
        _ = try fromFolder.run()

        let own = try TrainingImages(list, size: 16, channels: 1, labels: labels, name: "mine")
        XCTAssertEqual([own.count, own.size, own.channels], [12, 16, 1])
        let fromImages = try TrainingRun(config: try tinyConfig(folder: b, extra: steps), images: own)
        fromImages.log = { _ in }
        let summary = try fromImages.run()
        XCTAssertEqual(summary.stepsDone, 3)
        let (ta, tb) = (try checkpointTensors(a), try checkpointTensors(b))
        XCTAssertGreaterThan(ta.count, 10)
        XCTAssertEqual(ta, tb, "a run on Image values must have the bits of a run on the same PNGs in a folder")
    }

    func testStepHookAndQuietProgress() throws {
        let (_, list, _) = try folderAndImages(count: 8)
        let own = try TrainingImages(list, size: 16, channels: 1)
        for quiet in [false, true] {
            let run = try TrainingRun(config: try tinyConfig(folder: temporaryFolder(), extra: ["optimization.max_steps=4"]),
                                      images: own, engine: Engine(threads: 1))
            var lines: [String] = [], records: [StepRecord] = []
            run.log = { lines.append($0) }
            run.onStep = { records.append($0) }
            run.printsProgress = !quiet
            _ = try run.run()
            XCTAssertEqual(records.map(\.result.step), [1, 2, 3, 4])
            XCTAssert(records.allSatisfy { $0.result.loss.isFinite && $0.imagesPerSecond > 0 })
            let progress = lines.filter { $0.hasPrefix("step ") }
            XCTAssertEqual(progress.count, quiet ? 0 : 1, "progress lines: \(progress)")  // log_every 100: the last step's
        }
    }

    func testBadImagesAreRefusedByName() throws {
        let bad = Image(pngData: Data([1, 2, 3]), name: "broken.png")
        XCTAssertThrowsError(try TrainingImages([bad], size: 16, channels: 1)) {
            XCTAssert($0 is ImageDataError, "an app catches a bad image by type: \(type(of: $0))")
            XCTAssert("\($0)".contains("broken.png"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingImages([], size: 16, channels: 1)) { XCTAssert($0 is ConfigError && "\($0)".contains("no images"), "\($0)") }
        let (_, list, _) = try folderAndImages(count: 4)
        XCTAssertThrowsError(try TrainingImages(list, size: 16, channels: 2)) { XCTAssert("\($0)".contains("channels"), "\($0)") }
        XCTAssertThrowsError(try TrainingImages(list, size: 16, channels: 1, labels: [0])) { XCTAssert("\($0)".contains("labels"), "\($0)") }
        XCTAssertThrowsError(try TrainingImages(list, size: 16, channels: 1, labels: [0, 1, -1, 2])) {
            XCTAssert("\($0)".contains("class indices"), "\($0)")
        }
    }
}
