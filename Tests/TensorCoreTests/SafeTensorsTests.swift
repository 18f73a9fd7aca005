import Foundation
import XCTest
@testable import TensorCore

final class SafeTensorsTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "safetensors-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func testRoundTripKeepsNamesShapesValuesAndMetadata() throws {
        var rng = RandomGenerator(seed: 3)
        let a = try rng.normal([2, 3]), b = try rng.normal([5]), empty = try Tensor(zeros: [0, 4])
        let path = dir + "/w.safetensors"
        try SafeTensors.write([("blocks.0.attn.qkv.weight", a), ("norm.bias", b), ("empty", empty)],
                              metadata: ["format": "pt"], to: path)
        let (t, m) = try SafeTensors.read(path)
        XCTAssertEqual(t["blocks.0.attn.qkv.weight"]?.scalars, a.scalars)
        XCTAssertEqual(t["blocks.0.attn.qkv.weight"]?.shape, [2, 3])
        XCTAssertEqual(t["norm.bias"]?.scalars, b.scalars)
        XCTAssertEqual(t["empty"]?.shape, [0, 4])
        XCTAssertEqual(m["format"], "pt")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        XCTAssertEqual(files, ["w.safetensors"], "no temporary file is left behind")
    }

    /// Builds a file from a header string and a data section, as a hostile or broken writer would.
    func file(_ header: String, data: [UInt8] = [], sizeOverride: UInt64? = nil) throws -> String {
        var bytes = Data()
        withUnsafeBytes(of: (sizeOverride ?? UInt64(header.utf8.count)).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(contentsOf: data)
        let path = dir + "/bad-\(UUID().uuidString).safetensors"
        try bytes.write(to: URL(fileURLWithPath: path))
        return path
    }

    func expectError(_ path: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensors.read(path), file: file, line: line) { e in
            let text = "\(e)"
            XCTAssert(text.hasPrefix(path) && text.contains(fragment), "message: \(text)", file: file, line: line)
        }
    }

    func testMalformedFilesAreClearErrors() throws {
        expectError(dir + "/missing.safetensors", "cannot be read")
        expectError(try file(""), "not a JSON object")
        let short = dir + "/short.safetensors"
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: short))
        expectError(short, "truncated")
        expectError(try file("{}", sizeOverride: 1 << 40), "larger than the file")
        expectError(try file("{not json"), "not a JSON object")
        expectError(try file(#"{"w": {"dtype": "F32", "shape": [2]}}"#), "needs dtype, shape and two data_offsets")
        expectError(try file(#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#, data: [0, 0, 0, 0]),
                    "outside the data section")
        expectError(try file(#"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, data: Array(repeating: 0, count: 8)),
                    "needs 12 bytes, data_offsets give 8")
        expectError(try file(#"{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}"#, data: [0]), "unsupported dtype U8")
        expectError(try file(#"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}"#),
                    "overflows")
        expectError(try file(#"{"w": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 0]}}"#),
                    "overflows")
        expectError(try file(#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#,
                             data: Array(repeating: 0, count: 8)), "overlap")
        expectError(try file(#"{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}"#), "bad shape")
    }

    func testOtherDtypesAreConverted() throws {
        var data = [UInt8]()
        for v: Int64 in [3, -2] { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
        for v: UInt16 in [0x3C00, 0xC000] { withUnsafeBytes(of: v.littleEndian) { data += $0 } }  // F16 1, -2
        let path = try file(#"{"i": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}, "h": {"dtype": "F16", "shape": [2], "data_offsets": [16, 20]}}"#,
                            data: data)
        let (t, _) = try SafeTensors.read(path)
        XCTAssertEqual(t["i"]?.scalars, [3, -2])
        XCTAssertEqual(t["h"]?.scalars, [1, -2])
    }
}
