import XCTest
import ImageData
import JEPA
@testable import IJEPA
import TensorCore

/// Different seeds give independent runs: for seeds 0-7 and steps / epochs 0-63 no two (seed, step) pairs draw
/// the same mask batch, data order or augmentation. The derivation before checkpoint format v2 failed all three
/// (seed 1 at step 0 drew seed 0's masks of step 1, and its data order and augmentations likewise).
final class IndependentSeedsTests: XCTestCase {
    let seeds: [UInt64] = Array(0..<8)
    let steps = Array(0..<64)

    /// Fails the test for each value that two (seed, step) pairs share.
    func assertAllDistinct<T: Hashable>(_ what: String, _ value: (UInt64, Int) throws -> T) rethrows {
        var seen: [T: (UInt64, Int)] = [:]
        for s in seeds {
            for t in steps {
                let v = try value(s, t)
                if let other = seen[v] {
                    XCTFail("\(what): seed \(s) step \(t) repeats seed \(other.0) step \(other.1)")
                }
                seen[v] = (s, t)
            }
        }
        XCTAssertEqual(seen.count, seeds.count * steps.count, what)
    }

    func testMaskBatchesDifferForEverySeedAndStep() throws {
        let collator = try TrainingConfig().maskCollator()  // the main job's 7 x 7 grid
        assertAllDistinct("mask batch") { seed, step in
            let m = collator.sample(batch: 8, step: step, seed: seed)
            return (m.context + m.targets).map(\.indices)
        }
    }

    func testDataOrdersDifferForEverySeedAndEpoch() {
        assertAllDistinct("data order") { seed, epoch in
            BatchLoader.epochOrder(count: 1000, seed: seed, epoch: epoch)
        }
    }

    /// Without shuffling the batch of epoch e holds the same images for every seed, so what differs is the
    /// augmentation alone.
    func testAugmentationsDifferForEverySeedAndEpoch() throws {
        let data = syntheticDataset(count: 6, size: 12)
        let aug = Augmentation(outputSize: 8, channels: 1)
        try assertAllDistinct("augmentation") { seed, epoch in
            let b = try BatchLoader.makeBatch(dataset: data, augmentation: aug, seed: seed, batchSize: 6,
                                              step: epoch, shuffle: false, threads: 1)
            XCTAssertEqual(b.indices, Array(0..<6))
            return b.images.scalars
        }
    }

    /// Purposes never share a stream: the loader's epoch e and the collator's step e once both drew from
    /// `derived(e)`.
    func testPurposesAreSeparateDomains() {
        for s in seeds {
            for t in steps {
                let g = RandomGenerator(seed: s), k = UInt64(t)
                let keys = Set(RandomPurpose.allCases.map { g.stream($0, k).seed })
                XCTAssertEqual(keys.count, RandomPurpose.allCases.count, "seed \(s) key \(t)")
            }
        }
    }
}
