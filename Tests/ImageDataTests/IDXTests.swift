import Foundation
import XCTest
@testable import ImageData

final class IDXTests: TempDirTestCase {
    func requireFashionMNIST() throws {
        for f in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
            if !FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory + "/" + f) {
                throw XCTSkip("Fashion-MNIST not installed at \(FashionMNIST.defaultDirectory) (Debian package dataset-fashion-mnist)")
            }
        }
    }

    /// Sum over the pixels of (i % 251 + 1) * p: changes with any pixel or any reordering.
    func checksum(_ p: [UInt8]) -> UInt64 {
        var s: UInt64 = 0
        for (i, v) in p.enumerated() { s &+= UInt64(i % 251 + 1) &* UInt64(v) }
        return s
    }

    func testFashionMNISTTrainAndTest() throws {
        try requireFashionMNIST()
        let train = try FashionMNIST.load(split: "train")
        XCTAssertEqual(train.count, 60000)
        XCTAssertEqual([train.width, train.height, train.channels], [28, 28, 1])
        XCTAssertEqual(train.classCounts, [Int](repeating: 6000, count: 10))
        XCTAssertEqual(train.classNames, FashionMNIST.classNames)
        XCTAssertEqual(train.name, "fashion-mnist-train")
        XCTAssertEqual(Array(train.labels.prefix(10)), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
        XCTAssertEqual(train.pixels.reduce(0) { $0 + Int($1) }, 3_431_114_169)
        XCTAssertEqual(checksum(train.pixels), 432_275_098_992)
        XCTAssertEqual(train.image(0).reduce(0) { $0 + Int($1) }, 76247)

        let test = try FashionMNIST.load(split: "test")
        XCTAssertEqual(test.count, 10000)
        XCTAssertEqual(test.classCounts, [Int](repeating: 1000, count: 10))
        XCTAssertEqual(Array(test.labels.prefix(10)), [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])
        XCTAssertEqual(checksum(test.pixels), 72_253_401_797)
        XCTAssertEqual(test.image(0).reduce(0) { $0 + Int($1) }, 33456)
    }

    func testUnknownSplitAndMissingFolder() {
        assertDataError(path: FashionMNIST.defaultDirectory, contains: ["split", "validation"]) {
            try FashionMNIST.files(split: "validation")
        }
        assertDataError(path: tmp + "/nowhere", contains: ["no such folder"]) {
            try FashionMNIST.load(split: "train", directory: self.tmp + "/nowhere")
        }
    }

    func testRoundTripGzipAndPlain() throws {
        let px = testPixels(5 * 3 * 4)
        for gz in [true, false] {
            let ip = tmp + "/img\(gz)", lp = tmp + "/lab\(gz)"
            try IDX.writeImages(path: ip, count: 5, height: 3, width: 4, pixels: px, gzip: gz)
            try IDX.writeLabels(path: lp, labels: [0, 1, 2, 9, 255], gzip: gz)
            let raw = try readFile(ip)
            XCTAssertEqual(raw.starts(with: [0x1F, 0x8B]), gz, "gzip magic")
            let r = try IDX.readImages(path: ip)
            XCTAssertEqual(r.count, 5)
            XCTAssertEqual(r.height, 3)
            XCTAssertEqual(r.width, 4)
            XCTAssertEqual(r.pixels, px)
            XCTAssertEqual(try IDX.readLabels(path: lp), [0, 1, 2, 9, 255])
        }
        // The exact bytes of a hand-written plain file: magic, big-endian sizes, data.
        let plain = try readFile(tmp + "/imgfalse")
        XCTAssertEqual(Array(plain.prefix(16)), [0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 4])
        XCTAssertEqual(plain.count, 16 + 60)
    }

    func testSystemGzipFileReads() throws {
        // A file compressed by the gzip tool (not by our writer), when the tool exists.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gzip") || FileManager.default.isExecutableFile(atPath: "/bin/gzip") else {
            throw XCTSkip("no gzip tool")
        }
        let p = tmp + "/labels"
        try writeFile(p, [0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/bin/gzip") ? "/usr/bin/gzip" : "/bin/gzip")
        proc.arguments = ["-9", p]
        try proc.run()
        proc.waitUntilExit()
        XCTAssertEqual(proc.terminationStatus, 0)
        XCTAssertEqual(try IDX.readLabels(path: p + ".gz"), [7, 8, 9])
    }

    func testBadFiles() throws {
        let ip = tmp + "/img.gz", lp = tmp + "/lab"
        try IDX.writeImages(path: ip, count: 4, height: 5, width: 5, pixels: testPixels(100), gzip: true)
        try IDX.writeLabels(path: lp, labels: [1, 2, 3, 4], gzip: false)

        // Missing file, a folder.
        assertDataError(path: tmp + "/missing.gz", contains: ["no such file"]) { try IDX.readImages(path: self.tmp + "/missing.gz") }
        assertDataError(path: tmp, contains: ["folder"]) { try IDX.readLabels(path: self.tmp) }

        // Wrong magic: a label file read as images, and the other way round.
        assertDataError(path: lp, contains: ["magic", "0x00000801", "0x00000803"]) { try IDX.readImages(path: lp) }
        assertDataError(path: ip, contains: ["magic", "0x00000803"]) { try IDX.readLabels(path: ip) }

        // Truncated gzip stream (cut in the middle of the compressed data).
        let gz = try readFile(ip)
        let cut = tmp + "/cut.gz"
        try writeFile(cut, Array(gz.prefix(gz.count / 2)))
        assertDataError(path: cut, contains: ["gzip"]) { try IDX.readImages(path: cut) }

        // Plain file truncated in the payload, and in the header.
        let plain = tmp + "/plain"
        try IDX.writeImages(path: plain, count: 4, height: 5, width: 5, pixels: testPixels(100), gzip: false)
        let bytes = try readFile(plain)
        try writeFile(plain, Array(bytes.prefix(bytes.count - 1)))
        assertDataError(path: plain, contains: ["truncated", "4 images of 5x5", "99"]) { try IDX.readImages(path: plain) }
        try writeFile(plain, Array(bytes.prefix(10)))
        assertDataError(path: plain, contains: ["truncated", "header"]) { try IDX.readImages(path: plain) }
        try writeFile(plain, [])
        assertDataError(path: plain, contains: ["truncated"]) { try IDX.readImages(path: plain) }

        // Header count larger than the data (same as truncated) and smaller (extra bytes).
        var more = bytes
        more[7] = 5
        try writeFile(plain, more)
        assertDataError(path: plain, contains: ["5 images", "truncated"]) { try IDX.readImages(path: plain) }
        var fewer = bytes
        fewer[7] = 3
        try writeFile(plain, fewer)
        assertDataError(path: plain, contains: ["3 images", "extra"]) { try IDX.readImages(path: plain) }
        let labels = tmp + "/labels"
        try writeFile(labels, [0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3])
        assertDataError(path: labels, contains: ["2 labels", "extra"]) { try IDX.readLabels(path: labels) }
    }

    /// Declared sizes are checked before anything is allocated, and reading stops at the declared size: a gzip
    /// bomb (a header that declares 1000 images, then 256 MiB of zeros) is refused after one byte more.
    func testDeclaredSizesAreCheckedBeforeUse() throws {
        var header: [UInt8] = [0, 0, 8, 3, 0, 0, 0x03, 0xE8, 0, 0, 0, 28, 0, 0, 0, 28]
        let bomb = tmp + "/bomb.gz"
        try IDX.write(path: bomb, dims: [1000, 28, 28], data: [UInt8](repeating: 0, count: 256 << 20), gzip: true)
        let t0 = Date()
        assertDataError(path: bomb, contains: ["1000 images of 28x28", "784000 bytes", "extra"]) { try IDX.readImages(path: bomb) }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 2, "the bomb was inflated")
        // A size over the limit, and one whose product overflows: refused from the header alone.
        assertDataError(path: bomb, contains: ["784000 bytes", "more than the 1000-byte limit"]) {
            try IDX.readImages(path: bomb, maxBytes: 1000)
        }
        header.replaceSubrange(4..<16, with: [0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF])
        let huge = tmp + "/huge"
        try writeFile(huge, header)
        assertDataError(path: huge, contains: ["overflows"]) { try IDX.readImages(path: huge) }
        // Under the limit but far more than the file holds (found by FuzzIDX: 12 bytes declaring 1.9 GB were
        // allocated in full before reading): the payload grows as bytes arrive, so this costs its 12 bytes.
        let short = tmp + "/short"
        try writeFile(short, [0, 0, 8, 1, 0x74, 0x08, 0x00, 0x7F, 0xFF, 0xFF, 0xFF, 0x00])
        assertDataError(path: short, contains: ["1946681471 labels", "only 4 follow"]) { try IDX.readLabels(path: short) }
    }

    func testImageLabelCountMismatchAndBadLabel() throws {
        let dir = tmp + "/fm"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try IDX.writeImages(path: dir + "/train-images-idx3-ubyte.gz", count: 3, height: 28, width: 28, pixels: testPixels(3 * 784), gzip: true)
        try IDX.writeLabels(path: dir + "/train-labels-idx1-ubyte.gz", labels: [1, 2], gzip: true)
        assertDataError(path: dir + "/train-labels-idx1-ubyte.gz", contains: ["2 labels", "3 images"]) {
            try FashionMNIST.load(split: "train", directory: dir)
        }
        try IDX.writeLabels(path: dir + "/train-labels-idx1-ubyte.gz", labels: [1, 2, 10], gzip: true)
        assertDataError(path: dir + "/train-labels-idx1-ubyte.gz", contains: ["label 10"]) {
            try FashionMNIST.load(split: "train", directory: dir)
        }
        // Uncompressed copies are used when the .gz files are absent.
        try IDX.writeImages(path: dir + "/t10k-images-idx3-ubyte", count: 2, height: 28, width: 28, pixels: testPixels(2 * 784), gzip: false)
        try IDX.writeLabels(path: dir + "/t10k-labels-idx1-ubyte", labels: [3, 4], gzip: false)
        let t = try FashionMNIST.load(split: "test", directory: dir)
        XCTAssertEqual(t.labels, [3, 4])
        XCTAssertEqual(t.pixels, testPixels(2 * 784))
        XCTAssertEqual(t.name, "fashion-mnist-test")
        // With neither copy there, the error names the .gz file the distribution has.
        assertDataError(path: dir + "/t10k-images-idx3-ubyte.gz", contains: ["no such file"]) { () throws -> Void in
            try FileManager.default.removeItem(atPath: dir + "/t10k-images-idx3-ubyte")
            _ = try FashionMNIST.load(split: "test", directory: dir)
        }
    }

    func testDatasetSubsetAndImage() {
        let d = ImageDataset(name: "t", width: 2, height: 1, channels: 1, pixels: [1, 2, 3, 4, 5, 6], labels: [0, 1, 0],
                             classNames: ["a", "b"])
        XCTAssertEqual(Array(d.image(1)), [3, 4])
        let s = d.subset([2, 0, 2])
        XCTAssertEqual(s.pixels, [5, 6, 1, 2, 5, 6])
        XCTAssertEqual(s.labels, [0, 0, 0])
        XCTAssertEqual(s.count, 3)
        XCTAssertEqual(d.classCounts, [2, 1])
    }
}
