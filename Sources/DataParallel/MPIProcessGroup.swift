#if MPI
import CMPI
import Foundation
import TensorCore

/// The ranks of an `mpirun` job (Open MPI). MPI is initialised with MPI_THREAD_FUNNELED: only the thread that
/// created the group calls MPI (the training loop's), while the kernels' Dispatch workers never do; progress is
/// driven by that thread inside each call. The tree's top levels use point-to-point messages in a fixed order
/// (`MPI_Allreduce` leaves its order unspecified, so its sums may differ with the rank count).
package final class MPIProcessGroup: ProcessGroup {
    package let rank: Int
    package let size: Int
    /// Sum the gradients with `MPI_Allreduce` instead of the fixed tree (`optimization.gradient_reduction`).
    package var plainAllreduce = false
    /// Seconds one rank waits for another before it stops, naming that rank: a rank that hangs (SIGSTOP) or
    /// loses its link must not hold the job forever. Every exchange is a nonblocking MPI call polled against
    /// this deadline (MPI's blocking calls have none).
    package var waitLimit: Double = 60

    /// Nil when this process was not started by mpirun (one rank, no MPI needed).
    package static func fromEnvironment() throws -> MPIProcessGroup? {
        guard ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil else { return nil }
        return try MPIProcessGroup()
    }

    package init() throws {
        var provided: Int32 = 0
        let rc = MPI_Init_thread(nil, nil, ijepa_mpi_thread_funneled(), &provided)
        guard rc == MPI_SUCCESS else { throw ProcessGroupError(rank: -1, problem: "MPI_Init_thread failed (\(rc))") }
        var r: Int32 = 0, n: Int32 = 0
        MPI_Comm_rank(ijepa_mpi_comm_world(), &r)
        MPI_Comm_size(ijepa_mpi_comm_world(), &n)
        (rank, size) = (Int(r), Int(n))
        guard size & (size - 1) == 0 else {
            throw ProcessGroupError(rank: rank, problem: "\(size) ranks: the shard tree needs a power of two")
        }
    }

    deinit { MPI_Finalize() }

    package func combineSubtrees(_ local: [Tensor]) throws -> [Tensor] {
        try plainAllreduce ? allreduceSubtrees(local) : treeSubtrees(local)
    }

    /// The fixed tree in buckets that overlap the backward pass (`MPITreeExchange`); nil with `plainAllreduce`,
    /// one rank, or `bucketBytes` 0.
    package func makeGradientExchange(bucketBytes: Int) -> GradientExchange? {
        plainAllreduce || size == 1 || bucketBytes <= 0 ? nil : MPITreeExchange(group: self, bucketFloats: max(1, bucketBytes / 4))
    }

    /// The fixed tree's top levels, by point-to-point messages, then a broadcast of the root.
    func treeSubtrees(_ local: [Tensor]) throws -> [Tensor] {
        guard size > 1 else { return local }
        var mine = flatten(local)
        var other = [Float](repeating: 0, count: mine.count)
        var step = 1
        while step < size {
            if rank % (2 * step) == 0 {
                // Left sibling: receive the right subtree (rank + step) and add it on the right.
                try exchange(&other, with: rank + step, sending: false)
                for i in mine.indices { mine[i] += other[i] }
            } else if rank % (2 * step) == step {
                try exchange(&mine, with: rank - step, sending: true)
                break
            }
            step *= 2
        }
        try mine.withUnsafeMutableBytes { b in
            var req: MPI_Request? = nil
            try check(MPI_Ibcast(b.baseAddress, Int32(b.count), ijepa_mpi_byte(), 0, ijepa_mpi_comm_world(), &req), "MPI_Ibcast of the sums")
            try wait(&req, for: "the sums from rank 0", peer: 0)
        }
        return try unflatten(mine, like: local)
    }

    /// The plain reduction: `MPI_Allreduce` of the subtree sums, usually faster, but its order of additions is
    /// Open MPI's (rings and recursive halving for large messages), so the bits may change with the rank count.
    package func allreduceSubtrees(_ local: [Tensor]) throws -> [Tensor] {
        guard size > 1 else { return local }
        let mine = flatten(local)
        var sum = [Float](repeating: 0, count: mine.count)
        try mine.withUnsafeBufferPointer { a in
            try sum.withUnsafeMutableBufferPointer { b in
                try inPieces(a.count) { offset, n in
                    var req: MPI_Request? = nil
                    try check(MPI_Iallreduce(a.baseAddress.map { $0 + offset }, b.baseAddress.map { $0 + offset }, Int32(n),
                                             ijepa_mpi_float(), ijepa_mpi_sum(), ijepa_mpi_comm_world(), &req), "MPI_Iallreduce of the gradients")
                    try wait(&req, for: "the gradient sums of every rank", peer: nil)
                }
            }
        }
        return try unflatten(sum, like: local)
    }

    package func anyTrue(_ flag: Bool) throws -> Bool {
        try maximum(flag ? 1 : 0) != 0
    }

    package func maximum(_ value: Int) throws -> Int {
        var mine = Int64(value), top: Int64 = 0
        var req: MPI_Request? = nil
        try check(MPI_Iallreduce(&mine, &top, 1, ijepa_mpi_int64(), ijepa_mpi_max(), ijepa_mpi_comm_world(), &req), "MPI_Iallreduce (max)")
        try wait(&req, for: "a flag exchange with every rank", peer: nil)
        return Int(top)
    }

    package func broadcast(_ bytes: [UInt8], from root: Int) throws -> [UInt8] {
        var count = Int64(bytes.count)
        try withUnsafeMutableBytes(of: &count) { c in
            var req: MPI_Request? = nil
            try check(MPI_Ibcast(c.baseAddress, 8, ijepa_mpi_byte(), Int32(root), ijepa_mpi_comm_world(), &req), "MPI_Ibcast of a size")
            try wait(&req, for: "a size from rank \(root)", peer: root)
        }
        var out = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count))
        try out.withUnsafeMutableBytes { b in
            try inPieces(b.count) { offset, n in
                var req: MPI_Request? = nil
                try check(MPI_Ibcast(b.baseAddress.map { $0 + offset }, Int32(n), ijepa_mpi_byte(), Int32(root),
                                     ijepa_mpi_comm_world(), &req), "MPI_Ibcast")
                try wait(&req, for: "data from rank \(root)", peer: root)
            }
        }
        return out
    }

    /// The tree's sum (`combineSubtrees`) and `MPI_Allreduce`'s of values whose order of addition shows in
    /// Float rounding: element i of rank r is one of 2^27, -2^27, 1, 1 (a rotation by i and r), so that
    /// (a + b) + (c + d) and other groupings round differently. Returns how many of `count` elements each got
    /// wrong, against the tree computed in one process.
    package func reductionOrderCheck(count: Int = 1 << 20) throws -> (tree: Int, allreduce: Int) {
        let values: [Float] = [134_217_728, -134_217_728, 1, 1]
        func value(rank r: Int, _ i: Int) -> Float { values[(r + i / 3 + (i % 3) * (r / 2)) % 4] }
        let local = try Tensor(shape: [count], values: (0..<count).map { value(rank: rank, $0) })
        let tree = try treeSubtrees([local])[0].scalars
        let plain = try allreduceSubtrees([local])[0].scalars
        var reference = ShardTree()
        for r in 0..<size { reference.push([try Tensor(shape: [count], values: (0..<count).map { value(rank: r, $0) })]) }
        let expected = try reference.total()[0].scalars
        return (zip(tree, expected).filter { $0.bitPattern != $1.bitPattern }.count,
                zip(plain, expected).filter { $0.bitPattern != $1.bitPattern }.count)
    }

    /// Ranks 0 and 1 send `bytes` back and forth `rounds` times (after one warm-up round); the others wait.
    /// Returns the mean seconds of one round trip (two messages), as rank 0 measured it; 0 on other ranks.
    /// For the link's bandwidth as MPI sees it: 2 * bytes / seconds (tools/check-network.sh).
    package func pingPong(bytes: Int, rounds: Int) throws -> Double {
        guard size > 1, rank < 2 else { return 0 }
        var buffer = [Float](repeating: 1, count: max(1, bytes / 4))
        var start = Date()
        for round in -1..<rounds {
            if round == 0 { start = Date() }
            try exchange(&buffer, with: 1 - rank, sending: rank == 0)
            try exchange(&buffer, with: 1 - rank, sending: rank == 1)
        }
        return rank == 0 ? Date().timeIntervalSince(start) / Double(rounds) : 0
    }

    /// Sends `values` to `peer` (`sending`), or receives them from it, in pieces, each against the deadline.
    func exchange(_ values: inout [Float], with peer: Int, sending: Bool) throws {
        try values.withUnsafeMutableBytes { b in
            try inPieces(b.count) { offset, n in
                var req: MPI_Request? = nil
                let p = b.baseAddress.map { $0 + offset }, count = Int32(n), to = Int32(peer), comm = ijepa_mpi_comm_world()
                try check(sending ? MPI_Isend(p, count, ijepa_mpi_byte(), to, 7, comm, &req)
                                  : MPI_Irecv(p, count, ijepa_mpi_byte(), to, 7, comm, &req),
                          sending ? "MPI_Isend to rank \(peer)" : "MPI_Irecv from rank \(peer)")
                try wait(&req, for: sending ? "rank \(peer) to take this rank's gradients" : "rank \(peer)'s gradients", peer: peer)
            }
        }
    }

    /// `body(offset, count)` over `total` elements in pieces of at most 2^28 (MPI counts are Int32; 1 GiB of
    /// Float), once with count 0 for nothing.
    func inPieces(_ total: Int, _ body: (Int, Int) throws -> Void) rethrows {
        var offset = 0
        repeat {
            let n = min(total - offset, 1 << 28)
            try body(offset, n)
            offset += n
        } while offset < total
    }

    /// Says which rank was waited for too long, then `MPI_Abort` (see `wait`).
    func giveUp(waitingFor what: String, peer: Int?) -> ProcessGroupError {
        let e = ProcessGroupError(rank: rank, problem: "waited \(Int(waitLimit)) s for \(what): \(peer.map { "rank \($0)" } ?? "a rank") is hung, stopped or unreachable; stopping the job (resume from the last checkpoint)")
        FileHandle.standardError.write(Data("\nerror: \(e)\n".utf8))
        MPI_Abort(ijepa_mpi_comm_world(), 75)
        return e
    }

    /// Polls `request` until it completes or `waitLimit` seconds pass; then throws, naming `peer` (the rank
    /// waited for, or every rank for a collective).
    func wait(_ request: inout MPI_Request?, for what: String, peer: Int?) throws {
        let deadline = Date().addingTimeInterval(waitLimit)
        var done: Int32 = 0
        var pause: UInt32 = 1
        while true {
            try check(MPI_Test(&request, &done, ijepa_mpi_status_ignore()), "MPI_Test")
            if done != 0 { return }
            if Date() > deadline {
                // Nothing can finish cleanly with a rank gone (MPI_Finalize would wait for it too): say which,
                // then MPI_Abort, which makes mpirun end every rank, a stopped one included.
                throw giveUp(waitingFor: what, peer: peer)
            }
            usleep(pause)  // from 1 us up to 200 us: answers within microseconds are not slowed, idle waits cost no core
            pause = min(pause * 2, 200)
        }
    }

    func check(_ rc: Int32, _ what: String) throws {
        guard rc == MPI_SUCCESS else { throw ProcessGroupError(rank: rank, problem: "\(what) failed (\(rc))") }
    }
}
#endif
