import XCTest
@testable import JEPA
@testable import TensorCore

final class ProfilerTests: XCTestCase {
    /// A profiled I-JEPA step: every phase and pass shows up, the linear FLOPs equal 2 m n k (+ bias, + residual), the rows
    /// account for the step's wall time, and the profiler changes no number.
    func testProfiledStepAccountsForItsTimeAndChangesNothing() throws {
        let tiny = try TinyIJEPA()
        let (images, masks) = (tiny.images, tiny.masks(step: 0))
        let plain = try tiny.trainer(), profiled = try tiny.trainer()
        let a = try plain.step(images: images, context: masks.context, targets: masks.targets)
        let p = OpProfiler()
        profiled.engine.profiler = p
        let t0 = OpProfiler.now()
        let b = try profiled.step(images: images, context: masks.context, targets: masks.targets)
        let wall = OpProfiler.now() - t0
        profiled.engine.profiler = nil
        XCTAssertEqual(a.loss, b.loss)
        for ((_, x), (_, y)) in zip(plain.model.target.namedParameters, profiled.model.target.namedParameters) {
            XCTAssertEqual(x.value.scalars, y.value.scalars)
        }
        let phases = Set(p.rows.map(\.phase))
        for ph in ["target", "context", "predictor", "loss", "optimizer", "backward"] {
            XCTAssert(phases.contains(ph), "phase \(ph) missing from \(phases)")
        }
        XCTAssert(p.rows.contains { $0.phase == "context" && $0.op == "linear" && $0.pass == "backward" })
        XCTAssert(p.rows.contains { $0.phase == "optimizer" && $0.op == "adamw + zero grad + ema" })
        XCTAssertFalse(p.rows.contains { $0.phase == "target" && $0.pass == "backward" }, "the target encoder has no backward pass")
        // Target encoder (no gradient): per block norm1 + qkv as one op, the linear proj and the fused MLP (fc1,
        // GELU, fc2) over 4 x 16 tokens, plus the patch embedding.
        let rows = 4.0 * 16, d = 32.0
        let qkv = 2 * rows * d * (3 * d) + rows * 3 * d + 8 * rows * d  // + bias + the LayerNorm
        let proj = 2 * rows * d * d + rows * d + rows * d  // + bias + residual
        let mlps = 2 * 2 * rows * d * (4 * d) + rows * (4 * d + d) + rows * d + 20 * rows * 4 * d  // + biases, residual, GELU
        let patch = 2 * rows * 16 * d + rows * d
        let target = p.rows.first { $0.phase == "target" && $0.op == "linear" }!
        XCTAssertEqual(target.flops, 2 * proj + patch, accuracy: 1)
        XCTAssertEqual(target.calls, 2 + 1)
        let normQKV = p.rows.first { $0.phase == "target" && $0.op == "layerNormLinear" }!
        XCTAssertEqual(normQKV.flops, 2 * qkv, accuracy: 1)
        XCTAssertEqual(normQKV.calls, 2)
        let mlp = p.rows.first { $0.phase == "target" && $0.op == "mlp" }!
        XCTAssertEqual(mlp.flops, 2 * mlps, accuracy: 1)
        XCTAssertEqual(mlp.calls, 2)
        XCTAssertFalse(p.rows.contains { $0.phase == "target" && ["add", "gelu"].contains($0.op) }, "no separate adds or GELU")
        XCTAssert(p.rows.contains { $0.phase == "context" && $0.op == "geluLinear" }, "training runs fc1, then fc2 on GELU of its output")
        XCTAssertFalse(p.rows.contains { $0.op == "gelu" }, "GELU's output is not kept for the backward pass")
        XCTAssert(p.rows.contains { $0.phase == "predictor" && $0.op == "layerNormLinear" && $0.pass == "backward" })
        XCTAssertGreaterThan(p.totalSeconds / wall, 0.95, "the rows must account for the step")
        XCTAssertLessThanOrEqual(p.totalSeconds, wall * 1.0001)
        XCTAssert(p.table(steps: 1, wallSeconds: wall).contains("accounted for"))
        XCTAssertEqual(p.jsonLines(steps: 1, wallSeconds: wall).count, p.rows.count)
    }
}
