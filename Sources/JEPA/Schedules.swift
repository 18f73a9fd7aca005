#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The official schedules (src/utils/schedulers.py, src/train.py), as pure functions of the
/// step so a resumed run recomputes them from the step count alone. `k` counts optimizer steps from 1: the
/// official `step()` increments before computing, so the first training step uses k = 1.
package struct Schedules: Sendable, Codable, Equatable {
    package var warmupSteps: Int
    package var totalSteps: Int   // T = int(ipe_scale * epochs * ipe)
    package var startLR: Double, refLR: Double, finalLR: Double
    package var refWD: Double, finalWD: Double
    package var ema0: Double, ema1: Double
    /// The momentum schedule's own length, ipe * epochs * ipe_scale, not truncated (as in train.py).
    package var momentumSteps: Double

    package init(itersPerEpoch ipe: Int, epochs: Int, warmupEpochs: Double, ipeScale: Double = 1,
                startLR: Double, refLR: Double, finalLR: Double, refWD: Double, finalWD: Double,
                ema: (Double, Double)) {
        warmupSteps = Int(warmupEpochs * Double(ipe))
        totalSteps = Int(ipeScale * Double(epochs) * Double(ipe))
        (self.startLR, self.refLR, self.finalLR) = (startLR, refLR, finalLR)
        (self.refWD, self.finalWD) = (refWD, finalWD)
        (ema0, ema1) = ema
        momentumSteps = Double(ipe) * Double(epochs) * ipeScale
    }

    /// WarmupCosineSchedule: linear from start to ref over the warmup, then cosine down to final.
    package func learningRate(step k: Int) -> Double {
        if k < warmupSteps {
            return startLR + Double(k) / Double(max(1, warmupSteps)) * (refLR - startLR)
        }
        let progress = Double(k - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
        return max(finalLR, finalLR + (refLR - finalLR) * 0.5 * (1 + cos(Double.pi * progress)))
    }

    /// CosineWDSchedule: a cosine ramp from ref to final (0.04 up to 0.4 in the configs), clamped at final.
    package func weightDecay(step k: Int) -> Double {
        let progress = Double(k) / Double(max(1, totalSteps))
        let wd = finalWD + (refWD - finalWD) * 0.5 * (1 + cos(Double.pi * progress))
        return finalWD <= refWD ? max(finalWD, wd) : min(finalWD, wd)
    }

    /// The EMA momentum used after optimizer step k (k from 1): the official generator yields m_0 first.
    package func momentum(step k: Int) -> Double {
        // Clamped at the ends: the official generator simply runs out after the last step.
        let i = min(max(Double(k - 1), 0), momentumSteps)
        return ema0 + i * (ema1 - ema0) / max(momentumSteps, 1)
    }
}
