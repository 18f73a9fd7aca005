import Foundation
import Dispatch
import XCTest
@_spi(Tuning) @testable import CPUKernels

/// Kernels take their settings from the context they are given, so two contexts can run side by side.
final class KernelContextTests: XCTestCase {
    /// A GEMM large enough to go parallel, then a LayerNorm and a GELU over its output.
    func work(_ context: KernelContext) -> [UInt32] {
        let (m, n, k) = (192, 256, 384)
        var rng = TestRNG(11)
        let a = rng.floats(m * k), b = rng.floats(k * n)
        var c = [Float](repeating: 0, count: m * n)
        sgemm(c: &c, ldc: n, a: a, lda: k, transA: false, b: b, ldb: n, transB: false, m: m, n: n, k: k, context: context)
        var y = [Float](repeating: 0, count: m * n), mean = [Float](repeating: 0, count: m)
        var rstd = [Float](repeating: 0, count: m)
        layerNormForward(&y, mean: &mean, rstd: &rstd, c, gamma: nil, beta: nil, rows: m, dim: n, eps: 1e-6, context: context)
        var g = [Float](repeating: 0, count: m * n)
        geluForward(&g, y, count: m * n, context: context)
        return g.map(\.bitPattern)
    }

    func testTwoContextsAtOnceGiveTheirSoloBitsAndOnlyTheParallelOneOpensRegions() {
        let soloA = work(KernelContext(threads: 1))
        let soloB = work(KernelContext(threads: 2))
        XCTAssertEqual(soloA, soloB, "results do not depend on the thread count")

        let a = KernelContext(threads: 1), b = KernelContext(threads: 2)
        let results = UnsafeMutableBufferPointer<[UInt32]>.allocate(capacity: 2)
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            for _ in 0..<5 { results[i] = work(i == 0 ? a : b) }
        }
        XCTAssertEqual(results[0], soloA)
        XCTAssertEqual(results[1], soloB)
        XCTAssertEqual(a.regions.count, 0, "a one-thread context never enters concurrentPerform")
        XCTAssertGreaterThan(b.regions.count, 0, "the two-thread context ran its GEMM in parallel")
    }

    func testCopiesShareTheCounterAndThreadsStayPositive() {
        let c = KernelContext(threads: 2)
        var d = c.with(threads: 0)
        XCTAssertEqual(d.threads, 1, "at least one thread")
        d.threads = 4
        XCTAssertEqual(c.threads, 2)
        d.forEach(tasks: 8) { _, _ in }
        XCTAssertEqual(c.regions.count, 1, "copies count in the same counter")
        d.forEach(tasks: 1) { _, _ in }
        XCTAssertEqual(c.regions.count, 1, "a region on one worker runs serially and is not counted")
    }

    /// The context's worker pool runs every task of a region exactly once, with worker ids below the region's
    /// worker count, over many back-to-back regions of varying sizes (its threads poll between them, sleep after
    /// `spinSeconds`, and wake for the next); also from two threads at once on one context and from inside a task
    /// (those regions take the Dispatch path), and after its threads have gone to sleep.
    func testWorkerPoolRunsEveryTaskOnceFromAnyCaller() {
        let context = KernelContext(threads: 3)
        let lock = NSLock()
        func region(_ tasks: Int, _ threads: Int, nested: Bool = false) {
            var seen = [Int](repeating: 0, count: tasks)
            var badWorker = false
            context.forEach(tasks: tasks, threads: threads) { t, w in
                if nested && t == 0 { region(5, 2) }
                lock.lock()
                seen[t] += 1
                if w >= min(threads, tasks) { badWorker = true }
                lock.unlock()
            }
            XCTAssertEqual(seen, [Int](repeating: 1, count: tasks), "\(tasks) tasks on \(threads) threads")
            XCTAssertFalse(badWorker, "a worker id out of range")
        }
        for r in 0..<600 { region(1 + r % 37, 2 + r % 2) }
        region(40, 3, nested: true)
        DispatchQueue.concurrentPerform(iterations: 2) { k in
            for r in 0..<150 { region(1 + (r + k) % 23, 2) }
        }
        usleep(UInt32(WorkerPool.spinSeconds * 4e6))  // the pool's threads sleep now
        region(64, 3)
        XCTAssertGreaterThan(context.regions.count, 600)
    }
}
