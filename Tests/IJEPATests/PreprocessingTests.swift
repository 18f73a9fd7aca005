import Foundation
import XCTest
import ImageData
import TensorCore

/// The ImageNet evaluation transform used for official checkpoints, against torchvision's `Resize` +
/// `CenterCrop` + `ToTensor` + `Normalize` on the same PNGs (tools/make_preprocessing_fixtures.py).
final class PreprocessingTests: XCTestCase {
    func testCentreCropMatchesTorchvision() throws {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil)).path + "/preprocessing"
        let file = try SafeTensorsFile(path: dir + "/expected.safetensors")
        let size = try XCTUnwrap(Int(file.metadata["size"] ?? "")), resize = try XCTUnwrap(Int(file.metadata["resize"] ?? ""))
        let aug = Augmentation(outputSize: size, channels: 3, randomResizedCrop: false)
        XCTAssertEqual(file.names.count, 4)
        for name in file.names {
            let expected = try file.tensor(name)
            let png = try PNGCodec.decode(path: dir + "/\(name).png", channels: 3)
            var out = [Float](repeating: 0, count: 3 * size * size)
            out.withUnsafeMutableBufferPointer {
                aug.applyCentreCrop(png.pixels, width: png.width, height: png.height, channels: 3, resize: resize,
                                    into: $0.baseAddress!)
            }
            XCTAssertEqual(expected.shape, [3, size, size])
            // In 8-bit levels. PIL resizes in two passes (rows, then columns) with fixed-point weights and rounds
            // to 8 bits after each; `Resample` keeps the first pass in Float and rounds once, so values may differ
            // by one level (measured: at most 1, in 5-20 % of the values).
            var worst: Float = 0, total: Float = 0
            for (i, (a, b)) in zip(out, expected.scalars).enumerated() {
                let levels = abs(a - b) * aug.std[i / (size * size)] * 255
                worst = max(worst, levels)
                total += levels
            }
            let mean = total / Float(out.count)
            XCTAssertLessThanOrEqual(worst, 1.01, "\(name): largest difference \(worst) levels")
            XCTAssertLessThanOrEqual(mean, 0.25, "\(name): mean difference \(mean) levels")
        }
    }
}
