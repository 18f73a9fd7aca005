import Foundation
import XCTest
import TorchImport

/// Any checkpoint on this machine, when TORCHIMPORT_CHECKPOINT names it (skipped otherwise): opens it, reads
/// every tensor, prints names, shapes, values and timings. For files too big for the repository, e.g. an
/// official I-JEPA checkpoint or a > 4 GiB ZIP64 file saved by torch.
final class ExternalCheckpointTests: XCTestCase {
    func testExternalCheckpoint() throws {
        guard let path = ProcessInfo.processInfo.environment["TORCHIMPORT_CHECKPOINT"] else {
            throw XCTSkip("set TORCHIMPORT_CHECKPOINT=/path/to/file.pth to read a checkpoint of your own")
        }
        var start = Date()
        let c = try TorchCheckpoint(path: path)
        print("\(path): opened in \(Date().timeIntervalSince(start)) s: \(c.tensorNames.count) tensors, \(c.values.count) values")
        for (k, v) in c.values.sorted(by: { $0.key < $1.key }).prefix(40) { print("  \(k) = \(v)") }
        start = Date()
        var elements = 0
        for name in c.tensorNames {
            let t = try c.tensor(name)
            elements += t.count
            XCTAssertEqual(t.shape, c.shape(of: name))
            if t.count <= 16 { print("  \(name) \(t.shape) \(t.scalars)") }
        }
        print("read \(elements) elements in \(Date().timeIntervalSince(start)) s")
    }
}
