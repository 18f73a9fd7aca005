import Foundation
import XCTest
import TorchImport

/// The zip layer: ZIP64, deflate, data descriptors, and archives that are truncated, inconsistent, encrypted
/// or lie about their sizes.
final class ZipArchiveTests: XCTestCase {
    let values: [Float] = [1.5, -2, 3.25, 0, 1e-3, -7]
    var pickle: [UInt8] { P.dict([("w", P.tensor(key: "0", numel: 6, shape: [3, 2], stride: [2, 1])), ("epoch", P.int(3))]) }

    func open(_ name: String, _ bytes: [UInt8], _ body: (TorchCheckpoint) throws -> Void) throws {
        try withTempFile(name, bytes) { try body(try TorchCheckpoint(path: $0)) }
    }

    /// ZIP64 end records and extra fields (central and local), with and without data descriptors.
    func testZip64Archives() throws {
        for descriptors in [false, true] {
            let bytes = torchArchive(pickle, storages: [("0", floatBytes(values))]) { w in
                w.zip64 = true
                w.dataDescriptors = descriptors
            }
            try open("zip64.pth", bytes) { c in
                XCTAssertEqual(c.tensorNames, ["w"])
                XCTAssertEqual(try c.tensor("w").scalars, values)
                XCTAssertEqual(c.values["epoch"], .int(3))
            }
        }
        // A local ZIP64 size that disagrees with the central one.
        let bad = torchArchive(pickle, storages: [("0", floatBytes(values))]) { w in
            w.zip64 = true
            w.records[2].localSizeDelta = 4
        }
        assertRefused("zip64.pth", bad, "zip: record 'archive/data/0': local header (CRC")
    }

    /// Deflated records (data.pkl and a storage), with and without data descriptors.
    func testDeflatedRecords() throws {
        for descriptors in [false, true] {
            let bytes = torchArchive(pickle, storages: [("0", floatBytes(values))]) { w in
                w.dataDescriptors = descriptors
                for i in w.records.indices { w.records[i].deflate = true }
            }
            try open("deflate.pth", bytes) { c in XCTAssertEqual(try c.tensor("w").scalars, values) }
        }
    }

    /// A deflated record that inflates past its declared size fails as soon as it does: a 64 MiB bomb declared
    /// as 24 bytes is refused without inflating it.
    func testInflatingPastTheDeclaredSizeIsRefused() throws {
        let bomb = [UInt8](repeating: 0, count: 64 << 20)
        let bytes = torchArchive(pickle, storages: [("0", bomb)]) { w in
            w.records[2].deflate = true
            w.records[2].declaredSize = 24
            w.records[2].crc = crc32(Array(bomb[0..<24]))
        }
        let start = Date()
        try open("bomb.pth", bytes) { c in
            XCTAssertThrowsError(try c.tensor("w")) { e in
                XCTAssertTrue("\(e)".hasSuffix("bomb.pth: zip: record 'archive/data/0' inflates past its declared size of 24 bytes"), "\(e)")
            }
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        // The same for data.pkl, at open.
        let pkl = torchArchive(pickle + [UInt8](repeating: 0x4E, count: 1000)) { w in
            w.records[0].deflate = true
            w.records[0].declaredSize = 100
        }
        assertRefused("pkl.pth", pkl, "zip: record 'archive/data.pkl' inflates past its declared size of 100 bytes")
        // And one that ends short of it.
        let short = torchArchive(pickle, storages: [("0", floatBytes(values))]) { w in
            w.records[2].deflate = true
            w.records[2].declaredSize = 28
        }
        assertRefused("short.pth", short, "inflates to 24 bytes, its declared size is 28", readTensors: true)
        // Corrupt deflate data.
        let corrupt = torchArchive(pickle, storages: [("0", floatBytes(values))]) { w in
            w.records[2].deflate = true
            w.records[2].method = 8
        }
        var b = corrupt
        if let i = findRecordData(b, name: "archive/data/0") { b[i] = 0xFF; b[i + 1] = 0xFF }
        assertRefused("corrupt.pth", b, "zip: record 'archive/data/0'", readTensors: true)
    }

    func testCRCIsVerified() {
        var bytes = torchArchive(pickle, storages: [("0", floatBytes(values))])
        if let i = findRecordData(bytes, name: "archive/data/0") { bytes[i] ^= 0x01 }
        assertRefused("crc.pth", bytes, "zip: record 'archive/data/0' is corrupt: CRC-32", readTensors: true)
    }

    /// Central directory and local header must agree on name, method and sizes.
    func testCentralDirectoryMustAgreeWithLocalHeaders() {
        let storages = [("0", floatBytes(values))]
        assertRefused("name.pth", torchArchive(pickle, storages: storages) { $0.records[2].localName = "archive/data/X" },
                      "zip: the local header at offset")
        assertRefused("method.pth", torchArchive(pickle, storages: storages) { $0.records[2].localMethod = 8 },
                      "zip: record 'archive/data/0': local header says method 8, the central directory 0")
        assertRefused("size.pth", torchArchive(pickle, storages: storages) { $0.records[2].localSizeDelta = 1 },
                      "local header (CRC")
        // With a data descriptor the descriptor is checked instead.
        var b = torchArchive(pickle, storages: storages) { $0.dataDescriptors = true }
        if let i = findRecordData(b, name: "archive/data/0") { b[i + 24 + 4] ^= 0xFF }  // the descriptor's CRC
        assertRefused("descriptor.pth", b, "data descriptor disagrees with the central directory")
    }

    func testUnsupportedRecordsAreRefused() {
        let storages = [("0", floatBytes(values))]
        assertRefused("enc.pth", torchArchive(pickle, storages: storages) { $0.records[2].flags = 1 }, "zip: record 'archive/data/0' is encrypted")
        assertRefused("bz2.pth", torchArchive(pickle, storages: storages) { $0.records[2].method = 12; $0.records[2].localMethod = 12 },
                      "uses compression method 12; only stored (0) and deflated (8) are supported")
        assertRefused("dup.pth", torchArchive(pickle, storages: storages) { $0.add("archive/data/0", [0]) }, "zip: duplicate record name 'archive/data/0'")
        assertRefused("stored.pth", torchArchive(pickle, storages: storages) { $0.records[2].declaredSize = 20 },
                      "stored record 'archive/data/0' has compressed size 24 but size 20")
    }

    /// Cutting an archive anywhere gives an error, never a crash or a hang.
    func testTruncatedArchivesAreRefused() throws {
        let full = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try fixturePath("views.pth"))))
        for cut in [0, 1, 10, 21, 22, 100, full.count / 2, full.count - 200, full.count - 100, full.count - 23, full.count - 22, full.count - 1] {
            assertRefused("cut-\(cut).pth", Array(full[0..<cut]), "truncated")
        }
        let small = torchArchive(pickle, storages: [("0", floatBytes(values))]) { $0.zip64 = true }
        for cut in stride(from: 0, to: small.count, by: 7) {
            assertRefused("cut-\(cut).pth", Array(small[0..<cut]), "truncated")
        }
    }

    /// The offset of the first data byte of stored record `name` in a ZipWriter archive (no extra fields).
    func findRecordData(_ b: [UInt8], name: String) -> Int? {
        let n = Array(name.utf8)
        var i = 0
        while i + 30 + n.count <= b.count {
            if b[i] == 0x50, b[i + 1] == 0x4B, b[i + 2] == 3, b[i + 3] == 4, Array(b[(i + 30)..<(i + 30 + n.count)]) == n {
                let extra = Int(b[i + 28]) | Int(b[i + 29]) << 8
                return i + 30 + n.count + extra
            }
            i += 1
        }
        return nil
    }
}
