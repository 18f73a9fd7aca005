import CPUKernels

/// x + table, with the table repeated over the leading axes: x (..., T...) where table's shape is the
/// trailing part of x's (e.g. x (B, N, D) + positional table (N, D); x (R, K, D) + mask token (D)).
/// The table's gradient is the sum over the repeats (fixed order).
package func addBroadcast(_ x: Variable, _ table: Variable, tape: Tape) throws -> Variable {
    let kernels = tape.engine.kernels
    let t = table.shape.drop(while: { $0 == 1 })  // (1, 1, D) broadcasts like (D)
    try check(t.count <= x.shape.count && Array(x.shape.suffix(t.count)) == Array(t) && table.value.count > 0,
              "addBroadcast: table shape must be the trailing part of x's", x.shape, table.shape)
    let cols = table.value.count
    let rows = x.value.count / cols
    var y = x.value
    let yp = mutablePointer(&y)
    table.withValue { addBias(yp, bias: $0, rows: rows, cols: cols, context: kernels) }
    let (xn, count) = (x.node, x.value.count)  // x's value is not needed backward
    return opOutput(y, inputs: x, table, tape: tape, op: "addBroadcast", cost: .elementwise(count, 1, 2)) { dy in
        if xn.requiresGrad { xn.withGrad { accumulate($0, dy, count: count, context: kernels) } }
        if table.requiresGrad { table.withGrad { biasBackward(dbias: $0, dy: dy, rows: rows, cols: cols, context: kernels) } }
    }
}

/// `x.repeat(times, 1, 1)`: the whole batch tiled `times` times along the first axis.
package func repeatBatch(_ x: Variable, times: Int, tape: Tape) throws -> Variable {
    let kernels = tape.engine.kernels
    try check(times >= 1 && x.shape.count >= 1, "repeatBatch: times >= 1", x.shape, [times])
    let n = x.value.count
    var y = try Tensor(uninitialized: [x.shape[0] * times] + x.shape.dropFirst(), pool: tape.engine.storage)
    let yp = mutablePointer(&y)
    x.withValue { xp in for r in 0..<times { (yp + r * n).update(from: xp, count: n) } }
    return unaryOutput(y, of: x, tape: tape, op: "repeatBatch", cost: .elementwise(y.count, 0, 1)) { dx, dy in
        for r in 0..<times { accumulate(dx, dy + r * n, count: n, context: kernels) }
    }
}

/// Tokens `from..<n` of x (B, n, D): the predictor's `x[:, Kc:]`.
package func sliceTokens(_ x: Variable, from start: Int, tape: Tape) throws -> Variable {
    try check(x.shape.count == 3 && start >= 0 && start <= x.shape[1], "sliceTokens: x (B, n, D), 0 <= start <= n",
              x.shape, [start])
    let (batch, n, d) = (x.shape[0], x.shape[1], x.shape[2])
    let k = n - start
    var y = try Tensor(uninitialized: [batch, k, d], pool: tape.engine.storage)
    let yp = mutablePointer(&y)
    x.withValue { xp in for b in 0..<batch { (yp + b * k * d).update(from: xp + (b * n + start) * d, count: k * d) } }
    return unaryOutput(y, of: x, tape: tape, op: "sliceTokens", cost: .elementwise(y.count, 0, 1)) { dx, dy in
        for b in 0..<batch { accumulateSerial(dx + (b * n + start) * d, dy + b * k * d, count: k * d) }
    }
}
