import CPUKernels
import Foundation
import Synchronization
import TensorCore

/// One training batch, or the rows of it that one process builds (`rows`).
package struct Batch: Sendable {
    /// (rows.count, C, S, S) normalised images: rows `rows` of the batch.
    package var images: Tensor
    /// The class of each image.
    package var labels: [Int]
    /// The dataset index of each image.
    package var indices: [Int]
    /// The rows of the whole batch these images are (all of them unless the loader was given `rows`).
    package var rows: Range<Int>
    package var epoch: Int
    /// Global batch index: epoch * batchesPerEpoch + batch within the epoch.
    package var step: Int
}

/// Deterministic, resumable batches with one background thread decoding ahead.
///
/// - Epoch e visits the images in the order `RandomGenerator(seed: seed).stream(.dataOrder, e).permutation(count)`
///   (`0..<count` without shuffle); the last incomplete batch is dropped (`drop_last`).
/// - Batch b of epoch e holds `order[b * B ..< (b + 1) * B]`; its global index is `e * batchesPerEpoch + b`.
/// - Image `i` of epoch e is augmented with `RandomGenerator(seed: seed).stream(.augmentation, e, i)`.
/// So every batch is a pure function of (dataset, augmentation, seed, global index): the same for any thread
/// count, with or without prefetch, and `startStep: s` resumes a run exactly where batch s would have come.
///
/// With `rows`, only those rows of every batch are built (a process of a data-parallel run builds its shards'
/// images only); each is the image the whole batch has there.
///
/// With `prefetch > 0` one background thread (never more: the training step uses the cores) prepares up to
/// `prefetch` batches ahead; `deinit` stops it (it checks between images) and waits for it to exit.
package final class BatchLoader {
    package let dataset: ImageDataset
    package let batchSize: Int
    package let augmentation: Augmentation
    package let seed: UInt64
    package let shuffle: Bool
    package let prefetch: Int
    /// The rows of each batch that are built (nil: all).
    package let rows: Range<Int>?
    /// Global index of the batch the next `next()` returns.
    package private(set) var nextStep: Int

    package var batchesPerEpoch: Int { dataset.count / batchSize }
    /// Epoch of the batch the next `next()` returns.
    package var epoch: Int { nextStep / batchesPerEpoch }

    private let prefetcher: Prefetcher?
    private let orders = OrderCache()

    package init(
        dataset: ImageDataset, batchSize: Int, augmentation: Augmentation, seed: UInt64, startStep: Int = 0,
        prefetch: Int = 2, shuffle: Bool = true, rows: Range<Int>? = nil
    ) throws {
        guard batchSize > 0 else { throw ImageDataError(path: dataset.name, problem: "batch size must be positive (got \(batchSize))") }
        guard dataset.count >= batchSize else {
            throw ImageDataError(path: dataset.name, problem: "\(dataset.count) images cannot fill one batch of \(batchSize) (incomplete batches are dropped)")
        }
        guard startStep >= 0 else { throw ImageDataError(path: dataset.name, problem: "startStep must be >= 0 (got \(startStep))") }
        guard prefetch >= 0 else { throw ImageDataError(path: dataset.name, problem: "prefetch must be >= 0 (got \(prefetch))") }
        if let rows, rows.isEmpty || rows.lowerBound < 0 || rows.upperBound > batchSize {
            throw ImageDataError(path: dataset.name, problem: "rows \(rows) are not a non-empty part of a batch of \(batchSize)")
        }
        try augmentation.validate(channels: dataset.channels)
        self.dataset = dataset
        self.batchSize = batchSize
        self.augmentation = augmentation
        self.seed = seed
        self.shuffle = shuffle
        self.prefetch = prefetch
        self.rows = rows
        self.nextStep = startStep
        if prefetch > 0 {
            let cache = OrderCache()
            let p = Prefetcher(capacity: prefetch, startStep: startStep) { step, cancelled in
                try BatchLoader.makeBatch(dataset: dataset, augmentation: augmentation, seed: seed, batchSize: batchSize,
                                          step: step, shuffle: shuffle, order: cache.order, rows: rows, threads: 1,
                                          cancelled: cancelled)
            }
            prefetcher = p
            p.start()
        } else {
            prefetcher = nil
        }
    }

    deinit { prefetcher?.stop() }

    /// The next batch; epochs roll over forever.
    package func next() throws -> Batch {
        let b: Batch
        if let p = prefetcher {
            b = try p.take()
        } else {
            b = try BatchLoader.makeBatch(dataset: dataset, augmentation: augmentation, seed: seed,
                                          batchSize: batchSize, step: nextStep, shuffle: shuffle, order: orders.order,
                                          rows: rows, threads: nil, cancelled: nil)
        }
        precondition(b.step == nextStep, "BatchLoader: got batch \(b.step), expected \(nextStep)")
        nextStep += 1
        return b
    }

    /// The image order of `epoch`.
    package static func epochOrder(count: Int, seed: UInt64, epoch: Int, shuffle: Bool = true) -> [Int] {
        guard shuffle else { return Array(0..<count) }
        var g = RandomGenerator(seed: seed).stream(.dataOrder, UInt64(epoch))
        return g.permutation(count)
    }

    /// Batch `step` (global index), computed from scratch: what the loader returns for it. `order`, if given,
    /// supplies the epoch order (a cache; it must return `epochOrder(...)`). Images are augmented on up to
    /// `threads` threads (nil: all); the result does not depend on it.
    package static func makeBatch(
        dataset: ImageDataset, augmentation: Augmentation, seed: UInt64, batchSize: Int, step: Int,
        shuffle: Bool = true, order: ((_ count: Int, _ seed: UInt64, _ epoch: Int, _ shuffle: Bool) -> [Int])? = nil,
        threads: Int? = nil
    ) throws -> Batch {
        try makeBatch(dataset: dataset, augmentation: augmentation, seed: seed, batchSize: batchSize, step: step,
                      shuffle: shuffle, order: order, rows: nil, threads: threads, cancelled: nil)
    }

    static func makeBatch(
        dataset: ImageDataset, augmentation: Augmentation, seed: UInt64, batchSize: Int, step: Int, shuffle: Bool,
        order: ((Int, UInt64, Int, Bool) -> [Int])?, rows: Range<Int>?, threads: Int?, cancelled: (() -> Bool)?
    ) throws -> Batch {
        guard batchSize > 0, dataset.count >= batchSize, step >= 0 else {
            throw ImageDataError(path: dataset.name, problem: "no batch \(step) of size \(batchSize) from \(dataset.count) images")
        }
        try augmentation.validate(channels: dataset.channels)
        let perEpoch = dataset.count / batchSize
        let epoch = step / perEpoch, b = step % perEpoch
        let ord = order?(dataset.count, seed, epoch, shuffle) ?? epochOrder(count: dataset.count, seed: seed, epoch: epoch, shuffle: shuffle)
        let built = rows ?? 0..<batchSize
        let indices = Array(ord[b * batchSize + built.lowerBound..<b * batchSize + built.upperBound])
        let s = augmentation.outputSize, c = dataset.channels, per = c * s * s
        var images = try Tensor(zeros: [built.count, c, s, s])
        let base = RandomGenerator(seed: seed)
        let stopped = Atomic<Bool>(false)
        images.withUnsafeMutableBufferPointer { buf in
            let out = buf.baseAddress!
            Parallel.forEach(tasks: built.count, threads: threads ?? Parallel.hardwareThreads) { k, _ in
                if let cancelled, cancelled() { stopped.store(true, ordering: .relaxed); return }
                let i = indices[k]
                var rng = base.stream(.augmentation, UInt64(epoch), UInt64(i))
                augmentation.apply(dataset.image(i), width: dataset.width, height: dataset.height, channels: c,
                                   rng: &rng, into: out + k * per)
            }
        }
        if stopped.load(ordering: .relaxed) { throw CancellationError() }
        return Batch(images: images, labels: indices.map { dataset.labels[$0] }, indices: indices, rows: built,
                     epoch: epoch, step: step)
    }
}

/// Keeps the order of the last epoch asked for (a permutation of 60000 costs about a millisecond). Used by one
/// thread at a time.
final class OrderCache: @unchecked Sendable {
    private var epoch = -1, count = -1, seed: UInt64 = 0, shuffle = true
    private var cached: [Int] = []

    func order(count: Int, seed: UInt64, epoch: Int, shuffle: Bool) -> [Int] {
        if epoch != self.epoch || count != self.count || seed != self.seed || shuffle != self.shuffle {
            cached = BatchLoader.epochOrder(count: count, seed: seed, epoch: epoch, shuffle: shuffle)
            (self.epoch, self.count, self.seed, self.shuffle) = (epoch, count, seed, shuffle)
        }
        return cached
    }
}

/// One background thread producing batches step, step + 1, ... into a queue of at most `capacity`.
final class Prefetcher: @unchecked Sendable {
    typealias Make = @Sendable (_ step: Int, _ cancelled: @escaping () -> Bool) throws -> Batch
    private let condition = NSCondition()
    private var queue: [Result<Batch, Error>] = []  // guarded by condition
    private var finished = false  // guarded by condition
    private let stopping = Atomic<Bool>(false)
    private let capacity: Int
    private var step: Int  // producer thread only
    private let make: Make

    init(capacity: Int, startStep: Int, make: @escaping Make) {
        self.capacity = capacity
        self.step = startStep
        self.make = make
    }

    func start() {
        let t = Thread { [self] in
            // Named from inside, through the OS: on Linux, Foundation's `Thread.current.name` passes the name on
            // only when it takes the calling thread for this Thread, and once in a loaded full run (2026-12-07)
            // the thread kept the process's name for the test's whole 5 s poll (BatchLoaderTests).
            #if os(Linux)
            // pthread_setname_np is a GNU extension Swift's Glibc module does not offer; this is what it does.
            let fd = open("/proc/thread-self/comm", O_WRONLY)  // the calling thread's name (Linux keeps 15 characters)
            if fd >= 0 {
                _ = "ijepa-prefetch".withCString { write(fd, $0, strlen($0)) }
                close(fd)
            }
            #else
            Thread.current.name = "ijepa-prefetch"
            #endif
            run()
        }
        t.start()
    }

    private func run() {
        let cancelled: () -> Bool = { [self] in stopping.load(ordering: .relaxed) }
        while true {
            condition.lock()
            while queue.count >= capacity && !stopping.load(ordering: .relaxed) { condition.wait() }
            if stopping.load(ordering: .relaxed) { return exit() }
            condition.unlock()
            let r: Result<Batch, Error>
            do { r = .success(try make(step, cancelled)) } catch is CancellationError {
                condition.lock()
                return exit()
            } catch { r = .failure(error) }
            condition.lock()
            queue.append(r)
            step += 1
            condition.broadcast()
            if case .failure = r { return exit() }  // an error is delivered once; nothing follows it
            condition.unlock()
        }
    }

    /// Marks the thread finished; called with the lock held, releases it.
    private func exit() {
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    func take() throws -> Batch {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !finished { condition.wait() }
        guard !queue.isEmpty else {
            throw ImageDataError(path: "BatchLoader", problem: "the prefetch thread stopped after an error")
        }
        let r = queue.removeFirst()
        condition.broadcast()
        return try r.get()
    }

    /// Stops the thread and waits until it has left its loop (at most one image's augmentation).
    func stop() {
        condition.lock()
        stopping.store(true, ordering: .relaxed)
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }
}
