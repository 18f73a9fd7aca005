import Dispatch
import XCTest
@testable import IJEPA
@testable import JEPA
@testable import TensorCore

/// Settings travel in an `Engine`, not in globals: two training steps run at once from two threads, one on
/// {1 thread, profiling on, fusions off}, the other on {2 threads, no profiler, fusions on}, each give the bits
/// and (for the profiled one) the profile of the same step run alone.
final class TwoEnginesTests: XCTestCase {
    struct Outcome: Equatable {
        var loss: UInt32
        var parameters: [[UInt32]]
        /// (phase, op, pass, calls, flops) of every profiled row: what does not depend on timing.
        var profile: [String]
    }

    func engineA() -> Engine {
        var a = Engine(threads: 1)
        a.profiler = OpProfiler()
        a.fusedNorms = false
        a.fusedGELU = false
        return a
    }

    func engineB() -> Engine { Engine(threads: 2) }

    /// Two steps on `engine` of a small model (a fresh one each time) whose GEMMs are large enough to go
    /// parallel: 32 px, patch 4, D 64, depth 2, predictor 32 x 2, 16 images.
    func steps(_ engine: Engine) throws -> Outcome {
        let vit = ViTConfig(imageSize: 32, patchSize: 4, inChannels: 1, embedDim: 64, depth: 2, heads: 2)
        let model = try IJEPAModel(vit, predictorDim: 32, predictorDepth: 2, seed: 1)
        let schedules = Schedules(itersPerEpoch: 10, epochs: 1, warmupEpochs: 0.5, startLR: 1e-4, refLR: 1e-3,
                                  finalLR: 1e-6, refWD: 0.04, finalWD: 0.4, ema: (0.996, 1))
        let trainer = try IJEPATrainer(model: model, schedules: schedules, engine: engine)
        var mc = MaskConfig.official
        mc.minKeep = 4
        let collator = try MaskCollator(mc, gridHeight: 8, gridWidth: 8)
        var rng = RandomGenerator(seed: 5)
        let images = try rng.normal([16, 1, 32, 32])
        var loss: Float = 0
        for s in 0..<2 {
            let m = collator.sample(batch: 16, step: s, seed: 0)
            loss = try trainer.step(images: images, context: m.context, targets: m.targets).loss
        }
        let profile = engine.profiler?.rows.map { "\($0.phase)|\($0.op)|\($0.pass)|\($0.calls)|\($0.flops)" } ?? []
        return Outcome(loss: loss.bitPattern,
                       parameters: trainer.model.stateDict.map { $0.1.value.scalars.map(\.bitPattern) },
                       profile: profile)
    }

    func testTwoEnginesAtOnceGiveTheirSoloResults() throws {
        let soloA = try steps(engineA()), soloB = try steps(engineB())
        XCTAssertFalse(soloA.profile.isEmpty, "A profiles its steps")
        XCTAssertTrue(soloB.profile.isEmpty)
        XCTAssertEqual(soloA.parameters, soloB.parameters, "threads and fusions change no bit")

        let a = engineA(), b = engineB()
        let results = UnsafeMutableBufferPointer<Outcome?>.allocate(capacity: 2)
        results.initialize(repeating: nil)
        defer { results.deallocate() }
        let errors = UnsafeMutableBufferPointer<String?>.allocate(capacity: 2)
        errors.initialize(repeating: nil)
        defer { errors.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            do { results[i] = try steps(i == 0 ? a : b) } catch { errors[i] = "\(error)" }
        }
        XCTAssertEqual(errors[0], nil)
        XCTAssertEqual(errors[1], nil)
        XCTAssertEqual(results[0], soloA, "A beside B")
        XCTAssertEqual(results[1], soloB, "B beside A")
        XCTAssertEqual(a.kernels.regions.count, 0, "a one-thread engine never enters concurrentPerform")
        XCTAssertGreaterThan(b.kernels.regions.count, 0, "the two-thread engine ran kernels in parallel")
        // Each engine's tensors came from its own pool, and the engine gives its idle memory back on request.
        XCTAssertFalse(a.storage === b.storage)
        XCTAssertGreaterThan(a.storage.usage.idle, 0, "A's steps left idle blocks in A's pool")
        a.releaseMemory()
        XCTAssertEqual(a.storage.usage.idle, 0)
        XCTAssertGreaterThan(b.storage.usage.idle, 0, "releasing A's memory leaves B's alone")
    }
}
