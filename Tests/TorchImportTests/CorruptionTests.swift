import Foundation
import XCTest
import TorchImport

/// Random damage to a real torch.save file: whatever is changed, reading gives a value or a
/// TorchCheckpointError naming the file, never a crash, a hang or another kind of error.
final class CorruptionTests: XCTestCase {
    func testRandomByteDamageNeverCrashes() throws {
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try fixturePath("views.pth"))))
        let pickleEnd = 700  // data.pkl is the first record, about 600 bytes
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Int {  // SplitMix64
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int(truncatingIfNeeded: (z ^ (z >> 31)) >> 1)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("torchimport-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("damaged.pth").path
        var opened = 0, refused = 0
        let start = Date()
        for round in 0..<600 {
            var b = original
            for _ in 0...(next() % 4) {
                let at = round % 2 == 0 ? next() % pickleEnd : next() % b.count
                b[at] = round % 3 == 0 ? UInt8(truncatingIfNeeded: next()) : b[at] ^ UInt8(1 << (next() % 8))
            }
            try Data(b).write(to: URL(fileURLWithPath: path))
            if readAll(path, what: "round \(round)") { opened += 1 } else { refused += 1 }
        }
        print("damaged views.pth: \(opened) read, \(refused) refused in \(Date().timeIntervalSince(start)) s")
        XCTAssertGreaterThan(refused, 300)
        XCTAssertLessThan(Date().timeIntervalSince(start), 60)

        // The pickle alone, inside an archive with the right CRCs, so that damage reaches the unpickler: bytes
        // changed, inserted and removed in a state dict with views, memo references, nested values.
        let python = try XCTUnwrap(Data(base64Encoded: PlainDataTests.pythonPickles[2]))
        let pickle = P.dict([("w", P.tensor(key: "0", numel: 6, shape: [2, 3], stride: [3, 1])),
                             ("t", P.tensor(key: "0", numel: 6, offset: 1, shape: [2, 2], stride: [1, 3])),
                             ("h", P.tensor(key: "1", numel: 4, shape: [4], stride: [1], storage: "HalfStorage")),
                             ("v", [UInt8](python.dropFirst(2).dropLast()))])
        let storages = [("0", floatBytes([0, 1, 2, 3, 4, 5])), ("1", [UInt8](repeating: 0x3C, count: 8))]
        XCTAssertNoThrow(try withTempFile("base.pth", torchArchive(pickle, storages: storages)) { try TorchCheckpoint(path: $0) })
        opened = 0
        refused = 0
        for round in 0..<3000 {
            var p = pickle
            for _ in 0...(next() % 3) {
                let at = next() % p.count
                switch next() % 4 {
                case 0: p.insert(UInt8(truncatingIfNeeded: next()), at: at)
                case 1: p.remove(at: at)
                case 2: p[at] = UInt8(truncatingIfNeeded: next())
                default: p[at] ^= UInt8(1 << (next() % 8))
                }
            }
            try Data(torchArchive(p, storages: storages)).write(to: URL(fileURLWithPath: path))
            if readAll(path, what: "pickle round \(round)") { opened += 1 } else { refused += 1 }
        }
        print("damaged data.pkl: \(opened) read, \(refused) refused in \(Date().timeIntervalSince(start)) s")
        XCTAssertLessThan(Date().timeIntervalSince(start), 60)
    }

    /// Opens `path` and reads every tensor: true when that works, false when a `TorchCheckpointError` naming
    /// the file refuses it; any other error fails the test.
    func readAll(_ path: String, what: String) -> Bool {
        do {
            let c = try TorchCheckpoint(path: path)
            for n in c.tensorNames { _ = try c.tensor(n) }
            return true
        } catch let e as TorchCheckpointError {
            XCTAssertTrue(e.description.hasPrefix(path + ": "), e.description)
        } catch {
            XCTFail("\(what): not a TorchCheckpointError: \(error)")
        }
        return false
    }
}
