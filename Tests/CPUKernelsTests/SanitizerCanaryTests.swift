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
        let address = Int(bitPattern: counter)  // an Int crosses into the @Sendable closures; a pointer may not
        // Two threads of their own (concurrentPerform may run every iteration on the calling thread, and then
        // there is no race to see): both write with nothing ordering them; each then signals the group, which
        // orders them only against the waiting thread.
        let group = DispatchGroup()
        for _ in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                let shared = UnsafeMutablePointer<Int>(bitPattern: address)!
                for _ in 0..<1000 { shared.pointee += 1 }  // unsynchronised on purpose
                group.leave()
            }
        }
        group.wait()
        XCTAssertGreaterThan(counter.pointee, 0)
    }
}
