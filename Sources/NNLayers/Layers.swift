import CPUKernels
import TensorCore

/// Something with named parameters, named as in the official state_dict (`qkv.weight`, `norm1.bias`, ...).
package protocol ParameterContainer: AnyObject {
    /// (name relative to this container, parameter), in a fixed order.
    var namedParameters: [(String, Variable)] { get }
}

extension ParameterContainer {
    /// Parameters of a child, with `prefix.` in front of their names.
    package func prefixed(_ prefix: String, _ child: ParameterContainer) -> [(String, Variable)] {
        child.namedParameters.map { ("\(prefix).\($0.0)", $0.1) }
    }
    package var parameterCount: Int { namedParameters.reduce(0) { $0 + $1.1.value.count } }
    package func zeroGrad() { for (_, p) in namedParameters { p.zeroGrad() } }
}

/// The official init of every Linear (and the patch-embedding conv): trunc_normal(std 0.02) with absolute
/// bounds +-2 (so in effect N(0, 0.02^2)), biases 0 (src/helper.py init_model, src/utils/tensors.py trunc_normal_).
package func officialWeight(_ shape: [Int], rng: inout RandomGenerator) throws -> Variable {
    Variable(try rng.truncatedNormal(shape, std: 0.02, a: -2, b: 2), requiresGrad: true)
}

/// y = x W^T + b, W (out, in).
package final class Linear: ParameterContainer {
    package let weight: Variable
    package let bias: Variable?

    package init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout RandomGenerator) throws {
        weight = try officialWeight([outFeatures, inFeatures], rng: &rng)
        self.bias = bias ? Variable(try Tensor(zeros: [outFeatures]), requiresGrad: true) : nil
    }

    /// x W^T + b, plus `residual` when given (added in the same pass; see `linear`).
    package func callAsFunction(_ x: Variable, residual: Variable? = nil, tape: Tape) throws -> Variable {
        try linear(x, weight: weight, bias: bias, residual: residual, tape: tape)
    }

    package var namedParameters: [(String, Variable)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }
}

/// LayerNorm over the last axis with affine gamma (1) and beta (0).
package final class LayerNorm: ParameterContainer {
    package let weight: Variable
    package let bias: Variable
    package let eps: Float

    package init(_ dim: Int, eps: Float = 1e-6) throws {
        weight = Variable(try Tensor(shape: [dim], repeating: 1), requiresGrad: true)
        bias = Variable(try Tensor(zeros: [dim]), requiresGrad: true)
        self.eps = eps
    }

    package func callAsFunction(_ x: Variable, tape: Tape) throws -> Variable {
        try layerNorm(x, gamma: weight, beta: bias, eps: eps, tape: tape)
    }

    package var namedParameters: [(String, Variable)] { [("weight", weight), ("bias", bias)] }
}

/// Multi-head self-attention: qkv Linear (D -> 3D, bias), fused softmax(q k^T / sqrt(D/h)) v, proj Linear.
package final class Attention: ParameterContainer {
    package let qkv: Linear
    package let proj: Linear
    package let heads: Int

    package init(dim: Int, heads: Int, rng: inout RandomGenerator) throws {
        guard heads > 0, dim % heads == 0 else {
            throw TensorError.incompatibleShapes(operation: "Attention: dim must be divisible by heads", [dim], [heads])
        }
        qkv = try Linear(dim, 3 * dim, rng: &rng)
        proj = try Linear(dim, dim, rng: &rng)
        self.heads = heads
    }

    /// proj(attention(qkv(x))), plus `residual` when given (in proj's store).
    package func callAsFunction(_ x: Variable, residual: Variable? = nil, tape: Tape) throws -> Variable {
        try proj(try attention(try qkv(x, tape: tape), heads: heads, tape: tape), residual: residual, tape: tape)
    }

    package var namedParameters: [(String, Variable)] { prefixed("qkv", qkv) + prefixed("proj", proj) }
}

/// fc1 (D -> hidden), exact GELU, fc2 (hidden -> D).
package final class MLP: ParameterContainer {
    package let fc1: Linear
    package let fc2: Linear

    package init(dim: Int, hidden: Int, rng: inout RandomGenerator) throws {
        fc1 = try Linear(dim, hidden, rng: &rng)
        fc2 = try Linear(hidden, dim, rng: &rng)
    }

    /// fc2(GELU(fc1(x))), plus `residual` when given (in fc2's store). The same bits either way: without a
    /// recording tape (the target encoder, inference) the fused `mlp` op, GELU in fc1's GEMM; when training,
    /// fc1, then `geluLinear` (fc2 on GELU of fc1's output, which keeps only fc1's output for the backward
    /// pass): the fused op is faster forward and slower for training (`ijepa bench mlp`; docs/performance.md,
    /// Decisions).
    package func callAsFunction(_ x: Variable, residual: Variable? = nil, tape: Tape) throws -> Variable {
        if tape.isRecording {
            return try geluLinear(try fc1(x, tape: tape), weight: fc2.weight, bias: fc2.bias, residual: residual, tape: tape)
        }
        return try mlp(x, fc1: fc1.weight, bias1: fc1.bias, fc2: fc2.weight, bias2: fc2.bias, residual: residual, tape: tape)
    }

    package var namedParameters: [(String, Variable)] { prefixed("fc1", fc1) + prefixed("fc2", fc2) }
}

/// Pre-norm transformer block: y = x + attn(norm1 x); out = y + mlp(norm2 y). No LayerScale, no DropPath.
package final class Block: ParameterContainer {
    package let norm1: LayerNorm
    package let attn: Attention
    package let norm2: LayerNorm
    package let mlp: MLP

    package init(dim: Int, heads: Int, mlpRatio: Int = 4, eps: Float = 1e-6, rng: inout RandomGenerator) throws {
        norm1 = try LayerNorm(dim, eps: eps)
        attn = try Attention(dim: dim, heads: heads, rng: &rng)
        norm2 = try LayerNorm(dim, eps: eps)
        mlp = try MLP(dim: dim, hidden: dim * mlpRatio, rng: &rng)
    }

    /// The residual adds ride in proj's and fc2's GEMM stores (same bits as separate adds). norm1 -> qkv is one
    /// op (`layerNormLinear`: the LayerNorm's output is computed while qkv's GEMM packs it, never stored); when
    /// training, so is norm2 -> fc1, and fc2 takes GELU the same way (`geluLinear`), so a block keeps neither
    /// LayerNorm's output nor GELU's for the backward pass. On a tape that does not record the MLP is the fused
    /// `mlp` op. The engine's `fusedNorms` / `fusedGELU` switch the fused inputs off (same bits).
    package func callAsFunction(_ x: Variable, tape: Tape) throws -> Variable {
        let qkv = tape.engine.fusedNorms
            ? try layerNormLinear(x, gamma: norm1.weight, beta: norm1.bias, eps: norm1.eps, weight: attn.qkv.weight,
                                  bias: attn.qkv.bias, tape: tape)
            : try attn.qkv(try norm1(x, tape: tape), tape: tape)
        let y = try attn.proj(try attention(qkv, heads: attn.heads, tape: tape), residual: x, tape: tape)
        guard tape.isRecording else { return try mlp(try norm2(y, tape: tape), residual: y, tape: tape) }
        let h = tape.engine.fusedNorms
            ? try layerNormLinear(y, gamma: norm2.weight, beta: norm2.bias, eps: norm2.eps, weight: mlp.fc1.weight,
                                  bias: mlp.fc1.bias, tape: tape)
            : try mlp.fc1(try norm2(y, tape: tape), tape: tape)
        return tape.engine.fusedGELU
            ? try geluLinear(h, weight: mlp.fc2.weight, bias: mlp.fc2.bias, residual: y, tape: tape)
            : try mlp.fc2(gelu(h, tape: tape), residual: y, tape: tape)
    }

    /// With `recompute` the block keeps only its input for the backward pass and runs again there
    /// (`recomputed`): the same gradients for a fraction of the activation memory, at the cost of a second
    /// forward pass.
    package func callAsFunction(_ x: Variable, recompute: Bool, tape: Tape) throws -> Variable {
        guard recompute else { return try self(x, tape: tape) }
        return try recomputed(x, parameters: namedParameters.map(\.1), tape: tape) { try self($0, tape: $1) }
    }

    package var namedParameters: [(String, Variable)] {
        prefixed("norm1", norm1) + prefixed("attn", attn) + prefixed("norm2", norm2) + prefixed("mlp", mlp)
    }
}
