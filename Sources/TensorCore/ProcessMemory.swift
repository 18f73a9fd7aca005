import Foundation

/// Resident memory of this process, read from Linux's /proc/self/status (0 where that file does not exist).
package enum ProcessMemory {
    /// The resident set now (VmRSS), bytes.
    package static func residentBytes() -> Int { statusField("VmRSS:") }

    /// The largest resident set since the start or the last `resetPeak()` (VmHWM), bytes.
    package static func peakResidentBytes() -> Int { statusField("VmHWM:") }

    /// Resets the peak to the current resident set (Linux `clear_refs` 5), so a measurement reports its own peak.
    package static func resetPeak() {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    static func statusField(_ name: String) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = s.split(separator: "\n").first(where: { $0.hasPrefix(name) }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
        return kb * 1024
    }
}
