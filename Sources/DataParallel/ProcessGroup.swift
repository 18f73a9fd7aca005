import Foundation
import TensorCore

/// The processes of one data-parallel training run, ranks 0..<size. Each rank computes a contiguous block of
/// the step's gradient shards (`IJEPATrainer.gradientShards` S; size divides S) and sums them along its own
/// subtree of the shard tree; `combineSubtrees` sums the subtrees along the tree's top levels, in the fixed
/// order, so every rank holds the bits that one process computing all S shards gets.
package protocol ProcessGroup: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// The whole tree's sum, on every rank, of the ranks' subtree sums `local` (tensors of the same shapes on
    /// every rank). Rank r's subtree is the left sibling of rank r + 2^l's at level l.
    func combineSubtrees(_ local: [Tensor]) throws -> [Tensor]
    /// True on every rank when `flag` is true on any (a stop request on one rank stops them all).
    func anyTrue(_ flag: Bool) throws -> Bool
    /// The largest of the ranks' `value`s, on every rank.
    func maximum(_ value: Int) throws -> Int
    /// Rank `root`'s bytes, on every rank.
    func broadcast(_ bytes: [UInt8], from root: Int) throws -> [UInt8]
    /// A new exchange for one step that combines the subtrees as `combineSubtrees` does, in buckets of about
    /// `bucketBytes` sent as the backward pass finishes them (overlapping it); nil where the group has none
    /// (then `combineSubtrees`).
    func makeGradientExchange(bucketBytes: Int) -> GradientExchange?
}

/// One process: the whole tree is its own.
package final class SingleProcess: ProcessGroup {
    package init() {}
    package var rank: Int { 0 }
    package var size: Int { 1 }
    package func combineSubtrees(_ local: [Tensor]) throws -> [Tensor] { local }
    package func anyTrue(_ flag: Bool) throws -> Bool { flag }
    package func maximum(_ value: Int) throws -> Int { value }
    package func broadcast(_ bytes: [UInt8], from root: Int) throws -> [UInt8] { bytes }
    package func makeGradientExchange(bucketBytes: Int) -> GradientExchange? { nil }
}

/// What went wrong between the processes of a run; names the rank.
package struct ProcessGroupError: Error, CustomStringConvertible {
    package let rank: Int
    package let problem: String
    package var description: String { "rank \(rank): \(problem)" }
}

extension ProcessGroup {
    /// Every rank throws, naming a rank whose `value` differs from rank 0's, when any does; `what` names the
    /// value (a configuration hash, a build, a data set, the parameters).
    package func requireAgreement(_ value: String, what: String) throws {
        let reference = String(decoding: try broadcast(Array(value.utf8), from: 0), as: UTF8.self)
        let odd = try maximum(reference == value ? -1 : rank)
        guard odd < 0 else {
            throw ProcessGroupError(rank: rank, problem: "rank \(odd)'s \(what) differs from rank 0's (\(reference)\(odd == rank ? ", this rank's: \(value)" : "")): every process must run the same build on the same data and configuration")
        }
    }
}

/// FNV-1a, 64 bits, of `bytes` (continuing from `hash`): fingerprints that ranks compare.
package func fnv1a(_ bytes: UnsafeRawBufferPointer, hash: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
    var h = hash
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    return h
}

/// Tensors laid end to end in one Float buffer (one message per tree level), and back.
func flatten(_ tensors: [Tensor]) -> [Float] {
    var out = [Float]()
    out.reserveCapacity(tensors.reduce(0) { $0 + $1.count })
    for t in tensors { t.withUnsafeBufferPointer { out.append(contentsOf: $0) } }
    return out
}

func unflatten(_ flat: [Float], like shapes: [Tensor]) throws -> [Tensor] {
    var offset = 0
    return try shapes.map { t in
        defer { offset += t.count }
        return try Tensor(shape: t.shape, values: Array(flat[offset..<offset + t.count]))
    }
}
