import CPUKernels

/// Patch indices to keep, one list per image: (batch, count) row-major, ascending within a row (the official
/// `masks` tensors of shape [B, K]).
package struct TokenIndices: Sendable, Equatable {
    package let batch: Int
    package let count: Int
    package let indices: [Int32]

    package init(batch: Int, count: Int, indices: [Int32]) throws {
        guard batch >= 0, count >= 0, indices.count == batch * count else {
            throw TensorError.countMismatch(shape: [batch, count], expected: batch * count, got: indices.count)
        }
        (self.batch, self.count, self.indices) = (batch, count, indices)
    }
}

/// The official `apply_masks`: for each mask m, out[m B + b, t, :] = x[b, mask_m[b, t], :], concatenated
/// mask-major. x (B, N, D), masks of (B, K) each (all K equal) -> (M B, K, D).
package func gatherTokens(_ x: Variable, _ masks: [TokenIndices], tape: Tape) throws -> Variable {
    try check(x.shape.count == 3, "gatherTokens: x (B, N, D)", x.shape, [])
    let (batch, tokens, d) = (x.shape[0], x.shape[1], x.shape[2])
    guard let k = masks.first?.count else { throw TensorError.invalidShape([0]) }
    for m in masks {
        try check(m.batch == batch && m.count == k, "gatherTokens: every mask (B, K) with the same K", [m.batch, m.count], [batch, k])
        if let bad = m.indices.first(where: { $0 < 0 || Int($0) >= tokens }) {
            throw TensorError.incompatibleShapes(operation: "gatherTokens: index \(bad) out of range 0..<\(tokens)", x.shape, [batch, k])
        }
    }
    var y = try Tensor(uninitialized: [masks.count * batch, k, d], pool: tape.engine.storage)
    let yp = mutablePointer(&y)
    x.withValue { xp in
        for (mi, m) in masks.enumerated() {
            for b in 0..<batch {
                for t in 0..<k {
                    let src = xp + (b * tokens + Int(m.indices[b * k + t])) * d
                    (yp + ((mi * batch + b) * k + t) * d).update(from: src, count: d)
                }
            }
        }
    }
    return unaryOutput(y, of: x, tape: tape, op: "gatherTokens", cost: .elementwise(y.count, 0, 1)) { dx, dy in
        // Scatter-add in a fixed order (mask, then token) per image.
        for (mi, m) in masks.enumerated() {
            for b in 0..<batch {
                for t in 0..<k {
                    let dst = dx + (b * tokens + Int(m.indices[b * k + t])) * d
                    accumulateSerial(dst, dy + ((mi * batch + b) * k + t) * d, count: d)
                }
            }
        }
    }
}

/// Concatenation along the token axis: a (B, n1, D), b (B, n2, D) -> (B, n1 + n2, D).
package func concatTokens(_ a: Variable, _ b: Variable, tape: Tape) throws -> Variable {
    try check(a.shape.count == 3 && b.shape.count == 3 && a.shape[0] == b.shape[0] && a.shape[2] == b.shape[2],
              "concatTokens: (B, n1, D) and (B, n2, D)", a.shape, b.shape)
    let (batch, n1, n2, d) = (a.shape[0], a.shape[1], b.shape[1], a.shape[2])
    var y = try Tensor(uninitialized: [batch, n1 + n2, d], pool: tape.engine.storage)
    let yp = mutablePointer(&y)
    a.withValue { ap in
        b.withValue { bp in
            for i in 0..<batch {
                (yp + i * (n1 + n2) * d).update(from: ap + i * n1 * d, count: n1 * d)
                (yp + (i * (n1 + n2) + n1) * d).update(from: bp + i * n2 * d, count: n2 * d)
            }
        }
    }
    let (an, bn) = (a.node, b.node)
    return opOutput(y, inputs: a, b, tape: tape, op: "concatTokens") { dy in
        if an.requiresGrad {
            an.withGrad { da in
                for i in 0..<batch { accumulateSerial(da + i * n1 * d, dy + i * (n1 + n2) * d, count: n1 * d) }
            }
        }
        if bn.requiresGrad {
            bn.withGrad { db in
                for i in 0..<batch { accumulateSerial(db + i * n2 * d, dy + (i * (n1 + n2) + n1) * d, count: n2 * d) }
            }
        }
    }
}

/// Mean over the token axis (average pooling): x (B, n, D) -> (B, D).
package func meanTokens(_ x: Variable, tape: Tape) throws -> Variable {
    try check(x.shape.count == 3 && x.shape[1] > 0, "meanTokens: x (B, n, D) with n > 0", x.shape, [])
    let (batch, n, d) = (x.shape[0], x.shape[1], x.shape[2])
    var y = try Tensor(zeros: [batch, d])
    let yp = mutablePointer(&y)
    let inv = 1 / Float(n)
    x.withValue { xp in
        for b in 0..<batch {
            let o = yp + b * d
            for t in 0..<n { accumulateSerial(o, xp + (b * n + t) * d, count: d) }
            for j in 0..<d { o[j] *= inv }
        }
    }
    return unaryOutput(y, of: x, tape: tape, op: "meanTokens", cost: .elementwise(x.value.count, 1, 1)) { dx, dy in
        for b in 0..<batch {
            for t in 0..<n {
                let row = dx + (b * n + t) * d
                for j in 0..<d { row[j] += dy[b * d + j] * inv }
            }
        }
    }
}
