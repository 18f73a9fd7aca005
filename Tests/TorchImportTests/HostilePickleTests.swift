import Foundation
import XCTest
import TorchImport

/// data.pkl is a program: every way of making it do something other than describe data is refused, with an
/// error naming the file and the problem, quickly and in bounded memory.
final class HostilePickleTests: XCTestCase {
    let w6 = floatBytes([0, 1, 2, 3, 4, 5])

    func testGoodMinimalCheckpoint() throws {
        let pickle = P.dict([("w", P.tensor(key: "0", numel: 6, shape: [2, 3], stride: [3, 1])),
                             ("t", P.tensor(key: "0", numel: 6, offset: 1, shape: [2, 2], stride: [1, 3])),
                             ("epoch", P.int(7)), ("big", P.int(-5_000_000_000))])
        try withTempFile("good.pth", torchArchive(pickle, storages: [("0", w6)])) { path in
            let c = try TorchCheckpoint(path: path)
            XCTAssertEqual(c.tensorNames, ["w", "t"])
            XCTAssertEqual(try c.tensor("w").scalars, [0, 1, 2, 3, 4, 5])
            XCTAssertEqual(try c.tensor("t").scalars, [1, 4, 2, 5])
            XCTAssertEqual(c.values, ["epoch": .int(7), "big": .int(-5_000_000_000)])
        }
        // Size-1 dimensions may carry any stride (torch leaves them as they are); Int.max must not overflow.
        let odd = P.dict([("w", P.tensor(key: "0", numel: 6, offset: 2, shape: [1, 3, 1], stride: [Int.max, 1, Int.max]))])
        try withTempFile("odd.pth", torchArchive(odd, storages: [("0", w6)])) { path in
            XCTAssertEqual(try TorchCheckpoint(path: path).tensor("w").scalars, [2, 3, 4])
        }
    }

    func testForeignGlobalsAreRefused() {
        let system = [0x80, 2] + P.global("os", "system") + P.mark + P.str("echo pwned") + P.tuple + P.reduce + P.stop
        let text = assertRefused("model.pth", torchArchive(system), "data.pkl: global 'os.system' is not allowed (only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.{Float,Half,BFloat16}Storage)")
        XCTAssertTrue(text.hasSuffix("model.pth: data.pkl: global 'os.system' is not allowed (only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.{Float,Half,BFloat16}Storage)"), text)
        for (module, name) in [("builtins", "eval"), ("__builtin__", "getattr"), ("torch._utils", "_rebuild_parameter"),
                               ("torch", "LongStorage"), ("collections", "defaultdict"), ("posix", "system")] {
            let p = P.dict([("x", P.global(module, name) + [0x29] + P.reduce)])
            assertRefused("model.pth", torchArchive(p), "global '\(module).\(name)' is not allowed")
        }
        // Allowed globals used the wrong way: a storage class called, OrderedDict with arguments, bare classes.
        assertRefused("call.pth", torchArchive(P.dict([("x", P.global("torch", "FloatStorage") + [0x29] + P.reduce)])),
                      "REDUCE calls a torch.FloatStorage")
        assertRefused("od.pth", torchArchive(P.dict([("x", P.global("collections", "OrderedDict") + P.mark + P.int(1) + P.tuple + P.reduce)])),
                      "collections.OrderedDict called with 1 arguments")
        assertRefused("class.pth", torchArchive(P.dict([("x", P.global("collections", "OrderedDict"))])),
                      "'x' holds the class or function collections.OrderedDict, not data")
    }

    func testOpcodesOutsidePlainDataAreRefused() {
        assertRefused("proto4.pth", torchArchive([0x80, 4, 0x4E, 0x2E]), "pickle protocol 4 is not supported")
        assertRefused("inst.pth", torchArchive([0x80, 2] + Array("ios\nsystem\n".utf8) + [0x2E]), "opcode INST (0x69) is not allowed")
        assertRefused("newobj.pth", torchArchive([0x80, 2, 0x4E, 0x29, 0x81, 0x2E]), "opcode NEWOBJ (0x81) is not allowed")
        assertRefused("stackglobal.pth", torchArchive([0x80, 2, 0x93, 0x2E]), "opcode STACK_GLOBAL (0x93) is not allowed")
        assertRefused("ext.pth", torchArchive([0x80, 2, 0x82, 1, 0x2E]), "opcode EXT1 (0x82) is not allowed")
        assertRefused("persid.pth", torchArchive([0x80, 2] + Array("P0\n".utf8) + [0x2E]), "PERSID")
        assertRefused("build.pth", torchArchive([0x80, 2, 0x5D, 0x7D, 0x62, 0x2E]), "BUILD on a list")
        assertRefused("nostop.pth", torchArchive([0x80, 2, 0x4E]), "ends without STOP")
        assertRefused("trailing.pth", torchArchive([0x80, 2, 0x4E, 0x2E, 0x4E]), "1 bytes after STOP")
        assertRefused("empty.pth", torchArchive([0x80, 2, 0x30, 0x2E]), "pops from an empty stack")
        assertRefused("wide.pth", torchArchive([0x80, 2, 0x8A, 9] + [UInt8](repeating: 1, count: 9) + [0x2E]), "wider than 64 bits")
        assertRefused("long4.pth", torchArchive([0x80, 2, 0x8B] + u32(0xFFFF_FF00) + [0x2E]), "LONG4 with negative length")
    }

    func testHugeDeclaredLengthsAreRefused() {
        assertRefused("str.pth", torchArchive([0x80, 2, 0x58] + u32(0xFFFF_FFF0) + Array("abc".utf8)),
                      "declares 4294967280 bytes but only 3 are left")
        assertRefused("binstring.pth", torchArchive([0x80, 2, 0x54] + u32(0x7FFF_FFFF) + [0x2E]), "declares 2147483647 bytes")
        let p = P.dict([("w", P.tensor(key: "0", numel: Int(Int64.max / 2), shape: [1], stride: [1]))])
        assertRefused("numel.pth", torchArchive(p, storages: [("0", w6)]), "overflowing")
    }

    func testDeepNestingIsRefused() {
        let n = 100_000
        assertRefused("marks.pth", torchArchive([0x80, 2] + [UInt8](repeating: 0x28, count: n) + [0x2E]), "MARKs nested deeper than 1000")
        let lists = [0x80, 2] + [UInt8](repeating: 0x5D, count: n) + [UInt8](repeating: 0x61, count: n - 1) + [0x2E]
        assertRefused("lists.pth", torchArchive(lists), "values nested deeper than 1000")
        let tuples = [0x80, 2, 0x4E] + [UInt8](repeating: 0x85, count: n) + [0x2E]
        assertRefused("tuples.pth", torchArchive(tuples), "values nested deeper than 1000")
        // d0 = {'a': d1}, d1 = {'a': d2}, ...: n - 1 dicts and keys on the stack, then n - 1 SETITEMs.
        let dicts = [0x80, 2] + Array(repeating: [0x7D, 0x55, 1, 0x61], count: n - 1).flatMap { $0 } + [0x7D]
            + [UInt8](repeating: 0x73, count: n - 1) + [0x2E]
        assertRefused("dicts.pth", torchArchive(dicts), "values nested deeper than 1000")
        // Nesting through the memo, which the stack never sees: l0 = [], l_{k+1} = [l_k].
        var memo: [UInt8] = [0x80, 2, 0x5D, 0x72] + u32(0)
        for k in 1..<2000 { memo += [0x5D, 0x6A] + u32(UInt32(k - 1)) + [0x61, 0x72] + u32(UInt32(k)) }
        assertRefused("memo-nest.pth", torchArchive(memo + [0x2E]), "nested deeper than 1000")
        // A list that contains itself, and exponentially shared lists (2^60 leaves).
        assertRefused("cycle.pth", torchArchive([0x80, 2, 0x5D, 0x71, 0, 0x68, 0, 0x61, 0x2E]), "nested deeper than 1000 (or a cycle)")
        var laughs: [UInt8] = [0x80, 2, 0x5D, 0x4E, 0x61]
        for _ in 0..<60 { laughs += [0x71, 0, 0x30, 0x5D, 0x68, 0, 0x68, 0, 0x86, 0x61] }  // l = [(l, l)]
        assertRefused("laughs.pth", torchArchive(laughs + [0x2E]), "once flattened (shared containers?)", seconds: 20)
    }

    func testValueFloodsAreRefused() {
        // 2^23 + 1 Nones popped at once (a small file, a large count of objects) and a list of them.
        let n = (1 << 23) + 1
        assertRefused("pops.pth", torchArchive([0x80, 2] + Array(repeating: [0x4E, 0x30], count: n).flatMap { $0 } + [0x4E, 0x2E]),
                      "more than 8388608 values made", seconds: 20)
        assertRefused("appends.pth", torchArchive([0x80, 2, 0x5D] + Array(repeating: [0x4E, 0x61], count: n).flatMap { $0 } + [0x2E]),
                      "more than 8388608 values made", seconds: 20)
    }

    func testHugeNamesAreRefused() {
        let key = String(repeating: "k", count: 3000)
        let p = P.dict([(key, [0x7D] + P.str(key) + P.int(1) + [0x73])])
        assertRefused("names.pth", torchArchive(p), "a name longer than 4096 bytes once flattened")
    }

    func testMemoBombsAreRefused() {
        assertRefused("put.pth", torchArchive([0x80, 2, 0x4E, 0x72] + u32(0xFFFF_FFFF) + [0x2E]),
                      "memo index 4294967295 is outside the 1000000-entry limit")
        assertRefused("get.pth", torchArchive([0x80, 2, 0x4E, 0x71, 3, 0x68, 7, 0x2E]), "memo index 7 read (BINGET) before it was written")
        assertRefused("longget.pth", torchArchive([0x80, 2, 0x6A] + u32(123_456) + [0x2E]), "memo index 123456 read (LONG_BINGET)")
        // The memo stays bounded: a million distinct PUTs pass, the next index is refused.
        let many = [0x80, 2, 0x4E] + [0x72] + u32(999_999) + [0x72] + u32(1_000_000) + [0x2E]
        assertRefused("edge.pth", torchArchive(many), "memo index 1000000 is outside")
    }

    func testDuplicateKeysAreRefused() {
        let p = P.dict([("w", P.tensor(key: "0", numel: 6, shape: [6], stride: [1])),
                        ("w", P.tensor(key: "0", numel: 6, shape: [6], stride: [1]))])
        assertRefused("dup.pth", torchArchive(p, storages: [("0", w6)]), "duplicate dict key 'w'")
        // Two names that flatten to the same dotted name.
        let q = P.dict([("a.b", P.int(1)), ("a", [0x7D] + P.str("b") + P.int(2) + [0x73])])
        assertRefused("dotted.pth", torchArchive(q), "two entries have the name 'a.b' once flattened")
        assertRefused("key.pth", torchArchive([0x80, 2, 0x7D, 0x4E, 0x4E, 0x73, 0x2E]), "dict key of type None")
    }

    func testViewsAreCheckedAgainstTheirStorage() {
        func archive(_ t: [UInt8], _ storage: [UInt8]) -> [UInt8] { torchArchive(P.dict([("w", t)]), storages: [("0", storage)]) }
        assertRefused("short.pth", archive(P.tensor(key: "0", numel: 10, shape: [10], stride: [1]), w6),
                      "tensor 'w': storage '0' declares 10 x FloatStorage (40 bytes) but its record archive/data/0 holds 24 bytes")
        assertRefused("past.pth", archive(P.tensor(key: "0", numel: 6, offset: 1, shape: [2, 3], stride: [3, 1]), w6),
                      "tensor 'w': view (offset 1, size [2, 3], stride [3, 1]) reaches element 6 of a storage of 6 elements")
        assertRefused("stride.pth", archive(P.tensor(key: "0", numel: 6, shape: [2, 3], stride: [4, 1]), w6), "reaches element 6")
        assertRefused("negative.pth", archive(P.tensor(key: "0", numel: 6, shape: [2, 3], stride: [-3, 1]), w6), "negative offset, size or stride")
        assertRefused("negsize.pth", archive(P.tensor(key: "0", numel: 6, shape: [-2, 3], stride: [3, 1]), w6), "negative offset, size or stride")
        assertRefused("offset.pth", archive(P.tensor(key: "0", numel: 6, offset: 7, shape: [0], stride: [1]), w6), "starts past the end")
        assertRefused("rank.pth", archive(P.tensor(key: "0", numel: 6, shape: [2, 3], stride: [1]), w6), "2 sizes but 1 strides")
        assertRefused("overflow.pth", archive(P.tensor(key: "0", numel: 6, shape: [1 << 40, 1 << 40], stride: [0, 0]), w6), "overflows")
        assertRefused("expand.pth", archive(P.tensor(key: "0", numel: 6, shape: [1 << 20, 1 << 10], stride: [0, 0]), w6),
                      "more than 16777216 repeated elements")
        assertRefused("norecord.pth", torchArchive(P.dict([("w", P.tensor(key: "9", numel: 1, shape: [], stride: []))])),
                      "tensor 'w': no record archive/data/9 for its storage")
        let mixed = P.dict([("a", P.tensor(key: "0", numel: 6, shape: [6], stride: [1])),
                            ("b", P.tensor(key: "0", numel: 12, shape: [6], stride: [1], storage: "HalfStorage"))])
        assertRefused("mixed.pth", torchArchive(mixed, storages: [("0", w6)]), "storage '0' is declared as 12 x HalfStorage here and as 6 x FloatStorage by 'a'")
        let bare = P.dict([("s", P.mark + P.str("storage") + P.global("torch", "FloatStorage") + P.str("0") + P.str("cpu") + P.int(6) + P.tuple + [0x51])])
        assertRefused("bare.pth", torchArchive(bare, storages: [("0", w6)]), "'s' is a bare storage")
        let badPid = P.dict([("s", P.mark + P.str("storage") + P.global("torch", "DoubleStorage") + P.tuple + [0x51])])
        assertRefused("pid.pth", torchArchive(badPid), "global 'torch.DoubleStorage' is not allowed")
    }

    func testLegacyAndBigEndianFilesAreRefused() {
        // torch < 1.6: PROTO 2, then the magic number 0x1950a86a20f9469cfc6c as LONG1.
        let legacy: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E]
        assertRefused("old.pt", legacy + [UInt8](repeating: 0, count: 100), "legacy torch.save format")
        assertRefused("old.pt", legacy, "re-save it with a current torch")
        let pickle = P.dict([("w", P.tensor(key: "0", numel: 6, shape: [6], stride: [1]))])
        assertRefused("big.pth", torchArchive(pickle, storages: [("0", w6)], byteorder: "big"), "big-endian checkpoint (byteorder record says 'big')")
        assertRefused("odd.pth", torchArchive(pickle, storages: [("0", w6)], byteorder: "middle"), "byteorder record says 'middle'")
        assertRefused("text.pth", Array("not a checkpoint at all, just some text that is long enough".utf8), "not a zip archive")
        assertRefused("nopkl.pth", { var z = ZipWriter(); z.add("x/other", [1]); return z.bytes() }(), "no <folder>/data.pkl record")
    }
}
