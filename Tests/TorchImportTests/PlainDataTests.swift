import Foundation
import XCTest
import TorchImport

/// What is accepted: the plain-data opcodes of protocols 0, 1 and 2, and float16/bfloat16 storages.
final class PlainDataTests: XCTestCase {
    /// `pickle.dumps(obj, protocol=p)` for p = 0, 1, 2 (CPython 3) of
    /// `{'a': 1, 'b': [1.5, 'xé\n', None, True, False, (1, 2, 3), (4,), ()], 'c': 2**40, 'd': -3, 'e': -2**63,
    /// 'f': 2**63 - 1, 7: 'seven', 'g': {'h': 0.1}}`.
    static let pythonPickles = [
        "KGRwMApWYQpwMQpJMQpzVmIKcDIKKGxwMwpGMS41CmFWeOlcdTAwMGEKcDQKYU5hSTAxCmFJMDAKYShJMQpJMgpJMwp0cDUKYShJNAp0cDYKYSh0YXNWYwpwNwpMMTA5OTUxMTYyNzc3NkwKc1ZkCnA4CkktMwpzVmUKcDkKTC05MjIzMzcyMDM2ODU0Nzc1ODA4TApzVmYKcDEwCkw5MjIzMzcyMDM2ODU0Nzc1ODA3TApzSTcKVnNldmVuCnAxMQpzVmcKcDEyCihkcDEzClZoCnAxNApGMC4xCnNzLg==",
        "fXEAKFgBAAAAYXEBSwFYAQAAAGJxAl1xAyhHP/gAAAAAAABYBAAAAHjDqQpxBE5JMDEKSTAwCihLAUsCSwN0cQUoSwR0cQYpZVgBAAAAY3EHTDEwOTk1MTE2Mjc3NzZMClgBAAAAZHEISv3///9YAQAAAGVxCUwtOTIyMzM3MjAzNjg1NDc3NTgwOEwKWAEAAABmcQpMOTIyMzM3MjAzNjg1NDc3NTgwN0wKSwdYBQAAAHNldmVucQtYAQAAAGdxDH1xDVgBAAAAaHEORz+5mZmZmZmac3Uu",
        "gAJ9cQAoWAEAAABhcQFLAVgBAAAAYnECXXEDKEc/+AAAAAAAAFgEAAAAeMOpCnEEToiJSwFLAksDh3EFSwSFcQYpZVgBAAAAY3EHigYAAAAAAAFYAQAAAGRxCEr9////WAEAAABlcQmKCAAAAAAAAACAWAEAAABmcQqKCP////////9/SwdYBQAAAHNldmVucQtYAQAAAGdxDH1xDVgBAAAAaHEORz+5mZmZmZmac3Uu",
    ]

    func testPythonProtocols0To2() throws {
        let expected: [String: TorchValue] = [
            "a": .int(1), "b.0": .double(1.5), "b.1": .string("xé\n"), "b.2": .none, "b.3": .bool(true), "b.4": .bool(false),
            "b.5.0": .int(1), "b.5.1": .int(2), "b.5.2": .int(3), "b.6.0": .int(4), "c": .int(1 << 40), "d": .int(-3),
            "e": .int(Int.min), "f": .int(Int.max), "7": .string("seven"), "g.h": .double(0.1),
        ]
        for (p, base64) in Self.pythonPickles.enumerated() {
            let bytes = try XCTUnwrap(Data(base64Encoded: base64))
            try withTempFile("p\(p).pth", torchArchive([UInt8](bytes))) { path in
                let c = try TorchCheckpoint(path: path)
                XCTAssertEqual(c.values, expected, "protocol \(p)")
                XCTAssertEqual(c.tensorNames, [])
            }
        }
    }

    /// Opcodes Python 3 no longer writes but older pickles hold: STRING, BINSTRING, BININT2, LONG4, POP,
    /// POP_MARK, DUP, text PUT/GET, LIST, TUPLE3, UNICODE escapes.
    func testOlderOpcodes() throws {
        func key(_ s: String) -> [UInt8] { [0x55, UInt8(s.utf8.count)] + Array(s.utf8) }
        var b: [UInt8] = [0x80, 2, 0x7D, 0x28]
        b += key("s") + Array("S'a\\nb\\x41\\'q'\n".utf8)
        b += key("t") + [0x54] + u32(3) + Array("abc".utf8)
        b += key("m") + [0x4D, 0x34, 0x12]
        b += key("n") + [0x8B] + u32(2) + [0xFF, 0x7F]
        b += key("neg") + [0x8A, 1, 0xFF]
        b += key("p") + [0x4E, 0x30, 0x4B, 5]
        b += [0x28, 0x4E, 0x4E, 0x31]
        b += key("q") + [0x32]
        b += key("r") + [0x4B, 9] + Array("p5\n".utf8)
        b += key("u") + Array("g5\n".utf8)
        b += key("v") + [0x28, 0x4B, 1, 0x4B, 2, 0x6C]
        b += key("w") + [0x4B, 1, 0x4B, 2, 0x4B, 3, 0x87]
        b += key("x") + Array("V\\u00e9\\U0001F600z\n".utf8)
        b += [0x75, 0x2E]
        try withTempFile("old.pth", torchArchive(b)) { path in
            XCTAssertEqual(try TorchCheckpoint(path: path).values, [
                "s": .string("a\nbA'q"), "t": .string("abc"), "m": .int(0x1234), "n": .int(0x7FFF), "neg": .int(-1),
                "p": .int(5), "q": .string("q"), "r": .int(9), "u": .int(9), "v.0": .int(1), "v.1": .int(2),
                "w.0": .int(1), "w.1": .int(2), "w.2": .int(3), "x": .string("é😀z"),
            ])
        }
    }

    /// Every float16 and bfloat16 bit pattern converts exactly: as Swift's Float16 (the hardware conversion), a
    /// NaN keeping its payload with the quiet bit set; bfloat16 is a shift.
    func testAllHalfAndBFloat16Values() throws {
        let all = (0..<65536).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let pickle = P.dict([("h", P.tensor(key: "0", numel: 65536, shape: [65536], stride: [1], storage: "HalfStorage")),
                             ("b", P.tensor(key: "1", numel: 65536, shape: [65536], stride: [1], storage: "BFloat16Storage"))])
        try withTempFile("half.pth", torchArchive(pickle, storages: [("0", all), ("1", all)])) { path in
            let c = try TorchCheckpoint(path: path)
            let h = try c.tensor("h").scalars, bf = try c.tensor("b").scalars
            for i in 0..<65536 {
                XCTAssertEqual(bf[i].bitPattern, UInt32(i) << 16)
                let bits = UInt16(i)
                if bits & 0x7C00 == 0x7C00 && bits & 0x3FF != 0 {
                    XCTAssertEqual(h[i].bitPattern, UInt32(bits & 0x8000) << 16 | 0x7FC0_0000 | UInt32(bits & 0x3FF) << 13)
                } else {
                    #if arch(x86_64) || arch(arm64)
                    XCTAssertEqual(h[i].bitPattern, Float(Float16(bitPattern: bits)).bitPattern, "half 0x\(String(i, radix: 16))")
                    #endif
                }
            }
        }
    }
}
