import XCTest
import Synchronization
@testable import CPUKernels

final class ParallelTests: XCTestCase {
    func testEveryTaskRunsOnceWithValidWorkerIndex() {
        for threads in [1, 2, 3, 8] {
            for tasks in [0, 1, 5, 64] {
                let seen = UnsafeMutablePointer<Int>.allocate(capacity: max(1, tasks))
                seen.initialize(repeating: 0, count: max(1, tasks))
                defer { seen.deallocate() }
                let badWorker = Atomic<Int>(0)
                Parallel.forEach(tasks: tasks, threads: threads) { t, w in
                    seen[t] += 1
                    if w < 0 || w >= max(1, min(threads, tasks)) { badWorker.add(1, ordering: .relaxed) }
                }
                for t in 0..<tasks { XCTAssertEqual(seen[t], 1, "task \(t) of \(tasks), \(threads) threads") }
                XCTAssertEqual(badWorker.load(ordering: .relaxed), 0)
            }
        }
    }

    func testChunkingCoversCountAndDependsOnCountOnly() {
        for count in [1, 7, 100, 10_000] {
            let (chunks, size) = Parallel.chunking(count: count, minChunk: 10, maxChunks: 16)
            XCTAssertGreaterThanOrEqual(chunks * size, count)
            XCTAssertLessThan((chunks - 1) * size, count)
            XCTAssertLessThanOrEqual(chunks, 16)
        }
        XCTAssertEqual(Parallel.chunking(count: 0, minChunk: 1).chunks, 0)
    }
}
