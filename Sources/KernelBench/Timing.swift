import Dispatch

/// Wall-clock timing of a closure: warm-up, then repeated runs until both a minimum count and a minimum
/// total time are reached; median and best are reported (the machine is shared: quote medians).
package struct TimingStats: Sendable {
    package var samples: [Double]  // seconds, sorted ascending
    package var median: Double { samples.isEmpty ? .nan : samples[samples.count / 2] }
    package var best: Double { samples.first ?? .nan }
    package var worst: Double { samples.last ?? .nan }
}

@inline(__always)
package func monotonicSeconds() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) * 1e-9
}

package func measure(
    warmup: Int = 1, minRuns: Int = 5, maxRuns: Int = 50, minSeconds: Double = 0.3, _ body: () -> Void
) -> TimingStats {
    for _ in 0..<warmup { body() }
    var samples: [Double] = []
    var total = 0.0
    while samples.count < minRuns || (total < minSeconds && samples.count < maxRuns) {
        let t0 = monotonicSeconds()
        body()
        let dt = monotonicSeconds() - t0
        samples.append(dt)
        total += dt
    }
    samples.sort()
    return TimingStats(samples: samples)
}
