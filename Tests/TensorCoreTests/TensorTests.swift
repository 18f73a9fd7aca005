import XCTest
import CPUKernels
@testable import TensorCore

final class TensorTests: XCTestCase {
    func testStorageIsAlignedAndZeroed() throws {
        for n in [0, 1, 3, 17, 1000] {
            let t = try Tensor(zeros: [n])
            t.withUnsafeBufferPointer { p in
                XCTAssertEqual(Int(bitPattern: p.baseAddress!) % 64, 0, "storage of \(n) floats is not 64-byte aligned")
                XCTAssert(p.allSatisfy { $0 == 0 })
            }
        }
    }

    func testBadShapesAreClearErrors() {
        XCTAssertThrowsError(try Tensor(zeros: [2, -1])) { e in
            XCTAssertEqual("\(e)", "invalid tensor shape [2, -1]: dimensions must be >= 0")
        }
        XCTAssertThrowsError(try Tensor(shape: [2, 3], values: [1, 2])) { e in
            XCTAssertEqual("\(e)", "shape [2, 3] holds 6 values, but 2 were given")
        }
        XCTAssertThrowsError(try Tensor.zeros(2, 3).reshaped([4, 2])) { e in
            XCTAssert("\(e)".contains("cannot reshape [2, 3]"), "\(e)")
        }
        XCTAssertThrowsError(try Tensor.matmul(Tensor.zeros(2, 3), Tensor.zeros(2, 3))) { e in
            XCTAssert("\(e)".contains("inner sizes 3 != 2"), "\(e)")
        }
    }

    func testCopyOnWrite() throws {
        let a = try Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        var b = a
        b[0, 1] = 9
        XCTAssertEqual(a.scalars, [1, 2, 3, 4])
        XCTAssertEqual(b.scalars, [1, 9, 3, 4])
        let r = try b.reshaped([4])
        XCTAssertEqual(r.shape, [4])
        XCTAssertEqual(r[1], 9)
    }

    func testMatmulAllTransposes() throws {
        let a = try Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = try Tensor(shape: [3, 2], values: [7, 8, 9, 10, 11, 12])
        XCTAssertEqual(try Tensor.matmul(a, b).scalars, [58, 64, 139, 154])
        let bt = try Tensor(shape: [2, 3], values: [7, 9, 11, 8, 10, 12])
        XCTAssertEqual(try Tensor.matmul(a, bt, transposeB: true).scalars, [58, 64, 139, 154])
        let at = try Tensor(shape: [3, 2], values: [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(try Tensor.matmul(at, b, transposeA: true).scalars, [58, 64, 139, 154])
        XCTAssertEqual(try Tensor.matmul(at, bt, transposeA: true, transposeB: true).scalars, [58, 64, 139, 154])
    }
}

final class StoragePoolTests: XCTestCase {
    func testSizeClassesBoundTheSlackAndAreStable() throws {
        var previous = 0
        for bytes in stride(from: 1 << 16, to: 1 << 26, by: 4093) {
            let c = StoragePool.sizeClass(bytes)
            XCTAssertGreaterThanOrEqual(c, bytes)
            XCTAssertLessThanOrEqual(Double(c), 1.125 * Double(bytes), "\(bytes) -> \(c)")
            XCTAssertGreaterThanOrEqual(c, previous, "size classes must grow with the request")
            XCTAssertEqual(StoragePool.sizeClass(c), c, "a class is its own class")
            previous = c
        }
        XCTAssertEqual(StoragePool.sizeClass(100), 100, "small blocks are not pooled and keep their size")
        // A freed block serves the next request of the same class (from the same pool).
        let pool = StoragePool()
        let a = try Tensor(zeros: [20_000], pool: pool)
        let p = a.withUnsafeBufferPointer { $0.baseAddress! }
        _ = consume a
        let b = try Tensor(zeros: [19_500], pool: pool)
        XCTAssertEqual(b.withUnsafeBufferPointer { $0.baseAddress! }, p, "same size class, same block")
    }

    /// tools/sanitize.sh sets IJEPA_EXPECT_ASAN=1 for its AddressSanitizer run: the pool must see it there.
    func testAddressSanitizerBuildsKeepTensorsInMalloc() {
        let asan = ProcessInfo.processInfo.environment["IJEPA_EXPECT_ASAN"] == "1"
        XCTAssertEqual(StoragePool.mapsBlocks, !asan, asan ? "under ASan blocks must come from malloc" : "blocks must be mapped")
    }

    func testReusedBlocksAreZeroedForZeros() throws {
        let pool = StoragePool()
        for n in [16_384, 20_000, 300_001] {
            var dirty = try Tensor(uninitialized: [n], pool: pool)
            dirty.withUnsafeMutableBufferPointer { $0.update(repeating: .nan) }
            _ = consume dirty
            let t = try Tensor(zeros: [n], pool: pool)
            t.withUnsafeBufferPointer { XCTAssert($0.allSatisfy { $0 == 0 }, "\(n) floats") }
        }
    }

    func testBlocksUpToTwiceTheRequestAreReusedAndSmallOnesAreNotPooled() {
        let pool = StoragePool(minimumCapacityBytes: 1 << 20)
        let big = pool.take(bytes: 150_000)
        XCTAssertTrue(big.fresh, "a new mapping")
        XCTAssertEqual(big.bytes, StoragePool.sizeClass(150_000))
        pool.give(big)
        let smaller = pool.take(bytes: 90_000)
        XCTAssertEqual(smaller.pointer, big.pointer, "1.8x the request: reused")
        XCTAssertFalse(smaller.fresh)
        XCTAssertEqual(smaller.bytes, big.bytes, "the block keeps its own size (what unmapping needs)")
        pool.give(smaller)
        let tooSmall = pool.take(bytes: 40_000)
        XCTAssertEqual(tooSmall.bytes, 40_000, "below 64 KiB: malloc's")
        XCTAssertEqual(pool.usage.idle, big.bytes, "the small block took nothing from the pool")
        pool.give(tooSmall)
        let farSmaller = pool.take(bytes: 1 << 16)
        XCTAssertTrue(farSmaller.fresh, "2.5x the request: a new mapping")
        pool.give(farSmaller)
        XCTAssertEqual(pool.usage.live, 0)
        pool.drain()
        XCTAssertEqual(pool.usage.idle, 0)
    }

    func testTheOldestIdleBlocksLeaveFirstAndTheCapFollowsTheWorkingSet() {
        let block = 1 << 18  // 256 KiB, its own size class
        let pool = StoragePool(minimumCapacityBytes: 2 * block)
        let a = pool.take(bytes: block), b = pool.take(bytes: block), c = pool.take(bytes: block)
        XCTAssertEqual(pool.usage.live, 3 * block)
        pool.give(a)
        pool.give(b)
        pool.give(c)  // over the 512 KiB cap: `a`, the oldest, is unmapped
        XCTAssertEqual(pool.usage.idle, 2 * block)
        let again = (0..<3).map { _ in pool.take(bytes: block) }
        XCTAssertEqual(again[0].pointer, c.pointer, "the most recently freed first")
        XCTAssertEqual(again[1].pointer, b.pointer)
        XCTAssertTrue(again[2].fresh, "`a` left the pool")
        again.forEach(pool.give)
        // A working set of 16 blocks raises the cap to a quarter of it: 4 blocks stay idle.
        let many = (0..<16).map { _ in pool.take(bytes: block) }
        XCTAssertEqual(pool.usage.live, 16 * block)
        many.forEach(pool.give)
        XCTAssertEqual(pool.usage.idle, 4 * block)
        pool.drain()
    }
}
