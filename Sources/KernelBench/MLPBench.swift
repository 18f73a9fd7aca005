import CPUKernels
import Foundation
import TensorCore

/// A transformer block's MLP (fc1, GELU, fc2 plus the residual) through the fused `mlp` op against the same
/// three ops run separately (`linear`, `gelu`, `linear` with the residual), in alternating rounds in one
/// process so that the shared machine's drift falls on both alike: the reported ratio is the median of the
/// per-round ratios. Forward on a no-grad tape (the target encoder, inference) and forward + backward (the
/// context encoder and the predictor). Both forms give the same bits (checked before timing).
package enum MLPBench {
    package struct Case: Sendable {
        package var name: String
        package var rows: Int
        package var dim: Int
        package var hidden: Int
    }

    /// tiny32 (4096 tokens, 192 -> 768), the default I-JEPA predictor (64 images x 4 targets x 21 tokens,
    /// 96 -> 384) and ViT-S/16 (3136 tokens, 384 -> 1536).
    package static let standard = [Case(name: "tiny32", rows: 4096, dim: 192, hidden: 768),
                                  Case(name: "predictor", rows: 5376, dim: 96, hidden: 384),
                                  Case(name: "vit-s16", rows: 3136, dim: 384, hidden: 1536)]

    package static func run(_ c: Case, training: Bool, threads: Int, peakPerCore: Double, rounds: Int) throws -> BenchResult {
        let engine = Engine(threads: threads)
        var rng = RandomGenerator(seed: 3)
        func param(_ shape: [Int], std: Float) throws -> Variable { Variable(try rng.normal(shape, std: std), requiresGrad: true) }
        let x = try param([c.rows, c.dim], std: 1), residual = try param([c.rows, c.dim], std: 1)
        let w1 = try param([c.hidden, c.dim], std: 0.02), b1 = try param([c.hidden], std: 0.02)
        let w2 = try param([c.dim, c.hidden], std: 0.02), b2 = try param([c.dim], std: 0.02)
        let inputs = [x, residual, w1, b1, w2, b2]
        let seed = try rng.normal([c.rows, c.dim])
        func pass(fused: Bool) throws -> [Tensor] {
            let tape = training ? Tape(engine) : engine.noGrad
            let y = fused
                ? try mlp(x, fc1: w1, bias1: b1, fc2: w2, bias2: b2, residual: residual, tape: tape)
                : try linear(gelu(try linear(x, weight: w1, bias: b1, tape: tape), tape: tape), weight: w2, bias: b2,
                             residual: residual, tape: tape)
            guard training else { return [y.value] }
            for v in inputs { v.zeroGrad() }
            try tape.backward(from: y, seed: seed)
            return [y.value] + inputs.map { $0.grad! }
        }
        func bits(_ ts: [Tensor]) -> [[UInt32]] { ts.map { $0.withUnsafeBufferPointer { $0.map(\.bitPattern) } } }
        guard try bits(pass(fused: true)) == bits(pass(fused: false)) else {  // also the warm-up
            throw TensorError.incompatibleShapes(operation: "MLP bench \(c.name): the fused op's bits differ from the separate ops'",
                                                 [c.rows, c.dim, c.hidden], [])
        }
        var fusedTimes: [Double] = [], separateTimes: [Double] = [], ratios: [Double] = []
        for r in 0..<rounds {
            var t = [false: 0.0, true: 0.0]
            for fused in r % 2 == 0 ? [true, false] : [false, true] {
                let t0 = monotonicSeconds()
                _ = try pass(fused: fused)
                t[fused] = monotonicSeconds() - t0
            }
            fusedTimes.append(t[true]!)
            separateTimes.append(t[false]!)
            ratios.append(t[false]! / t[true]!)
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        let flops = 2 * Double(c.rows) * Double(c.dim) * Double(c.hidden) * 2 * (training ? 3 : 1)
        let ms = median(fusedTimes)
        let gflops = flops / ms / 1e9
        return BenchResult(
            name: "mlp.\(training ? "train" : "forward").\(c.name)", kind: "mlp", threads: threads, medianMs: ms * 1e3,
            bestMs: fusedTimes.min()! * 1e3, gflops: gflops, pctPeak: 100 * gflops / (peakPerCore * Double(threads)),
            gbPerSecond: 0, validationError: 0,
            extra: [("m", .int(c.rows)), ("dim", .int(c.dim)), ("hidden", .int(c.hidden)),
                    ("separateMedianMs", .double(median(separateTimes) * 1e3)),
                    ("separateOverFused", .double(median(ratios))), ("rounds", .int(rounds))])
    }
}
