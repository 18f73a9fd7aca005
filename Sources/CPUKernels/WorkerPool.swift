#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// The threads of one `KernelContext`'s parallel regions: they stay awake for `spinSeconds` after each region,
/// polling for the next, and only then sleep.
///
/// Why: `DispatchQueue.concurrentPerform` parks its workers between regions, and on the 2-vCPU VM waking one
/// took 65-100 us (a region of two 39 us tasks took 104 us, more than running both on one thread), while a
/// batch-1 ViT-S/16 embedding opens ~100 regions: 2 threads ran it only 1.1-1.3x faster than 1. A worker that
/// is still polling starts the next region within a microsecond or so.
///
/// Every handshake goes through a pthread mutex (and a condition variable for sleepers), not the standard
/// library's atomics, so ThreadSanitizer sees the ordering (see `PThreadLock`). Workers are created on first
/// use, up to the largest region asked for, and exit when the pool is freed.
package final class WorkerPool: @unchecked Sendable {
    /// How long a worker polls after a region before it sleeps.
    package static let spinSeconds = 0.000_3

    private let shared = Shared()

    package init() {}

    deinit { shared.stop() }

    /// Runs `body(task, worker)` for every task in `0..<tasks` on `workers` threads (the caller and
    /// `workers - 1` pool threads), tasks taken in order from a shared counter; returns when all are done.
    /// One region at a time: a call made while another runs (a second thread embedding with the same context, or
    /// a region opened inside a task) goes to `Parallel.forEach` instead, with the same contract.
    package func run(tasks: Int, workers: Int, _ body: (_ task: Int, _ worker: Int) -> Void) {
        guard region.tryLock() else {
            Parallel.forEach(tasks: tasks, threads: workers, body)
            return
        }
        defer { region.unlock() }
        withoutActuallyEscaping(body) { body in
            shared.run(tasks: tasks, workers: workers, body)
        }
    }

    private let region = PThreadTryLock()

    private final class Shared: @unchecked Sendable {
        private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        // Guarded by `lock`:
        private var threads = 0                           // pool threads started
        private var epoch = 0                             // bumped once per region
        private var participants = 0                      // pool threads in the current region
        private var running = 0                           // of those, still running it
        private var nextTask = 0, taskCount = 0
        private var job: ((Int, Int) -> Void)?            // the current region's body
        private var stopping = false

        init() {
            pthread_mutex_init(lock, nil)
            pthread_cond_init(wake, nil)
        }

        deinit {
            pthread_cond_destroy(wake)
            pthread_mutex_destroy(lock)
            wake.deallocate()
            lock.deallocate()
        }

        @inline(__always) private func locked<R>(_ body: () -> R) -> R {
            pthread_mutex_lock(lock)
            defer { pthread_mutex_unlock(lock) }
            return body()
        }

        /// The next task of the current region, or nil when none is left.
        private func take() -> Int? {
            locked {
                guard nextTask < taskCount else { return nil }
                nextTask += 1
                return nextTask - 1
            }
        }

        func run(tasks: Int, workers: Int, _ body: @escaping (Int, Int) -> Void) {
            let helpers = max(0, min(workers, tasks) - 1)
            while locked({ threads }) < helpers { startThread() }
            locked {
                job = body
                nextTask = 0
                taskCount = tasks
                participants = helpers
                running = helpers
                epoch += 1
            }
            pthread_cond_broadcast(wake)
            while let t = take() { body(t, 0) }
            // Wait for the helpers' last tasks: poll (they finish within a task's time), then leave.
            while locked({ running }) > 0 { sched_yield() }
            locked { job = nil }
        }

        private func startThread() {
            // The epoch now, before the region that needs this thread is published: the thread must see that
            // region as new however late it starts.
            let (index, seen) = locked { () -> (Int, Int) in
                threads += 1
                return (threads, epoch)  // worker ids 1... (the caller is 0)
            }
            let box = Unmanaged.passRetained(ThreadStart(shared: self, index: index, seen: seen))
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                let start = Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue()
                start.shared.workerLoop(index: start.index, seen: start.seen)
                return nil
            }, box.toOpaque())
            precondition(rc == 0, "WorkerPool: pthread_create failed (\(rc))")
            pthread_detach(thread)
        }

        /// What a worker sees of the pool, read under one lock: the region, the stop flag, and whether this
        /// worker takes part in that region.
        private func state(_ index: Int) -> (epoch: Int, stop: Bool, joins: Bool) {
            locked { (epoch, stopping, index <= participants) }
        }

        /// The worker's share of the current region. Out of line, so that its copy of the body is released
        /// before the worker reports the region done (the caller's `withoutActuallyEscaping` checks that no
        /// copy outlives it).
        @inline(never)
        private func runTasks(_ index: Int) {
            guard let work = locked({ job }) else { return }
            while let t = take() { work(t, index) }
        }

        private func workerLoop(index: Int, seen start: Int) {
            var seen = start
            while true {
                // Poll for the next region for spinSeconds, then sleep until one starts.
                let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(WorkerPool.spinSeconds * 1e9)
                var polls = 0
                var now = state(index)
                while now.epoch == seen && !now.stop {
                    polls += 1
                    if polls % 64 == 0 {
                        if DispatchTime.now().uptimeNanoseconds > deadline {
                            pthread_mutex_lock(lock)
                            while epoch == seen && !stopping { pthread_cond_wait(wake, lock) }
                            pthread_mutex_unlock(lock)
                        } else {
                            sched_yield()
                        }
                    }
                    now = state(index)
                }
                if now.stop { return }
                seen = now.epoch
                guard now.joins else { continue }  // not one of this region's workers
                runTasks(index)
                locked { running -= 1 }
            }
        }

        func stop() {
            locked { stopping = true }
            pthread_cond_broadcast(wake)
        }
    }

    /// A pthread mutex taken with trylock (held for a whole region).
    private final class PThreadTryLock: @unchecked Sendable {
        private let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        init() { pthread_mutex_init(m, nil) }
        deinit { pthread_mutex_destroy(m); m.deallocate() }
        func tryLock() -> Bool { pthread_mutex_trylock(m) == 0 }
        func unlock() { pthread_mutex_unlock(m) }
    }

    private final class ThreadStart {
        let shared: Shared
        let index: Int, seen: Int
        init(shared: Shared, index: Int, seen: Int) { self.shared = shared; self.index = index; self.seen = seen }
    }
}
