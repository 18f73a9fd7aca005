import TensorCore

/// Sums this process's gradient subtree with the other processes' (`IJEPATrainer.makeGradientExchange`).
package protocol GradientExchange: AnyObject {
    /// The subtree sum of tensor `index` (0: the loss, then the trainable parameters in order), final. Called
    /// in the same order on every process (the order in which the backward pass finishes the gradients).
    func submit(_ index: Int, _ tensor: Tensor) throws
    /// Waits for every sum and returns the whole tree's, in index order.
    func finish() throws -> [Tensor]
}

/// Sums of S = 2^k leaves pushed in order, along the balanced binary tree whose leaves are in that order (a
/// binary counter: two subtrees of the same height are added as soon as both exist, left + right). Holds at
/// most k + 1 partial sums. Every leaf is a list of tensors of the same shapes (here the loss and the gradients).
package struct ShardTree {
    var stack: [(height: Int, tensors: [Tensor])] = []

    package init() {}

    package mutating func push(_ leaf: [Tensor]) {
        var node = (height: 0, tensors: leaf)
        while let height = stack.last?.height, height == node.height {
            var left = stack.removeLast().tensors  // held only here: added into in place, no copy
            for i in left.indices {
                node.tensors[i].withUnsafeBufferPointer { r in
                    left[i].withUnsafeMutableBufferPointer { o in for j in 0..<o.count { o[j] += r[j] } }
                }
            }
            node = (height + 1, left)
        }
        stack.append(node)
    }

    /// Tensor `i` of the root when `leaf` is the last leaf, a power of two of leaves then pushed: the sum `push`
    /// and `total` would give it, computed for this tensor alone, so each can be finished as soon as its last
    /// leaf is known. Adds into the stack's partial sums of `i` in place (each tensor index once).
    package mutating func finalTotal(_ i: Int, last leaf: Tensor) -> Tensor {
        var node = leaf
        for k in stack.indices.reversed() {  // the newest partial sum first, as `push` merges them: left + right
            node.withUnsafeBufferPointer { r in
                stack[k].tensors[i].withUnsafeMutableBufferPointer { o in for j in 0..<o.count { o[j] += r[j] } }
            }
            node = stack[k].tensors[i]
        }
        return node
    }

    /// The sum of every leaf; an error unless a power of two of them was pushed.
    package func total() throws -> [Tensor] {
        guard stack.count == 1, let root = stack.first else {
            throw TensorError.incompatibleShapes(operation: "ShardTree: a power of two of leaves", [stack.count], [])
        }
        return root.tensors
    }
}
