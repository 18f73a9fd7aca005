import Foundation
import XCTest
@testable import ImageData

/// A fresh temporary folder per test, removed afterwards.
class TempDirTestCase: XCTestCase {
    var tmp = ""

    override func setUpWithError() throws {
        tmp = NSTemporaryDirectory() + "imagedata-tests-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: tmp)
    }

    func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func readFile(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Runs `body`, expects an ImageDataError about `path` whose message contains every word of `contains`.
    func assertDataError<T>(
        path: String, contains: [String] = [], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T
    ) {
        do {
            _ = try body()
            XCTFail("expected an error about \(path)", file: file, line: line)
        } catch let e as ImageDataError {
            XCTAssertEqual(e.path, path, "error: \(e)", file: file, line: line)
            XCTAssertTrue(e.description.hasPrefix(path + ": "), "\(e)", file: file, line: line)
            for w in contains {
                XCTAssertTrue(e.problem.lowercased().contains(w.lowercased()), "\"\(e)\" lacks \"\(w)\"", file: file, line: line)
            }
        } catch {
            XCTFail("expected an ImageDataError, got \(error)", file: file, line: line)
        }
    }
}

/// Deterministic test pixels.
func testPixels(_ n: Int, seed: UInt32 = 1) -> [UInt8] {
    var s = seed &* 2_654_435_761 &+ 12345
    return (0..<n).map { _ in
        s = s &* 1_664_525 &+ 1_013_904_223
        return UInt8(truncatingIfNeeded: s >> 24)
    }
}
