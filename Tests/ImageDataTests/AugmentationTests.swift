import Foundation
import TensorCore
import XCTest
@testable import ImageData

final class AugmentationTests: XCTestCase {
    func run(_ a: Augmentation, _ img: [UInt8], w: Int, h: Int, c: Int, rng: inout RandomGenerator) -> [Float] {
        var out = [Float](repeating: .nan, count: c * a.outputSize * a.outputSize)
        out.withUnsafeMutableBufferPointer { a.apply(img[...], width: w, height: h, channels: c, rng: &rng, into: $0.baseAddress!) }
        return out
    }

    /// (x / 255 - mean) / std of an HWC image, as CHW.
    func normalised(_ img: [UInt8], w: Int, h: Int, c: Int, mean: [Float], std: [Float]) -> [Float] {
        (0..<c).flatMap { k in (0..<w * h).map { p in (Float(img[p * c + k]) / 255 - mean[k]) / std[k] } }
    }

    func testFullCropIsIdentity() {
        for c in [1, 3] {
            let (w, h) = (9, 9)
            let img = testPixels(w * h * c, seed: UInt32(c))
            let a = Augmentation(outputSize: 9, channels: c, cropScale: 1...1, cropRatio: 1...1)
            var rng = RandomGenerator(seed: 3)
            let out = run(a, img, w: w, h: h, c: c, rng: &rng)
            XCTAssertEqual(out, normalised(img, w: w, h: h, c: c, mean: a.mean, std: a.std), "channels \(c)")
            // Evaluation transform at the same size: identity too, for a non-square image.
            let e = Augmentation(outputSize: 9, channels: c).evaluation
            XCTAssertEqual(run(e, img, w: w, h: h, c: c, rng: &rng), out)
        }
    }

    func testDefaults() {
        let g = Augmentation(outputSize: 28)
        XCTAssertEqual(g.cropScale, 0.3...1.0)
        XCTAssertEqual(g.cropRatio, 0.75...(4.0 / 3.0))
        XCTAssertFalse(g.horizontalFlip)
        XCTAssertTrue(g.randomResizedCrop)
        XCTAssertEqual(g.mean, [0.2860])
        XCTAssertEqual(g.std, [0.3530])
        let rgb = Augmentation(outputSize: 224, channels: 3)
        XCTAssertEqual(rgb.mean, [0.485, 0.456, 0.406])
        XCTAssertEqual(rgb.std, [0.229, 0.224, 0.225])
        XCTAssertThrowsError(try rgb.validate(channels: 1))
        XCTAssertNoThrow(try rgb.validate(channels: 3))
        var bad = g
        bad.cropScale = 0...1
        XCTAssertThrowsError(try bad.validate(channels: 1))
    }

    func testCropStatistics() {
        let a = Augmentation(outputSize: 32)
        let (W, H) = (224, 160)
        var rng = RandomGenerator(seed: 11)
        var areas: [Double] = [], ratios: [Double] = []
        var tops = Set<Int>(), lefts = Set<Int>()
        for _ in 0..<4000 {
            let (i, j, h, w) = a.cropParameters(width: W, height: H, rng: &rng)
            XCTAssertTrue(i >= 0 && j >= 0 && i + h <= H && j + w <= W && h > 0 && w > 0)
            areas.append(Double(w * h) / Double(W * H))
            ratios.append(Double(w) / Double(h))
            tops.insert(i)
            lefts.insert(j)
        }
        // Rounding w and h moves the area and ratio slightly off the drawn values.
        XCTAssertGreaterThanOrEqual(areas.min()!, 0.3 * 0.97)
        XCTAssertLessThanOrEqual(areas.max()!, 1)
        XCTAssertGreaterThanOrEqual(ratios.min()!, 0.75 * 0.97)
        XCTAssertLessThanOrEqual(ratios.max()!, 4.0 / 3.0 * 1.03)
        XCTAssertGreaterThan(tops.count, 40)
        XCTAssertGreaterThan(lefts.count, 40)

        // Where no attempt is rejected (scale <= 0.5 on a square image: w, h <= sqrt(0.5 * 4/3) of the side),
        // the accepted area is uniform on the scale range and the log-ratio uniform on the ratio range.
        let b = Augmentation(outputSize: 32, cropScale: 0.3...0.5)
        var fr: [Double] = [], lr: [Double] = []
        for _ in 0..<4000 {
            let (_, _, h, w) = b.cropParameters(width: 200, height: 200, rng: &rng)
            fr.append(Double(w * h) / 40000)
            lr.append(log(Double(w) / Double(h)))
        }
        XCTAssertEqual(fr.reduce(0, +) / 4000, 0.4, accuracy: 0.01)
        XCTAssertEqual(Double(fr.filter { $0 < 0.35 }.count) / 4000, 0.25, accuracy: 0.03)
        XCTAssertEqual(lr.reduce(0, +) / 4000, 0, accuracy: 0.01)
        XCTAssertEqual(Double(lr.filter { $0 < log(0.75) / 2 }.count) / 4000, 0.25, accuracy: 0.03)
        XCTAssertLessThanOrEqual(fr.max()!, 0.5 * 1.03)
    }

    func testFallbackIsClampedCentreCrop() {
        // Ratios that never fit a square image: all 10 attempts fail, the centre crop is clamped to ratio 2.
        let a = Augmentation(outputSize: 8, cropScale: 1...1, cropRatio: 2...3)
        var rng = RandomGenerator(seed: 1)
        let (i, j, h, w) = a.cropParameters(width: 20, height: 20, rng: &rng)
        XCTAssertEqual([i, j, h, w], [5, 0, 10, 20])
        XCTAssertEqual(rng.offset, 20, "10 attempts of two draws")
        // Tall side: ratio below the range.
        let t = Augmentation(outputSize: 8, cropScale: 1...1, cropRatio: 0.75...(4.0 / 3.0))
        let r = t.cropParameters(width: 10, height: 30, rng: &rng)
        XCTAssertEqual([r.i, r.j, r.h, r.w], [8, 0, 13, 10])  // h = round(10 / 0.75) = round(13.33)
    }

    func testBilinearMatchesHalfPixelInterpolation() {
        // 2x1 -> 4x4 (evaluation: whole image): columns at source x = -0.25, 0.25, 0.75, 1.25 (clamped).
        let img: [UInt8] = [0, 200]
        let a = Augmentation(outputSize: 4, channels: 1, randomResizedCrop: false, mean: [0], std: [1])
        var rng = RandomGenerator(seed: 0)
        let out = run(a, img, w: 2, h: 1, c: 1, rng: &rng)
        let row: [Float] = [0, 50, 150, 200].map { $0 / 255 }
        for y in 0..<4 { XCTAssertEqual(Array(out[y * 4..<(y + 1) * 4]), row, accuracy: 1e-6) }
        XCTAssertEqual(rng.offset, 0, "no draws without random crop and flip")
    }

    func testAntialiasedDownscale() {
        // 4x1 -> 2x2: with antialias each output mixes 3 source pixels (weights 3/4, 3/4, 1/4 over 7/4);
        // without, it averages the two pixels around its centre.
        let img: [UInt8] = [0, 0, 255, 255]
        var a = Augmentation(outputSize: 2, channels: 1, randomResizedCrop: false, mean: [0], std: [1])
        var rng = RandomGenerator(seed: 0)
        let aa = run(a, img, w: 4, h: 1, c: 1, rng: &rng)
        XCTAssertEqual(aa[0] * 255, 255 * 0.25 / 1.75, accuracy: 1e-4)
        XCTAssertEqual(aa[1] * 255, 255 * 1.5 / 1.75, accuracy: 1e-4)
        a.antialias = false
        let plain = run(a, img, w: 4, h: 1, c: 1, rng: &rng)
        XCTAssertEqual(Array(plain.prefix(2)), [0, 1])
    }

    func testFlip() {
        let (w, h) = (6, 6)
        let img = testPixels(w * h * 3, seed: 2)
        let a = Augmentation(outputSize: 6, channels: 3, cropScale: 1...1, cropRatio: 1...1, horizontalFlip: true)
        let plain = normalised(img, w: w, h: h, c: 3, mean: a.mean, std: a.std)
        let mirrored = (0..<3 * h).flatMap { r in (0..<w).map { plain[r * w + w - 1 - $0] } }
        var flips = 0
        for s in 0..<200 {
            var rng = RandomGenerator(seed: UInt64(s))
            let out = run(a, img, w: w, h: h, c: 3, rng: &rng)
            if out == mirrored { flips += 1 } else { XCTAssertEqual(out, plain) }
        }
        XCTAssertEqual(flips, 100, accuracy: 25)
    }

    func testDeterminism() {
        let img = testPixels(28 * 28, seed: 8)
        let a = Augmentation(outputSize: 28, horizontalFlip: true)
        var r1 = RandomGenerator(seed: 42).derived(3, 7), r2 = RandomGenerator(seed: 42).derived(3, 7)
        let x = run(a, img, w: 28, h: 28, c: 1, rng: &r1)
        XCTAssertEqual(x, run(a, img, w: 28, h: 28, c: 1, rng: &r2))
        XCTAssertEqual(r1, r2)
        var r3 = RandomGenerator(seed: 42).derived(3, 8)
        XCTAssertNotEqual(x, run(a, img, w: 28, h: 28, c: 1, rng: &r3))
        XCTAssertTrue(x.allSatisfy { $0.isFinite })
    }

    func testCodable() throws {
        let a = Augmentation(outputSize: 32, channels: 3, cropScale: 0.4...0.9, horizontalFlip: true, antialias: false)
        let data = try JSONEncoder().encode(a)
        XCTAssertEqual(try JSONDecoder().decode(Augmentation.self, from: data), a)
        // Keys left out take the official defaults.
        let partial = try JSONDecoder().decode(Augmentation.self, from: Data(#"{"outputSize": 28}"#.utf8))
        XCTAssertEqual(partial, Augmentation(outputSize: 28))
        let rgb = try JSONDecoder().decode(Augmentation.self, from: Data(#"{"outputSize": 8, "mean": [0.1, 0.2, 0.3], "cropScale": [0.5, 1]}"#.utf8))
        XCTAssertEqual(rgb.std, Augmentation.imageNetStd)
        XCTAssertEqual(rgb.cropScale, 0.5...1)
    }

    func testEvaluationTensor() {
        let d = ImageDataset(name: "t", width: 5, height: 7, channels: 3, pixels: testPixels(4 * 35 * 3), labels: [0, 1, 0, 1],
                             classNames: ["a", "b"])
        let a = Augmentation(outputSize: 6, channels: 3, horizontalFlip: true)
        let t = evaluationTensor(d, augmentation: a, range: 1..<4)
        XCTAssertEqual(t.shape, [3, 3, 6, 6])
        var rng = RandomGenerator(seed: 0)
        let second = run(a.evaluation, Array(d.image(2)), w: 5, h: 7, c: 3, rng: &rng)
        XCTAssertEqual(Array(t.scalars[108..<216]), second)
    }
}

func XCTAssertEqual(_ a: [Float], _ b: [Float], accuracy: Float, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}
