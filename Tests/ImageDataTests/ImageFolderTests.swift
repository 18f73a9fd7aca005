import Foundation
import XCTest
@testable import ImageData

final class ImageFolderTests: TempDirTestCase {
    func mkdir(_ p: String) throws { try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true) }

    /// root/zebra/{b.png (4x4 RGB), a.png (4x4 gray)}, root/apple/{x.png (8x2 RGB constant)}, plus hidden files.
    func makeTree() throws -> (root: String, rgb: [UInt8], gray: [UInt8]) {
        let root = tmp + "/tree"
        try mkdir(root + "/zebra")
        try mkdir(root + "/apple")
        try mkdir(root + "/.hidden-class")
        let rgb = testPixels(4 * 4 * 3, seed: 5), gray = testPixels(16, seed: 6)
        try PNGCodec.write(path: root + "/zebra/b.png", width: 4, height: 4, channels: 3, pixels: rgb)
        try PNGCodec.write(path: root + "/zebra/a.png", width: 4, height: 4, channels: 1, pixels: gray)
        try PNGCodec.write(path: root + "/apple/x.PNG", width: 8, height: 2, channels: 3,
                           pixels: [UInt8]((0..<16).flatMap { _ in [10, 20, 30] as [UInt8] }))
        try writeFile(root + "/zebra/.DS_Store", [1, 2, 3])
        try writeFile(root + "/README.txt", Array("not a class".utf8))
        return (root, rgb, gray)
    }

    func testLoadOrderSizesAndResize() throws {
        let (root, rgb, gray) = try makeTree()
        let d = try ImageFolder.load(root: root, size: 4, channels: 3)
        XCTAssertEqual(d.classNames, ["apple", "zebra"])
        XCTAssertEqual(d.labels, [0, 1, 1])
        XCTAssertEqual([d.width, d.height, d.channels, d.count], [4, 4, 3, 3])
        XCTAssertEqual(d.name, "tree")
        // apple/x.PNG: 8x2 constant colour resized to 4x4 stays that colour.
        XCTAssertEqual(Array(d.image(0)), [UInt8]((0..<16).flatMap { _ in [10, 20, 30] as [UInt8] }))
        // zebra: a.png before b.png; the gray one replicated to 3 channels; 4x4 kept exactly.
        XCTAssertEqual(Array(d.image(1)), gray.flatMap { [$0, $0, $0] })
        XCTAssertEqual(Array(d.image(2)), rgb)

        // Gray, resized 4 -> 2 (antialiased bilinear = 2x2 box average here, rounded).
        let g = try ImageFolder.load(root: root, size: 2, channels: 1)
        XCTAssertEqual([g.width, g.height, g.channels], [2, 2, 1])
        let a = Array(g.image(1))
        for (oy, ox) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            var s = 0.0
            for dy in 0..<2 { for dx in 0..<2 { s += Double(gray[(2 * oy + dy) * 4 + 2 * ox + dx]) } }
            // Triangle filter of support 2 over a 4-pixel axis: weights 1/4, 3/4, 3/4, 1/4 (normalised over
            // the pixels inside) -> not a plain box; check against that rule.
            var acc = 0.0, wsum = 0.0
            for y in 0..<4 {
                for x in 0..<4 {
                    let wy = max(0, 1 - abs(Double(y) + 0.5 - (Double(oy) + 0.5) * 2) / 2)
                    let wx = max(0, 1 - abs(Double(x) + 0.5 - (Double(ox) + 0.5) * 2) / 2)
                    acc += wx * wy * Double(gray[y * 4 + x])
                    wsum += wx * wy
                }
            }
            XCTAssertEqual(Double(a[oy * 2 + ox]), (acc / wsum).rounded(), accuracy: 1, "box mean would be \(s / 4)")
        }
    }

    func testErrorsNameThePath() throws {
        let (root, _, _) = try makeTree()
        assertDataError(path: tmp + "/nope", contains: ["no such folder"]) { try ImageFolder.load(root: self.tmp + "/nope", size: 4, channels: 1) }
        assertDataError(path: root + "/README.txt", contains: ["not a folder"]) { try ImageFolder.load(root: root + "/README.txt", size: 4, channels: 1) }
        assertDataError(path: root, contains: ["channels"]) { try ImageFolder.load(root: root, size: 4, channels: 2) }
        // No class folders (only files and hidden folders).
        let flat = tmp + "/flat"
        try mkdir(flat + "/.git")
        try PNGCodec.write(path: flat + "/a.png", width: 1, height: 1, channels: 1, pixels: [0])
        assertDataError(path: flat, contains: ["no class folders"]) { try ImageFolder.load(root: flat, size: 4, channels: 1) }
        // Empty class folder (hidden files do not count).
        try mkdir(root + "/middle")
        try writeFile(root + "/middle/.keep", [])
        assertDataError(path: root + "/middle", contains: ["no .png"]) { try ImageFolder.load(root: root, size: 4, channels: 1) }
        try PNGCodec.write(path: root + "/middle/m.png", width: 3, height: 3, channels: 1, pixels: testPixels(9))
        XCTAssertEqual(try ImageFolder.load(root: root, size: 4, channels: 1).classNames, ["apple", "middle", "zebra"])
        // A non-PNG file in a class folder.
        try writeFile(root + "/zebra/notes.txt", Array("hello".utf8))
        assertDataError(path: root + "/zebra/notes.txt", contains: ["not a .png"]) { try ImageFolder.load(root: root, size: 4, channels: 1) }
        try FileManager.default.removeItem(atPath: root + "/zebra/notes.txt")
        // A corrupt PNG, and a truncated one.
        try writeFile(root + "/zebra/c.png", testPixels(100))
        assertDataError(path: root + "/zebra/c.png", contains: ["not a png"]) { try ImageFolder.load(root: root, size: 4, channels: 1) }
        let good = try PNGCodec.encode(width: 8, height: 8, channels: 3, pixels: testPixels(192))
        try writeFile(root + "/zebra/c.png", Array(good.prefix(good.count - 30)))
        assertDataError(path: root + "/zebra/c.png", contains: ["corrupt"]) { try ImageFolder.load(root: root, size: 4, channels: 1) }
        try FileManager.default.removeItem(atPath: root + "/zebra/c.png")
        XCTAssertEqual(try ImageFolder.load(root: root, size: 4, channels: 1).count, 4)
    }

    func testNestedFoldersAreWalked() throws {
        let root = tmp + "/nested"
        try mkdir(root + "/cls/sub")
        try PNGCodec.write(path: root + "/cls/sub/z.png", width: 2, height: 2, channels: 1, pixels: [1, 2, 3, 4])
        try PNGCodec.write(path: root + "/cls/a.png", width: 2, height: 2, channels: 1, pixels: [5, 6, 7, 8])
        let d = try ImageFolder.load(root: root, size: 2, channels: 1)
        XCTAssertEqual(d.pixels, [5, 6, 7, 8, 1, 2, 3, 4])
    }

    func testExportLoadRoundTrip() throws {
        let n = 23, classes = 12  // 12 classes: two-digit label prefixes must still sort in label order
        let labels = (0..<n).map { ($0 * 5) % classes }
        let names = (0..<classes).map { "class/\($0)" }
        for c in [1, 3] {
            let d = ImageDataset(name: "x", width: 5, height: 3, channels: c, pixels: testPixels(n * 15 * c, seed: UInt32(c)),
                                 labels: labels, classNames: names)
            let root = tmp + "/export\(c)"
            try ImageFolder.export(d, to: root, overwrite: false)
            // Non-square images load resized to a square; the files themselves are checked by decoding them.
            let back = try ImageFolder.load(root: root, size: 5, channels: c)
            let order = (0..<n).sorted { (labels[$0], $0) < (labels[$1], $1) }
            let folders = try FileManager.default.contentsOfDirectory(atPath: root).sorted()
            XCTAssertEqual(folders.first, "00_class-0")
            XCTAssertEqual(folders.last, "11_class-11")
            XCTAssertEqual(back.labels, order.map { labels[$0] })
            XCTAssertEqual(back.classNames, folders)
            for (k, i) in order.enumerated() {
                let file = root + "/" + folders[labels[i]] + "/" + String(format: "%05d", i) + ".png"
                XCTAssertEqual(try PNGCodec.decode(path: file, channels: c).pixels, Array(d.image(i)))
                XCTAssertEqual(back.labels[k], labels[i])
            }
        }
        // Square images come back exactly, in label order.
        let sq = ImageDataset(name: "sq", width: 6, height: 6, channels: 3, pixels: testPixels(n * 108, seed: 4),
                              labels: labels, classNames: names)
        try ImageFolder.export(sq, to: tmp + "/sq", overwrite: false)
        let back = try ImageFolder.load(root: tmp + "/sq", size: 6, channels: 3)
        let order = (0..<n).sorted { (labels[$0], $0) < (labels[$1], $1) }
        XCTAssertEqual(back.pixels, sq.subset(order).pixels)
        XCTAssertEqual(back.labels, sq.subset(order).labels)
    }

    func testExportRefusesNonEmptyTarget() throws {
        let d = ImageDataset(name: "x", width: 2, height: 2, channels: 1, pixels: testPixels(12), labels: [0, 1, 1],
                             classNames: ["a", "b"])
        let root = tmp + "/out"
        try ImageFolder.export(d, to: root, overwrite: false)
        assertDataError(path: root, contains: ["not empty", "overwrite"]) { try ImageFolder.export(d, to: root, overwrite: false) }
        // Overwrite replaces an earlier export entirely (no stale files left).
        let d2 = ImageDataset(name: "x", width: 2, height: 2, channels: 1, pixels: testPixels(8, seed: 9), labels: [1, 0],
                              classNames: ["a", "b"])
        try ImageFolder.export(d2, to: root, overwrite: true)
        let back = try ImageFolder.load(root: root, size: 2, channels: 1)
        XCTAssertEqual(back.count, 2)
        XCTAssertEqual(back.pixels, d2.subset([1, 0]).pixels)
        // ... but never deletes files an export does not write.
        try writeFile(root + "/0_a/keep.txt", [1])
        assertDataError(path: root + "/0_a/keep.txt", contains: ["refusing"]) { try ImageFolder.export(d2, to: root, overwrite: true) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/0_a/keep.txt"))
        // An existing empty folder is fine; a file in the way is not; an empty class is refused.
        try mkdir(tmp + "/empty")
        XCTAssertNoThrow(try ImageFolder.export(d, to: tmp + "/empty", overwrite: false))
        try writeFile(tmp + "/file", [1])
        assertDataError(path: tmp + "/file", contains: ["not a folder"]) { try ImageFolder.export(d, to: self.tmp + "/file", overwrite: true) }
        let missing = ImageDataset(name: "m", width: 2, height: 2, channels: 1, pixels: testPixels(4), labels: [1], classNames: ["a", "b"])
        assertDataError(path: tmp + "/m", contains: ["no images"]) { try ImageFolder.export(missing, to: self.tmp + "/m", overwrite: false) }
    }
}
