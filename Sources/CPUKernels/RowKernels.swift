// Row kernels of a transformer, each with its backward pass. Layouts: row-major (rows, cols) unless stated.
// Backward passes ADD into their gradient outputs (autograd accumulates); zero them first for a plain gradient.
// Reductions across rows (dgamma, dbeta, dbias) use a row chunking that depends on the shape only, and sum the
// chunks in a fixed order, so results do not depend on the thread count.

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> Float8 {
    UnsafeRawPointer(p).loadUnaligned(as: Float8.self)
}
@inline(__always) func load8(_ p: UnsafeMutablePointer<Float>) -> Float8 {
    UnsafeRawPointer(p).loadUnaligned(as: Float8.self)
}
@inline(__always) func store8(_ p: UnsafeMutablePointer<Float>, _ v: Float8) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self)
}

/// Runs `body(r0, r1)` over contiguous row ranges, in parallel when the work is worth it (>= ~32K elements
/// per chunk: a parallel region costs 15-20 us back to back, docs/performance.md).
@inline(__always)
func forEachRowChunk(rows: Int, cols: Int, context: KernelContext, _ body: (Int, Int) -> Void) {
    let (chunks, size) = rowChunking(rows: rows, cols: cols)
    if chunks <= 1 {
        if rows > 0 { body(0, rows) }
        return
    }
    context.forEach(tasks: chunks) { c, _ in
        body(c * size, min(rows, (c + 1) * size))
    }
}

@inline(__always)
func rowChunking(rows: Int, cols: Int) -> (chunks: Int, size: Int) {
    Parallel.chunking(count: rows, minChunk: max(1, 32_768 / max(1, cols)), maxChunks: 16)
}

/// Sum of the 8 lanes in a fixed order.
@inline(__always) func hsum(_ v: Float8) -> Float { v.sum() }

// MARK: - LayerNorm

/// Mean and 1 / sqrt(variance + eps) of one row (biased variance, two passes): `layerNormForward`'s statistics.
@inline(__always)
func layerNormRowStatistics(_ xr: UnsafePointer<Float>, dim: Int, eps: Float) -> (mean: Float, rstd: Float) {
    let d8 = dim & ~7
    let inv = 1 / Float(dim)
    var s = Float8()
    var j = 0
    while j < d8 { s += load8(xr + j); j += 8 }
    var sum = hsum(s)
    while j < dim { sum += xr[j]; j += 1 }
    let mu = sum * inv
    let m8 = splat(mu)
    var q = Float8()
    j = 0
    while j < d8 { let d = load8(xr + j) - m8; q = fmadd(q, d, d); j += 8 }
    var sq = hsum(q)
    while j < dim { let d = xr[j] - mu; sq = fmadd(sq, d, d); j += 1 }
    return (mu, 1 / (sq * inv + eps).squareRoot())
}

/// y = (x - mean) rstd, then beta + that * gamma when both are given: one row of `layerNormForward`'s output (and
/// of the GEMM's LayerNorm prologue, so both have the same bits). gamma and beta start at the row's first column.
@inline(__always)
func layerNormRowOutput(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int, mean mu: Float, rstd rs: Float,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?
) {
    let m8 = splat(mu), r8 = splat(rs)
    var j = 0
    if let gamma, let beta {
        while j + 8 <= count { store8(y + j, fmadd(load8(beta + j), (load8(x + j) - m8) * r8, load8(gamma + j))); j += 8 }
        while j < count { y[j] = fmadd(beta[j], (x[j] - mu) * rs, gamma[j]); j += 1 }
    } else {
        while j + 8 <= count { store8(y + j, (load8(x + j) - m8) * r8); j += 8 }
        while j < count { y[j] = (x[j] - mu) * rs; j += 1 }
    }
}

/// The statistics of `layerNormForward` without its output (the same bits): for a LayerNorm whose output only a
/// GEMM reads, through `GEMMPrologue.layerNorm`.
public func layerNormStatistics(
    mean: UnsafeMutablePointer<Float>,         // (rows)
    rstd: UnsafeMutablePointer<Float>,         // (rows)
    _ x: UnsafePointer<Float>,                 // (rows, dim)
    rows: Int, dim: Int, eps: Float, context: KernelContext
) {
    precondition(rows >= 0 && dim > 0, "layerNormStatistics: rows \(rows) must be >= 0 and dim \(dim) > 0")
    forEachRowChunk(rows: rows, cols: dim, context: context) { r0, r1 in
        for r in r0..<r1 { (mean[r], rstd[r]) = layerNormRowStatistics(x + r * dim, dim: dim, eps: eps) }
    }
}

/// LayerNorm over the last axis: y = (x - mean) * rstd * gamma + beta, biased variance, rstd = 1/sqrt(var + eps).
/// Saves mean and rstd per row for the backward pass when given. gamma/beta nil: no affine transform (as the
/// official target normalisation `F.layer_norm(h, (D,))`).
public func layerNormForward(
    _ y: UnsafeMutablePointer<Float>,          // (rows, dim)
    mean: UnsafeMutablePointer<Float>?,        // (rows) or nil
    rstd: UnsafeMutablePointer<Float>?,        // (rows) or nil
    _ x: UnsafePointer<Float>,                 // (rows, dim)
    gamma: UnsafePointer<Float>?,              // (dim) or nil
    beta: UnsafePointer<Float>?,               // (dim) or nil
    rows: Int, dim: Int, eps: Float, context: KernelContext
) {
    precondition(rows >= 0 && dim > 0, "layerNormForward: rows \(rows) must be >= 0 and dim \(dim) > 0")
    forEachRowChunk(rows: rows, cols: dim, context: context) { r0, r1 in
        for r in r0..<r1 {
            let xr = x + r * dim
            let yr = y + r * dim
            let (mu, rs) = layerNormRowStatistics(xr, dim: dim, eps: eps)
            mean?[r] = mu
            rstd?[r] = rs
            layerNormRowOutput(yr, xr, count: dim, mean: mu, rstd: rs, gamma: gamma, beta: beta)
        }
    }
}

/// Backward of `layerNormForward`. Adds into dx (rows, dim), dgamma (dim) and dbeta (dim):
/// dx += rstd (g - mean(g) - xhat mean(g xhat)) with g = dy gamma; dgamma += sum_rows dy xhat; dbeta += sum_rows dy.
public func layerNormBackward(
    dx: UnsafeMutablePointer<Float>,           // (rows, dim), accumulated
    dgamma: UnsafeMutablePointer<Float>?,      // (dim), accumulated, or nil
    dbeta: UnsafeMutablePointer<Float>?,       // (dim), accumulated, or nil
    dy: UnsafePointer<Float>,                  // (rows, dim)
    x: UnsafePointer<Float>,                   // (rows, dim)
    mean: UnsafePointer<Float>,                // (rows)
    rstd: UnsafePointer<Float>,                // (rows)
    gamma: UnsafePointer<Float>?,              // (dim) or nil (non-affine)
    rows: Int, dim: Int, context: KernelContext
) {
    precondition(rows >= 0 && dim > 0, "layerNormBackward: rows \(rows) must be >= 0 and dim \(dim) > 0")
    let (chunks, size) = rowChunking(rows: rows, cols: dim)
    let wantParams = dgamma != nil || dbeta != nil
    context.scratch.withFloats(wantParams ? 2 * chunks * dim : 0) { partial in
        // partial: (chunks, 2, dim): per chunk, dgamma then dbeta
        let body: (Int, Int, Int) -> Void = { c, r0, r1 in
            let d8 = dim & ~7
            let inv = 1 / Float(dim)
            let pg = partial + c * 2 * dim
            let pb = pg + dim
            if wantParams { pg.update(repeating: 0, count: 2 * dim) }
            for r in r0..<r1 {
                let xr = x + r * dim, dyr = dy + r * dim, dxr = dx + r * dim
                let mu = splat(mean[r]), rs = splat(rstd[r])
                var sg = Float8(), sgx = Float8()
                var j = 0
                while j < d8 {
                    let xh = (load8(xr + j) - mu) * rs
                    let d = load8(dyr + j)
                    let g = gamma.map { d * load8($0 + j) } ?? d
                    sg += g
                    sgx = fmadd(sgx, g, xh)
                    if wantParams {
                        store8(pg + j, fmadd(load8(pg + j), d, xh))
                        store8(pb + j, load8(pb + j) + d)
                    }
                    j += 8
                }
                var tg = hsum(sg), tgx = hsum(sgx)
                while j < dim {
                    let xh = (xr[j] - mu[0]) * rs[0]
                    let d = dyr[j]
                    let g = gamma.map { d * $0[j] } ?? d
                    tg += g
                    tgx = fmadd(tgx, g, xh)
                    if wantParams { pg[j] = fmadd(pg[j], d, xh); pb[j] += d }
                    j += 1
                }
                let mg = splat(tg * inv), mgx = splat(tgx * inv)
                j = 0
                while j < d8 {
                    let xh = (load8(xr + j) - mu) * rs
                    let d = load8(dyr + j)
                    let g = gamma.map { d * load8($0 + j) } ?? d
                    store8(dxr + j, fmadd(load8(dxr + j), rs, g - mg - xh * mgx))
                    j += 8
                }
                while j < dim {
                    let xh = (xr[j] - mu[0]) * rs[0]
                    let d = dyr[j]
                    let g = gamma.map { d * $0[j] } ?? d
                    dxr[j] = fmadd(dxr[j], rs[0], g - mg[0] - xh * mgx[0])
                    j += 1
                }
            }
        }
        context.forEach(tasks: chunks, threads: chunks > 1 ? nil : 1) { c, _ in
            body(c, c * size, min(rows, (c + 1) * size))
        }
        if wantParams { reduceColumnPartials(partial, chunks: chunks, dim: dim, dgamma: dgamma, dbeta: dbeta) }
    }
}

/// Adds the per-chunk partial sums (chunks, 2, dim) into dgamma and dbeta, chunk 0 first.
@inline(__always)
func reduceColumnPartials(
    _ partial: UnsafeMutablePointer<Float>, chunks: Int, dim: Int,
    dgamma: UnsafeMutablePointer<Float>?, dbeta: UnsafeMutablePointer<Float>?
) {
    for (slot, out) in [dgamma, dbeta].enumerated() {
        guard let out else { continue }
        for j in 0..<dim {
            var s: Float = 0
            for c in 0..<chunks { s += partial[(c * 2 + slot) * dim + j] }
            out[j] += s
        }
    }
}

// MARK: - GELU

/// y = GELU(x), exact erf form, elementwise over `count` values.
public func geluForward(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int, context: KernelContext
) {
    forEachRowChunk(rows: (count + 7) / 8, cols: 8 * 8, context: context) { b0, b1 in
        geluSpan(y + b0 * 8, x + b0 * 8, count: min(count, b1 * 8) - b0 * 8)
    }
}

/// `geluForward` on one thread (y may be x): the row kernel's chunks and the GEMM's GELU epilogue.
@inline(__always)
func geluSpan(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    var i = 0
    // Four independent vectors per iteration: one GELU is a ~130-cycle dependency chain (exp, a division,
    // two polynomials) and one vector per iteration ran at ~48 cycles per vector (docs/performance.md,
    // Decisions).
    while i + 32 <= count {
        let x0 = load8(x + i), x1 = load8(x + i + 8), x2 = load8(x + i + 16), x3 = load8(x + i + 24)
        let (y0, y1, y2, y3) = vgelu4(x0, x1, x2, x3)
        store8(y + i, y0); store8(y + i + 8, y1); store8(y + i + 16, y2); store8(y + i + 24, y3)
        i += 32
    }
    while i + 8 <= count { store8(y + i, vgelu(load8(x + i))); i += 8 }
    while i < count { y[i] = vgelu(x[i]); i += 1 }
}

/// dx += dy * GELU'(x), or dx = dy * GELU'(x) with `accumulate: false` (dx is then only written).
public func geluBackward(
    dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, count: Int,
    accumulate: Bool = true, context: KernelContext
) {
    forEachRowChunk(rows: (count + 7) / 8, cols: 8 * 8, context: context) { b0, b1 in
        let i = b0 * 8
        geluBackwardSpan(dx: dx + i, dy: dy + i, x: x + i, count: min(count, b1 * 8) - i, accumulate: accumulate)
    }
}

/// `geluBackward` on one thread (dx may be dy): the row kernel's chunks and the GEMM's GELU-derivative epilogue.
@inline(__always)
func geluBackwardSpan(
    dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, count: Int, accumulate: Bool
) {
    var i = 0
    @inline(__always) func put(_ at: Int, _ g: Float8) {
        store8(dx + at, accumulate ? load8(dx + at) + g : g)
    }
    while i + 32 <= count {  // four independent chains per iteration, as in geluSpan
        let (d0, d1, d2, d3) = vgeluDerivative4(load8(x + i), load8(x + i + 8), load8(x + i + 16), load8(x + i + 24))
        put(i, load8(dy + i) * d0); put(i + 8, load8(dy + i + 8) * d1)
        put(i + 16, load8(dy + i + 16) * d2); put(i + 24, load8(dy + i + 24) * d3)
        i += 32
    }
    while i + 8 <= count { put(i, load8(dy + i) * vgeluDerivative(load8(x + i))); i += 8 }
    while i < count {
        let g = dy[i] * vgeluDerivative(x[i])
        dx[i] = accumulate ? dx[i] + g : g
        i += 1
    }
}

// MARK: - Softmax

/// Row softmax: y = exp(x - max) / sum(exp(x - max)).
public func softmaxForward(
    _ y: UnsafeMutablePointer<Float>,          // (rows, cols)
    _ x: UnsafePointer<Float>,                 // (rows, cols)
    rows: Int, cols: Int, context: KernelContext
) {
    precondition(rows >= 0 && cols > 0, "softmaxForward: rows \(rows) must be >= 0 and cols \(cols) > 0")
    forEachRowChunk(rows: rows, cols: cols * 4, context: context) { r0, r1 in
        softmaxRows(y + r0 * cols, x + r0 * cols, rows: r1 - r0, cols: cols, scale: 1)
    }
}

/// Rows of softmax(scale * x), (rows, cols) contiguous, in place allowed (y == x).
///
/// The last cols % 8 values go through one vector padded with -inf (their exp is replaced by 0), not lane by
/// lane: in the attention of the I-JEPA predictor (rows of ~21) the scalar tail's exps and the stdlib's
/// non-inlined `SIMD8.max()` were a quarter of the attention forward (perf).
/// Rows go eight at a time through three passes (max; exp and sum; normalise): a row's horizontal max and
/// sum are chains of dependent shuffles and adds, which one row after the other were a third of the
/// predictor's attention heads (perf); within a pass the eight rows' chains are independent and overlap.
/// Each row gets the arithmetic of a row alone, so results do not depend on how rows are grouped.
@inline(__always)
public func softmaxRows(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, cols: Int, scale: Float  // (rows, cols)
) {
    let c8 = cols & ~7, tail = cols - c8
    let live = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) .< SIMD8<Int32>(repeating: Int32(tail))
    let s8 = splat(scale)
    var r0 = 0
    while r0 < rows {
        let nb = min(8, rows - r0)
        var mx = Float8(), inv = Float8()  // lane t: row r0 + t
        for t in 0..<nb {
            let xr = x + (r0 + t) * cols
            var m8 = tail > 0 ? tailVector(xr + c8, count: tail) : Float8(repeating: -.infinity)
            var j = 0
            while j < c8 { m8 = vmax(m8, load8(xr + j)); j += 8 }
            let m4 = vmax4(m8.lowHalf, m8.highHalf)
            mx[t] = max(max(m4[0], m4[1]), max(m4[2], m4[3]))
        }
        for t in 0..<nb {
            let xr = x + (r0 + t) * cols, yr = y + (r0 + t) * cols
            let sm = splat(scale * mx[t])
            var acc = Float8()
            var j = 0
            if SIMDPath.hasAVX512F {
                j = cols & ~15
                acc = softmaxExp16(yr, xr, count: j, scale: scale, shift: scale * mx[t])
            }
            while j < c8 {
                let e = vexp(fmadd(-sm, load8(xr + j), s8))
                store8(yr + j, e)
                acc += e
                j += 8
            }
            if tail > 0 {  // rows of a multiple of 8 (ViT-Tiny's 64 tokens) skip the padded vector's exp
                let xt = tailVector(xr + c8, count: tail)  // its lanes past the row get 0 after the exp
                let et = vexp(fmadd(-sm, xt, s8)).replacing(with: 0, where: .!live)
                acc += et
                for u in 0..<tail { yr[c8 + u] = et[u] }
            }
            inv[t] = 1 / hsum(acc)
        }
        for t in 0..<nb {
            let yr = y + (r0 + t) * cols
            let iv = splat(inv[t])
            var j = 0
            while j < c8 { store8(yr + j, load8(yr + j) * iv); j += 8 }
            for u in 0..<tail { yr[c8 + u] *= inv[t] }
        }
        r0 += nb
    }
}

/// y[j] = e^(scale x[j] - shift) for j in 0..<count (a multiple of 16), 16 lanes at a time through `vexp16`, and
/// the sum of the values in the 8-lane loop's order: lanes 0..<8 of acc16 add each block's low half, then its high
/// half (its other lanes are not used). The same bits as 8 lanes. Out of line, and the halves added through a
/// half-swapped copy: inlined into `softmaxRows`, or adding `lowHalf` and `highHalf`, LLVM split the whole exp
/// into 256-bit halves.
@inline(never)
func softmaxExp16(
    _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int, scale: Float, shift: Float  // (count)
) -> Float8 {
    let sm = SIMD16<Float>(repeating: shift), s = SIMD16<Float>(repeating: scale)
    var acc = SIMD16<Float>()
    var j = 0
    while j < count {
        let e = vexp16(fmadd(-sm, UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self), s))
        UnsafeMutableRawPointer(y + j).storeBytes(of: e, as: SIMD16<Float>.self)
        acc = (acc + e) + SIMD16<Float>(lowHalf: e.highHalf, highHalf: e.lowHalf)
        j += 16
    }
    return acc.lowHalf
}

/// The `count` (1...7) floats at `p` in lanes 0..<count, the last of them repeated in the lanes after (no read
/// past them, and a row's max is unchanged). Built from scalars in registers: lane by lane assignments to a
/// vector went through memory, a store-forwarding stall per lane (a third of the softmax's samples on rows of
/// 196 with their 4-float tail).
@inline(__always) func tailVector(_ p: UnsafePointer<Float>, count: Int) -> Float8 {
    let l = count - 1
    return Float8(p[0], p[min(1, l)], p[min(2, l)], p[min(3, l)], p[min(4, l)], p[min(5, l)], p[min(6, l)], p[min(7, l)])
}

@inline(__always) func vmax4(_ a: SIMD4<Float>, _ b: SIMD4<Float>) -> SIMD4<Float> { a.replacing(with: b, where: b .> a) }

/// dx += y * (dy - sum(dy * y)) per row.
public func softmaxBackward(
    dx: UnsafeMutablePointer<Float>,           // (rows, cols), accumulated
    dy: UnsafePointer<Float>,                  // (rows, cols)
    y: UnsafePointer<Float>,                   // (rows, cols), the forward output
    rows: Int, cols: Int, context: KernelContext
) {
    precondition(rows >= 0 && cols > 0, "softmaxBackward: rows \(rows) must be >= 0 and cols \(cols) > 0")
    forEachRowChunk(rows: rows, cols: cols * 2, context: context) { r0, r1 in
        softmaxBackwardRows(dx + r0 * cols, dy + r0 * cols, y + r0 * cols, rows: r1 - r0, cols: cols, scale: 1)
    }
}

/// Rows of the softmax backward, times `scale` (the chain rule through softmax(scale * x)):
/// dx += scale * y * (dy - sum(dy * y)) per row. Eight rows at a time in two passes (the rows' dot products,
/// then the updates), for the reason given at `softmaxRows`; per row the arithmetic of a row alone.
@inline(__always)
public func softmaxBackwardRows(
    _ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>,  // (rows, cols) each
    rows: Int, cols: Int, scale: Float
) {
    let c8 = cols & ~7
    let s8 = splat(scale)
    var r0 = 0
    while r0 < rows {
        let nb = min(8, rows - r0)
        var dots = Float8()  // lane t: row r0 + t
        for t in 0..<nb {
            let o = (r0 + t) * cols
            var acc = Float8()
            var j = 0
            while j < c8 { acc = fmadd(acc, load8(dy + o + j), load8(y + o + j)); j += 8 }
            var dot = hsum(acc)
            while j < cols { dot = fmadd(dot, dy[o + j], y[o + j]); j += 1 }
            dots[t] = dot
        }
        for t in 0..<nb {
            let o = (r0 + t) * cols
            let dot = dots[t], d8 = splat(dot)
            var j = 0
            while j < c8 {
                store8(dx + o + j, fmadd(load8(dx + o + j), load8(y + o + j) * s8, load8(dy + o + j) - d8))
                j += 8
            }
            while j < cols { dx[o + j] = fmadd(dx[o + j], y[o + j] * scale, dy[o + j] - dot); j += 1 }
        }
        r0 += nb
    }
}

// MARK: - Bias and residual

/// y[r, :] += bias for every row.
public func addBias(
    _ y: UnsafeMutablePointer<Float>,          // (rows, cols)
    bias: UnsafePointer<Float>,                // (cols)
    rows: Int, cols: Int, context: KernelContext
) {
    forEachRowChunk(rows: rows, cols: cols, context: context) { r0, r1 in
        let c8 = cols & ~7
        for r in r0..<r1 {
            let yr = y + r * cols
            var j = 0
            while j < c8 { store8(yr + j, load8(yr + j) + load8(bias + j)); j += 8 }
            while j < cols { yr[j] += bias[j]; j += 1 }
        }
    }
}

/// dbias += column sums of dy.
public func biasBackward(
    dbias: UnsafeMutablePointer<Float>,        // (cols), accumulated
    dy: UnsafePointer<Float>,                  // (rows, cols)
    rows: Int, cols: Int, context: KernelContext
) {
    let (chunks, size) = rowChunking(rows: rows, cols: cols)
    if chunks == 0 { return }
    context.scratch.withFloats(2 * chunks * cols) { partial in
        // partial: (chunks, 2, cols); slot 1 is unused so the layout matches reduceColumnPartials.
        context.forEach(tasks: chunks, threads: chunks > 1 ? nil : 1) { c, _ in
            let p = partial + c * 2 * cols
            p.update(repeating: 0, count: cols)
            let c8 = cols & ~7
            for r in c * size..<min(rows, (c + 1) * size) {
                let d = dy + r * cols
                var j = 0
                while j < c8 { store8(p + j, load8(p + j) + load8(d + j)); j += 8 }
                while j < cols { p[j] += d[j]; j += 1 }
            }
        }
        reduceColumnPartials(partial, chunks: chunks, dim: cols, dgamma: dbias, dbeta: nil)
    }
}

/// out = a + b (the residual connection; out may alias a or b).
public func addElementwise(
    _ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int,
    context: KernelContext
) {
    forEachRowChunk(rows: (count + 7) / 8, cols: 8 * 4, context: context) { b0, b1 in
        addBlocks(out, a, b, blocks: b0..<b1, count: count)
    }
}

/// out = a + b over the 8-float blocks `blocks` of `count` values.
@inline(__always)
func addBlocks(
    _ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, blocks: Range<Int>,
    count: Int
) {
    for blk in blocks {
        let i = blk * 8
        if i + 8 <= count {
            store8(out + i, load8(a + i) + load8(b + i))
        } else {
            for t in i..<count { out[t] = a[t] + b[t] }
        }
    }
}

/// dst += src (the residual backward: both inputs receive dy).
public func accumulate(
    _ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int, context: KernelContext
) {
    addElementwise(dst, UnsafePointer(dst), src, count: count, context: context)
}

/// dst += src on the calling thread (for short rows inside a caller's own loop; the bits of `accumulate`).
public func accumulateSerial(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    addBlocks(dst, UnsafePointer(dst), src, blocks: 0..<(count + 7) / 8, count: count)
}
