import XCTest
import CPUKernels
import NNLayers
import DataParallel
@testable import IJEPA
@testable import JEPA
@testable import TensorCore

/// Gradient shards: the batch's gradient as the fixed-tree sum of its shards' gradients, the same bits for any
/// thread count, and close to the whole-batch gradient.
final class GradientShardTests: XCTestCase {
    /// The tree is the balanced one over the leaves in order: with Float rounding its grouping shows.
    func testTreeOrder() throws {
        var tree = ShardTree()
        for v: Float in [1e8, 1, -1e8, 1] { tree.push([try Tensor(shape: [1], values: [v])]) }
        // (1e8 + 1) + (-1e8 + 1) = 1e8 + -1e8 = 0 in Float; left to right would give ((1e8 + 1) - 1e8) + 1 = 1.
        XCTAssertEqual(try tree.total()[0].scalars, [0])
        var three = ShardTree()
        for _ in 0..<3 { three.push([try Tensor(shape: [1], values: [1])]) }
        XCTAssertThrowsError(try three.total())
    }

    /// One sharded step's loss and gradients: (the bits of) the shards computed one by one in the test and summed
    /// along the tree by hand.
    func gradients(shards: Int, threads: Int) throws -> (loss: Float, grads: [[Float]]) {
        let tiny = try TinyIJEPA()
        let m = tiny.masks(step: 0)
        let trainer = try tiny.trainer(engine: Engine(threads: threads))
        trainer.gradientShards = shards
        let loss = shards == 1
            ? try trainer.lossAndPrediction(images: tiny.images, context: m.context, targets: m.targets, backward: true).0
            : try trainer.shardedLossAndGradients(images: tiny.images, context: m.context, targets: m.targets)
        return (loss, trainer.trainable.map { $0.1.grad!.scalars })
    }

    func testShardsAreTheTreeSumOfTheirParts() throws {
        let tiny = try TinyIJEPA()
        let m = tiny.masks(step: 0)
        // By hand: shards of 2 images, each through a fresh trainer's loss, summed left + right, halved.
        var parts: [(Float, [[Float]])] = []
        for rows in [0..<2, 2..<4] {
            let t = try tiny.trainer()
            let (l, _) = try t.lossAndPrediction(images: try tiny.images.batchRows(rows),
                                                 context: try m.context.map { try $0.batchRows(rows) },
                                                 targets: try m.targets.map { try $0.batchRows(rows) }, backward: true)
            parts.append((l, t.trainable.map { $0.1.grad!.scalars }))
        }
        let sharded = try gradients(shards: 2, threads: 1)
        XCTAssertEqual(sharded.loss.bitPattern, ((parts[0].0 + parts[1].0) * 0.5).bitPattern)
        for (i, g) in sharded.grads.enumerated() {
            let expected = zip(parts[0].1[i], parts[1].1[i]).map { ($0 + $1) * 0.5 }
            XCTAssertEqual(g.map(\.bitPattern), expected.map(\.bitPattern), "parameter \(i)")
        }
    }

    func testSameBitsForAnyThreadCountAndCloseToTheWholeBatch() throws {
        let whole = try gradients(shards: 1, threads: 2)
        for shards in [2, 4] {
            let one = try gradients(shards: shards, threads: 1), two = try gradients(shards: shards, threads: 2)
            XCTAssertEqual(one.loss.bitPattern, two.loss.bitPattern)
            for (a, b) in zip(one.grads, two.grads) { XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern)) }
            // The mean of the shards' mean losses is the batch's mean loss (equal shard sizes), up to rounding.
            XCTAssertEqual(one.loss, whole.loss, accuracy: 1e-5 * abs(whole.loss))
            for (a, b) in zip(one.grads, whole.grads) {
                let scale = max(b.map { abs($0) }.max() ?? 0, 1e-6)
                for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 2e-4 * scale) }
            }
        }
        XCTAssertThrowsError(try gradients(shards: 3, threads: 1))
        XCTAssertThrowsError(try gradients(shards: 8, threads: 1))  // 4 images cannot make 8 shards
    }

    /// An exchange of one process: keeps what it is given, in the order given.
    final class Collecting: GradientExchange {
        var submitted: [Int] = []
        var tensors: [Int: Tensor] = [:]
        func submit(_ index: Int, _ tensor: Tensor) throws {
            submitted.append(index)
            tensors[index] = tensor
        }
        func finish() throws -> [Tensor] { try (0..<tensors.count).map { try XCTUnwrap(tensors[$0]) } }
    }

    /// With an exchange the last shard's gradients are finished one parameter at a time during its backward
    /// pass (`ShardTree.finalTotal`): the same bits as the whole tree summed after it, every index once.
    func testOverlappedExchangeGivesTheTreeBits() throws {
        for (shards, recompute) in [(2, false), (4, false), (4, true)] {
            let tiny = try TinyIJEPA()
            let m = tiny.masks(step: 0)
            let plain = try tiny.trainer(recompute: recompute), overlapped = try tiny.trainer(recompute: recompute)
            plain.gradientShards = shards
            overlapped.gradientShards = shards
            let exchange = Collecting()
            overlapped.makeGradientExchange = { exchange }
            let a = try plain.shardedLossAndGradients(images: tiny.images, context: m.context, targets: m.targets)
            let b = try overlapped.shardedLossAndGradients(images: tiny.images, context: m.context, targets: m.targets)
            XCTAssertEqual(a.bitPattern, b.bitPattern)
            for (p, q) in zip(plain.trainable, overlapped.trainable) {
                XCTAssertEqual(p.1.grad!.scalars.map(\.bitPattern), q.1.grad!.scalars.map(\.bitPattern), p.0)
            }
            XCTAssertEqual(exchange.submitted.sorted(), Array(0...plain.trainable.count))
            XCTAssertEqual(exchange.submitted.last, 0, "the loss after the backward pass")
            XCTAssertNotEqual(Array(exchange.submitted.dropLast()), Array(1...plain.trainable.count),
                              "the backward pass finishes the last parameters first")
        }
    }

    /// `Tape.watch` reports a gradient only once it is final: at that moment it already equals what it holds
    /// after the whole backward pass (so no op writes a parameter's gradient without taking it as an input).
    func testWatchReportsOnlyFinalGradients() throws {
        for recompute in [false, true] {
            let tiny = try TinyIJEPA()
            let m = tiny.masks(step: 0)
            let trainer = try tiny.trainer(predictorDepth: 2, recompute: recompute)
            var atReady: [Int: [Float]] = [:]
            _ = try trainer.lossAndPrediction(images: tiny.images, context: m.context, targets: m.targets, backward: true) { i in
                atReady[i] = trainer.trainable[i].1.grad?.scalars ?? []
            }
            XCTAssertEqual(atReady.count, trainer.trainable.count)
            for (i, (name, p)) in trainer.trainable.enumerated() {
                XCTAssertEqual(atReady[i]?.map(\.bitPattern), p.grad?.scalars.map(\.bitPattern), "\(name), recompute \(recompute)")
            }
        }
    }

    /// A process given only its shards' images (the loader's `rows`) computes the subtree sum it computes from
    /// the whole batch.
    func testLocalImagesGiveTheLocalSubtree() throws {
        let tiny = try TinyIJEPA()
        let m = tiny.masks(step: 0)
        var sums: [[[UInt32]]] = []
        for local in [false, true] {
            let t = try tiny.trainer()
            t.gradientShards = 4
            t.localShards = 2..<4
            let images = local ? try tiny.images.batchRows(2..<4) : tiny.images
            let loss = try t.shardedLossAndGradients(images: images, context: m.context, targets: m.targets)
            sums.append([[loss.bitPattern]] + t.trainable.map { $0.1.grad!.scalars.map(\.bitPattern) })
        }
        XCTAssertEqual(sums[0], sums[1])
        let t = try tiny.trainer()
        t.gradientShards = 4
        t.localShards = 2..<4
        XCTAssertThrowsError(try t.shardedLossAndGradients(images: try tiny.images.batchRows(0..<3), context: m.context, targets: m.targets))
    }
}
