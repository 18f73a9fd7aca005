#if MPI
import CMPI
import Foundation
import TensorCore

/// One step's gradients summed along the fixed tree's top levels in buckets, each bucket on its way as soon as
/// the backward pass has finished its tensors (DDP's and Horovod's bucketing, with our fixed order).
///
/// Tensors arrive through `submit` in the order the backward pass finishes them, the same on every rank, and
/// are packed into buckets of about `bucketFloats`. A closed bucket goes up the tree as the whole-step
/// combination does (`MPIProcessGroup.treeSubtrees`): at level l, rank r with r mod 2^(l+1) = 0 receives rank
/// r + 2^l's bucket and adds it on the right, the other sends and is done; rank 0 then broadcasts the bucket's
/// sums. So every element gets exactly the additions of the unbucketed tree: the same bits.
///
/// MPI_THREAD_FUNNELED: only the training loop's thread calls MPI, here inside `submit` (between the backward
/// pass's ops) and `finish`; each call tests the pending requests and moves every bucket as far as it can go.
/// Messages are matched by posting order: at every level each rank posts its sends and receives in bucket order
/// (a bucket waits for the one before it to have posted at that level), and MPI delivers the messages of one
/// sender, tag and communicator in the order they were sent; the tag is 1000 + the level. (A tag per bucket
/// would outgrow MPI_TAG_UB, at least 32767, for large models in small buckets.) The broadcasts, being
/// collectives, are posted in bucket order on every rank too.
final class MPITreeExchange: GradientExchange {
    /// Its buffers are allocated, not arrays: MPI holds their addresses while a request is pending.
    final class Bucket {
        let id: Int
        let indices: [Int]
        let shapes: [[Int]]
        let data: UnsafeMutableBufferPointer<Float>
        /// The right subtree's bucket, received (ranks that receive at some level).
        lazy var incoming = UnsafeMutableBufferPointer<Float>.allocate(capacity: data.count)
        var hasIncoming = false
        /// The tree level's distance 2^l; a sender is done after its send.
        var step = 1
        var level = 0
        /// Whether this level's message is posted (else it waits for the bucket before it to post there).
        var posted = false
        var request: MPI_Request?
        /// What the pending request waits for, and from which rank (for the deadline's message).
        var waitingFor = ""
        var peer = 0
        var reduced = false
        var broadcastPosted = false
        var done = false

        /// The tensors laid end to end in the bucket's buffer (one copy).
        init(id: Int, indices: [Int], tensors: [Tensor]) {
            (self.id, self.indices, self.shapes) = (id, indices, tensors.map(\.shape))
            data = .allocate(capacity: tensors.reduce(0) { $0 + $1.count })
            var offset = 0
            for t in tensors {
                t.withUnsafeBufferPointer { (data.baseAddress! + offset).initialize(from: $0.baseAddress!, count: $0.count) }
                offset += t.count
            }
        }

        deinit {
            data.deallocate()
            if hasIncoming { incoming.deallocate() }
        }

        var bytes: Int32 { Int32(data.count * 4) }
    }

    let group: MPIProcessGroup
    let bucketFloats: Int
    var pending: [(index: Int, tensor: Tensor)] = []
    var pendingFloats = 0
    var buckets: [Bucket] = []
    var broadcastsPosted = 0

    init(group: MPIProcessGroup, bucketFloats: Int) {
        self.group = group
        self.bucketFloats = bucketFloats
    }

    func submit(_ index: Int, _ tensor: Tensor) throws {
        pending.append((index, tensor))
        pendingFloats += tensor.count
        if pendingFloats >= bucketFloats { try closeBucket() }
        try advance()
    }

    func finish() throws -> [Tensor] {
        if !pending.isEmpty { try closeBucket() }
        var deadline = Date().addingTimeInterval(group.waitLimit)
        var pause: UInt32 = 1
        while buckets.contains(where: { !$0.done }) {
            if try advance() {
                deadline = Date().addingTimeInterval(group.waitLimit)
                pause = 1
                continue
            }
            if Date() > deadline {
                let stuck = buckets.first { !$0.done }!
                throw group.giveUp(waitingFor: stuck.waitingFor, peer: stuck.peer)
            }
            usleep(pause)  // as `MPIProcessGroup.wait`: quick answers are not slowed, idle waits cost no core
            pause = min(pause * 2, 200)
        }
        var out: [Int: Tensor] = [:]
        for b in buckets {
            var offset = 0
            for (i, shape) in zip(b.indices, b.shapes) {
                var t = try Tensor(uninitialized: shape, pool: nil)  // written in full: one copy out of the bucket
                t.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: b.data.baseAddress! + offset, count: $0.count) }
                offset += t.count
                out[i] = t
            }
        }
        return try (0..<out.count).map { i in
            guard let t = out[i] else {
                throw ProcessGroupError(rank: group.rank, problem: "gradient exchange: tensor \(i) was never submitted")
            }
            return t
        }
    }

    func closeBucket() throws {
        guard pendingFloats <= Int(Int32.max) / 4 else {
            throw ProcessGroupError(rank: group.rank, problem: "gradient exchange: a bucket of \(pendingFloats) floats exceeds MPI's Int32 count")
        }
        let b = Bucket(id: buckets.count, indices: pending.map(\.index), tensors: pending.map(\.tensor))
        pending.removeAll()
        pendingFloats = 0
        buckets.append(b)
        try post(b)
    }

    /// Whether bucket `b` may post its message at its current level: the bucket before it has posted there, or
    /// is past it.
    func mayPost(_ b: Bucket) -> Bool {
        guard b.id > 0 else { return true }
        let before = buckets[b.id - 1]
        return before.reduced || before.level > b.level || (before.level == b.level && before.posted)
    }

    /// Posts the bucket's message at its level if its turn has come (or marks it reduced at the top).
    func post(_ b: Bucket) throws {
        let rank = group.rank, size = group.size
        guard b.step < size else { b.reduced = true; return }
        guard !b.posted, mayPost(b) else { return }
        b.posted = true
        let comm = ijepa_mpi_comm_world(), tag = Int32(1000 + b.level)
        if rank % (2 * b.step) == 0 {
            b.peer = rank + b.step
            b.waitingFor = "rank \(b.peer)'s gradients"
            b.hasIncoming = true
            try group.check(MPI_Irecv(b.incoming.baseAddress, b.bytes, ijepa_mpi_byte(), Int32(b.peer), tag, comm, &b.request),
                            "MPI_Irecv from rank \(b.peer)")
        } else {
            b.peer = rank - b.step
            b.waitingFor = "rank \(b.peer) to take this rank's gradients"
            try group.check(MPI_Isend(b.data.baseAddress, b.bytes, ijepa_mpi_byte(), Int32(b.peer), tag, comm, &b.request),
                            "MPI_Isend to rank \(b.peer)")
        }
    }

    /// Tests every pending request once and moves the buckets on; true when anything moved.
    @discardableResult
    func advance() throws -> Bool {
        var moved = false
        for b in buckets where !b.done && b.request != nil {
            var flag: Int32 = 0
            try group.check(MPI_Test(&b.request, &flag, ijepa_mpi_status_ignore()), "MPI_Test")
            guard flag != 0 else { continue }
            b.request = nil
            moved = true
            if b.broadcastPosted {
                b.done = true
            } else if group.rank % (2 * b.step) == 0 {
                // Received the right subtree: left + right, then up one level.
                let (o, r) = (b.data, b.incoming)
                for j in 0..<o.count { o[j] += r[j] }
                b.step *= 2
                b.level += 1
                b.posted = false
                try post(b)
            } else {
                b.reduced = true  // sent: this rank's part of the bucket is up the tree
            }
        }
        // Buckets whose turn to post has come (the one before them posted, in this pass or earlier), in order.
        for b in buckets where !b.reduced && !b.posted && mayPost(b) {
            try post(b)
            moved = true
        }
        // The broadcasts of the sums, in bucket order on every rank (collectives must be posted in one order).
        while broadcastsPosted < buckets.count, buckets[broadcastsPosted].reduced {
            let b = buckets[broadcastsPosted]
            b.waitingFor = "the sums from rank 0"
            b.peer = 0
            try group.check(MPI_Ibcast(b.data.baseAddress, b.bytes, ijepa_mpi_byte(), 0, ijepa_mpi_comm_world(), &b.request),
                            "MPI_Ibcast of the sums")
            b.broadcastPosted = true
            broadcastsPosted += 1
            moved = true
        }
        return moved
    }
}
#endif
