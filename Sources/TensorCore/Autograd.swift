import CPUKernels

/// The gradient side of a `Variable`: what the backward pass writes into. Ops whose backward pass only routes
/// gradients (adds, copies, gathers, concatenations, residual paths) capture this node, not the variable, so an
/// activation's value is freed as soon as the forward pass and the ops that read it in their backward pass are
/// done with it, while its gradient can still arrive.
package final class GradNode {
    package internal(set) var grad: Tensor?
    package let requiresGrad: Bool
    /// See `Variable.retainsGrad`.
    package internal(set) var retainsGrad = true
    /// The value's shape (for allocating the gradient).
    var shape: [Int]
    /// Whether the gradient buffer is known to hold only zeros (`Variable.zeroGrad`, or an optimizer's zeroing
    /// told by `Variable.noteGradientZeroed`): `withGradForWrite` then reports it fresh, so the next
    /// contribution is written instead of added. A weight gradient's GEMM then runs with beta 0: it does not
    /// read the zeros, and where the optimizer released their pages it does not fault each page in twice (a
    /// read maps the shared zero page, the write copies it, and that copy flushes the other threads' TLBs: on
    /// ViT-S/16's step at 2 threads those faults cost ~6 %, docs/performance.md). Without a buffer it says
    /// nothing: a gradient allocated by `withGradForWrite` is fresh anyway, and `withGrad` clears the flag.
    var holdsZeros = false
    var count: Int { shape.reduce(1, *) }
    /// Where the gradient buffer comes from: the engine's pool for an op's output (set by the op), none for a
    /// variable made by hand (a parameter keeps its gradient buffer across steps anyway).
    var pool: StoragePool?

    init(shape: [Int], requiresGrad: Bool) {
        self.shape = shape
        self.requiresGrad = requiresGrad
    }

    /// Calls `body` with the gradient buffer (allocated and zeroed on first use).
    @inline(__always)
    func withGrad(_ body: (UnsafeMutablePointer<Float>) -> Void) {
        if grad == nil { grad = Tensor.zeros(shape: shape, pool: pool) }
        holdsZeros = false
        grad!.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }

    /// Calls `body(gradient, fresh)`. When `fresh` is true the buffer was just allocated and holds garbage, or
    /// holds zeros (`holdsZeros`): the caller must write every element (gradient = contribution) instead of
    /// adding; this skips zero-filling and re-reading a buffer of zeros (an op's first contribution to an
    /// activation's gradient, and a parameter's after the optimizer zeroed it, every step).
    @inline(__always)
    func withGradForWrite(_ body: (UnsafeMutablePointer<Float>, Bool) -> Void) {
        var fresh = holdsZeros
        if grad == nil {
            grad = (try? Tensor(uninitialized: shape, pool: pool)) ?? Tensor.zeros(shape: shape, pool: pool)
            fresh = true
        }
        holdsZeros = false
        grad!.withUnsafeMutableBufferPointer { body($0.baseAddress!, fresh) }
    }
}

/// A value in the define-by-run graph: a tensor, and the gradient of the loss with respect to it (`node`).
///
/// Gradients accumulate: every op's backward adds into `grad`, which is allocated (zeroed) the first time
/// something flows into it. Parameters keep their gradient buffer across steps; `zeroGrad()` clears it in
/// place, so a steady-state step does not reallocate it.
package final class Variable {
    /// The tensor; empty while the weight lives in its packed copy only (`releaseValueKeepingPackedCopy`):
    /// read a weight through `withValue`, which unpacks a temporary copy then.
    package var value: Tensor {
        didSet {
            node.shape = value.shape
            packedWeight = nil  // a new value: the packed copy would be stale
            valueReleased = false
        }
    }
    /// True after `releaseValueKeepingPackedCopy()` (until `value` is assigned).
    package private(set) var valueReleased = false
    /// This (out, in) weight packed as the GEMM's op(B) for `linear` / `mlp` (`prepackWeight`); the forward
    /// products then skip packing it. Only for weights that no longer change (an inference encoder); any
    /// assignment or mutation through `value` drops it.
    package private(set) var packedWeight: PackedWeight?
    package let node: GradNode
    package internal(set) var grad: Tensor? {
        get { node.grad }
        set {
            node.grad = newValue
            node.holdsZeros = false
        }
    }
    package var requiresGrad: Bool { node.requiresGrad }
    /// Whether the gradient stays after the backward pass has used it. True for variables made by the user
    /// (parameters, inputs); false for op outputs, whose gradient is released as soon as the op has propagated
    /// it (as PyTorch does), so the peak memory of a backward pass holds few activation gradients at a time.
    package internal(set) var retainsGrad: Bool {
        get { node.retainsGrad }
        set { node.retainsGrad = newValue }
    }
    /// Optional name for error messages and the profiler.
    package var name: String

    package init(_ value: Tensor, requiresGrad: Bool = false, name: String = "") {
        self.value = value
        self.node = GradNode(shape: value.shape, requiresGrad: requiresGrad)
        self.name = name
    }

    package var shape: [Int] { node.shape }  // value's shape, also while the value is released

    /// Packs this (out, in) weight once for the forward GEMMs of `linear`, `layerNormLinear` and `mlp` with
    /// `kernels`' KC (a call with another KC packs as before). Same bits; the packed copy costs the weight's size
    /// again (plus padding to the GEMM's panel width).
    package func prepackWeight(kernels: KernelContext) {
        guard value.shape.count == 2, value.count > 0 else { return }
        let (outF, inF) = (value.shape[0], value.shape[1])
        packedWeight = value.withUnsafeBufferPointer {
            PackedWeight(b: $0.baseAddress!, ldb: inF, transB: true, k: inF, n: outF, kc: kernels.gemmKC)
        }
    }

    /// Frees the value of a prepacked weight (`prepackWeight`): the packed copy, which the forward GEMMs read,
    /// becomes the only one, so an inference encoder holds its Linear weights once (ViT-H/14: 2.5 GB, not 5).
    /// `shape` stays; `withValue` unpacks a temporary copy (the backward pass, or a GEMM with another KC).
    package func releaseValueKeepingPackedCopy() throws {
        guard let packed = packedWeight, !valueReleased else { return }
        let shape = value.shape
        value = try Tensor(zeros: [0])  // clears the packed copy and the flag (didSet): both set again below
        packedWeight = packed
        node.shape = shape
        valueReleased = true
    }

    /// The packed weight when it fits a forward GEMM with `kernels` (same KC), else nil.
    package func packedOperand(for kernels: KernelContext) -> PackedWeight? {
        guard let p = packedWeight, p.operand.kc == kernels.gemmKC else { return nil }
        return p
    }

    /// Calls `body` with this (out, in) weight as a forward GEMM's op(B): the packed copy when it fits `kernels`
    /// (the pointer then only describes op(B); its floats are not read), else the values.
    package func withWeightOperand<R>(for kernels: KernelContext, _ body: (UnsafePointer<Float>, GEMMPackedB?) -> R) -> R {
        if let packed = packedOperand(for: kernels) {
            return withExtendedLifetime(packed) { body(packed.operand.base, packed.operand) }
        }
        return withValue { body($0, nil) }
    }

    /// Keeps this op output's gradient after the backward pass (PyTorch's `retain_grad()`).
    package func retainGrad() { retainsGrad = true }

    /// Clears the gradient in place (keeps the buffer).
    package func zeroGrad() {
        guard grad != nil else { return }
        node.grad!.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        node.holdsZeros = true
    }

    /// Hands over the gradient and leaves none, so the next backward pass writes a fresh buffer instead of
    /// adding into (or copying) this one: gradients summed outside the autograd (`ShardTree`).
    package func takeGrad() -> Tensor? {
        defer { node.grad = nil; node.holdsZeros = false }
        return node.grad
    }

    /// Installs `gradient` (this value's shape) as the gradient.
    package func replaceGrad(_ gradient: Tensor) throws {
        guard gradient.shape == shape else {
            throw TensorError.incompatibleShapes(operation: "replaceGrad: the value's shape", gradient.shape, shape)
        }
        node.grad = gradient
        node.holdsZeros = false
    }

    /// Tells the autograd that the gradient holds only zeros, set through `unsafeParameterBuffers` (an
    /// optimizer that zeroes gradients in its own pass): the next contribution is then written, not added.
    /// Only for a caller that did zero every element.
    package func noteGradientZeroed() {
        if grad != nil { node.holdsZeros = true }
    }

    /// The value's buffer and the gradient's (nil when there is none), each made unique first, for kernels that
    /// update parameters in place (the optimizer). Valid until the value or the gradient is replaced.
    package func unsafeParameterBuffers() -> (value: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>?) {
        node.holdsZeros = false  // the caller may write anything there
        let v = value.withUnsafeMutableBufferPointer { $0.baseAddress! }
        let g = grad == nil ? nil : grad!.withUnsafeMutableBufferPointer { $0.baseAddress! }
        return (v, g)
    }

    /// `node.withGrad`: the gradient buffer (allocated and zeroed on first use).
    @inline(__always)
    func withGrad(_ body: (UnsafeMutablePointer<Float>) -> Void) { node.withGrad(body) }

    /// `node.withGradForWrite`: `body(gradient, fresh)`, fresh meaning the caller must overwrite every element.
    @inline(__always)
    func withGradForWrite(_ body: (UnsafeMutablePointer<Float>, Bool) -> Void) { node.withGradForWrite(body) }

    @inline(__always)
    package func withValue<R>(_ body: (UnsafePointer<Float>) -> R) -> R {
        if valueReleased, let packed = packedWeight {  // the weight lives in its packed copy: unpack one for this call
            let count = node.shape.reduce(1, *)
            return withUnsafeTemporaryAllocation(of: Float.self, capacity: count) { buffer in
                packed.unpackTransposed(into: buffer.baseAddress!)
                return body(buffer.baseAddress!)
            }
        }
        return value.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// The tape of a forward pass: each differentiable op records a closure that propagates the gradient of its
/// output to its inputs; `backward(from:)` runs them in reverse order.
///
/// Every op takes a tape, and runs its kernels with the tape's `engine`. An op on a tape that does not record
/// (`Tape(engine, recording: false)`, `engine.noGrad`) records nothing: that is the no-grad mode of the target
/// encoder, of evaluation and of embedding.
package final class Tape {
    struct Entry {
        /// The output's gradient node, held until the entry runs: the gradient its consumers' entries leave
        /// there must outlive them (the output's value need not).
        let output: GradNode?
        let run: () -> Void
        /// The watched variables (`watch`) among the entry's inputs, by index.
        var touches: [Int] = []
    }
    var entries: [Entry] = []
    package var isRecording: Bool
    /// The settings the ops on this tape run with.
    package let engine: Engine
    /// `watch`: index of each watched gradient node, the entries still to run that take it, the handler.
    var watched: [ObjectIdentifier: Int] = [:]
    var pendingEntries: [Int] = []
    var ready: ((Int) -> Void)?

    package init(_ engine: Engine, recording: Bool = true) {
        self.engine = engine
        isRecording = recording
    }

    /// Calls `ready(i)` during the backward pass as soon as the gradient of `variables[i]` is final: every
    /// recorded entry that takes it as an input has run (at the end for a variable no entry takes). Set
    /// before the forward pass records; each index is reported once. For sending parameters' gradients while
    /// the backward pass goes on (data parallelism), as DDP's gradient hooks do.
    package func watch(_ variables: [Variable], ready: @escaping (Int) -> Void) {
        watched = Dictionary(variables.enumerated().map { (ObjectIdentifier($1.node), $0) }, uniquingKeysWith: { a, _ in a })
        pendingEntries = Array(repeating: 0, count: variables.count)
        self.ready = ready
    }

    /// Records `backward`, which adds into the gradients of `inputs`; after it runs, `output`'s gradient is
    /// released unless it retains it.
    @inline(__always)
    func record(releasing output: Variable? = nil, inputs: [Variable?] = [], _ backward: @escaping () -> Void) {
        guard isRecording else { return }
        var entry = Entry(output: output?.node, run: backward)
        if !watched.isEmpty {
            for v in inputs {
                if let v, let i = watched[ObjectIdentifier(v.node)], !entry.touches.contains(i) {
                    entry.touches.append(i)
                    pendingEntries[i] += 1
                }
            }
        }
        entries.append(entry)
    }

    /// Each entry is dropped once it has run, and with it what its closure kept for the backward pass (its
    /// inputs' values, saved statistics, attention probabilities): the activations are freed block by block
    /// as the backward pass goes, instead of all at its end, while the parameters' gradients are written.
    /// (ViT-S/16's step, `bench ijepa`: resident memory rose through the backward pass to its peak there.)
    func runEntries() {
        while let e = entries.popLast() {
            e.run()
            if let o = e.output, !o.retainsGrad { o.grad = nil }
            for i in e.touches {
                pendingEntries[i] -= 1
                if pendingEntries[i] == 0 {
                    pendingEntries[i] = -1
                    ready?(i)
                }
            }
        }
        for i in pendingEntries.indices where pendingEntries[i] == 0 {  // taken by no entry
            pendingEntries[i] = -1
            ready?(i)
        }
    }

    /// Seeds d loss / d loss = 1 and runs the recorded backward passes, newest first. `loss` must hold one value.
    package func backward(from loss: Variable) throws {
        guard loss.value.count == 1 else {
            throw TensorError.incompatibleShapes(operation: "backward needs a scalar loss", loss.shape, [1])
        }
        loss.withGrad { $0[0] += 1 }
        runEntries()
    }

    /// Runs the backward passes from a non-scalar output, seeded with `seed` = d loss / d output.
    package func backward(from output: Variable, seed: Tensor) throws {
        guard seed.shape == output.shape else {
            throw TensorError.incompatibleShapes(operation: "backward seed must have the output's shape", seed.shape, output.shape)
        }
        output.withGrad { g in seed.withUnsafeBufferPointer { accumulate(g, $0.baseAddress!, count: seed.count, context: engine.kernels) } }
        runEntries()
    }

    /// Number of recorded backward entries (0 in no-grad mode).
    package var count: Int { entries.count }

    /// Drops the recorded entries (e.g. after a forward pass that will not be differentiated).
    package func reset() { entries.removeAll(keepingCapacity: true) }
}

/// Activation checkpointing: `body(x, tape)` (a transformer block) runs without recording, so only its
/// input and output stay alive until the backward pass; there it runs again, recording on a tape of its own,
/// and that tape's backward passes the output's gradient to `x` and to the parameters `body` uses.
///
/// The ops are deterministic, so the second run has the bits of the first and the gradients are identical
/// to those of the plain call; the price is a second forward pass of `body`. With a tape that does not record
/// this is `body(x, tape)`. `body` must not draw random numbers or depend on state that changes between the passes.
///
/// `parameters`: the variables `body` uses besides `x` whose gradients it writes (for `Tape.watch`); evaluated
/// only while the tape watches some.
package func recomputed(
    _ x: Variable, parameters: @autoclosure () -> [Variable] = [], tape: Tape,
    _ body: @escaping (Variable, Tape) throws -> Variable
) throws -> Variable {
    guard tape.isRecording else { return try body(x, tape) }
    let engine = tape.engine
    let out = output(try body(x, engine.noGrad).value, tape)
    let phase = engine.profiler?.phase
    tape.record(releasing: out, inputs: tape.watched.isEmpty ? [x] : [x] + parameters()) { [weak node = out.node] in
        guard let dy = node?.grad else { return }
        let local = Tape(engine)
        let replay: Variable
        do {
            replay = try OpProfiler.recomputing(engine.profiler, phase: phase) { try body(x, local) }
        } catch {
            fatalError("recomputed: the second forward pass of a checkpointed block failed after the first succeeded: \(error)")
        }
        replay.grad = dy  // shared, read-only: the block's ops only read their output's gradient
        local.runEntries()
    }
    return out
}

extension Tensor {
    /// Zeros with the same shape.
    package static func zeros(like t: Tensor) -> Tensor { zeros(shape: t.shape) }

    /// Zeros of a shape known to be valid (stops with a message otherwise), from `pool`.
    static func zeros(shape: [Int], pool: StoragePool? = nil) -> Tensor {
        do { return try Tensor(zeros: shape, pool: pool) } catch { fatalError("\(error)") }
    }
}

/// Whether an op must record: a tape that is recording, and at least one input that wants a gradient.
@inline(__always)
func recording(_ tape: Tape, _ inputs: Variable?...) -> Tape? {
    guard tape.isRecording else { return nil }
    return inputs.contains { $0?.requiresGrad == true } ? tape : nil
}

extension Engine {
    /// A tape of this engine that records nothing: for forward passes that are not differentiated.
    package var noGrad: Tape { Tape(self, recording: false) }
}
