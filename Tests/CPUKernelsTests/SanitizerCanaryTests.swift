import Foundation
import XCTest
@testable import CPUKernels

/// A deliberate data race, run only by tools/sanitize.sh (IJEPA_TSAN_CANARY=1) under ThreadSanitizer, which must
/// report it: the proof that the sanitizer run is really instrumented. Skipped everywhere else.
final class SanitizerCanaryTests: XCTestCase {
    func testDeliberateRace() throws {
        guard ProcessInfo.processInfo.environment["IJEPA_TSAN_CANARY"] == "1" else {
            throw XCTSkip("the deliberate race runs only under tools/sanitize.sh (IJEPA_TSAN_CANARY=1)")
        }
        let counter = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        defer { counter.deallocate() }
        counter.pointee = 0
        let shared = UnsafeMutableRawPointer(counter)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<1000 { shared.assumingMemoryBound(to: Int.self).pointee += 1 }  // unsynchronised on purpose
        }
        XCTAssertGreaterThan(counter.pointee, 0)
    }
}
