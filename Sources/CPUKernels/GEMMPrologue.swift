/// An elementwise function of a row-major operand that `sgemm` applies while it packs that operand (A when
/// not transposed, B when not transposed): the product is then f(A) op(B) or op(A) f(B) with the bits of a
/// separate pass that wrote f's output first, without that output's trip through memory, and without keeping
/// it for a backward pass (a LayerNorm's or a GELU's output, the input of the next Linear).
///
/// Element (r, c) is the operand's stored row r and column c: for A (m, k), r in 0..<m and c in 0..<k; for
/// B (k, n), r in 0..<k and c in 0..<n.
public enum GEMMPrologue {
    /// GELU (exact erf form), the bits of `geluForward`.
    case gelu
    /// LayerNorm from saved statistics, the bits of `layerNormForward`: (x - mean[r]) rstd[r], then
    /// beta[c] + that * gamma[c] when both are given (as `layerNormForward`, which uses the affine form only
    /// with both).
    case layerNorm(mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, gamma: UnsafePointer<Float>?,
                   beta: UnsafePointer<Float>?)

    /// The same function on the block of the operand that starts at row r0, column c0.
    func offset(rows r0: Int, cols c0: Int) -> GEMMPrologue {
        switch self {
        case .gelu: return .gelu
        case let .layerNorm(mean, rstd, gamma, beta):
            return .layerNorm(mean: mean + r0, rstd: rstd + r0, gamma: gamma.map { $0 + c0 }, beta: beta.map { $0 + c0 })
        }
    }

    /// dst[0..<count] = f of the elements (row, col..<col + count), whose values are src[0..<count].
    @inline(__always)
    func applyRow(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int, row: Int, col: Int) {
        switch self {
        case .gelu:
            geluSpan(dst, src, count: count)  // four vectors at a time, as `geluForward`
        case let .layerNorm(mean, rstd, gamma, beta):
            layerNormRowOutput(dst, src, count: count, mean: mean[row], rstd: rstd[row], gamma: gamma.map { $0 + col },
                               beta: beta.map { $0 + col })
        }
    }
}

/// `packA` of row-major A (not transposed) with `prologue` applied to each element: the same panels as
/// packing f(A). Each panel's rows go through `applyRow` into a small buffer first, then through `packA`.
/// Out of line: it runs once per panel block, and `sgemm` must not grow.
@inline(never)
func packAPrologue(
    _ dst: UnsafeMutablePointer<Float>,              // ceil(mc/MR) panels, each (kc, MR) row-major
    a: UnsafePointer<Float>, lda: Int,               // A (m, k) row-major
    m0: Int, mc: Int, k0: Int, kc: Int, prologue: GEMMPrologue
) {
    let MR = GEMMBlocking.MR
    withUnsafeTemporaryAllocation(of: Float.self, capacity: MR * kc) { buffer in
        let rows = buffer.baseAddress!  // (MR, kc): f of one panel's rows
        var i = 0
        while i < mc {
            let mr = min(MR, mc - i)
            for r in 0..<mr {
                prologue.applyRow(rows + r * kc, a + (m0 + i + r) * lda + k0, count: kc, row: m0 + i + r, col: k0)
            }
            packA(dst + i * kc, a: rows, lda: kc, transA: false, m0: 0, mc: mr, k0: 0, kc: kc, aColumns: 0)
            i += MR
        }
    }
}

/// `packB` of row-major B (not transposed) with `prologue` applied to each element: the same panels as
/// packing f(B). Each row's columns of the panels go through `applyRow` into a small buffer first, then
/// through `packB`. Out of line, as `packAPrologue`.
@inline(never)
func packBPrologue(
    _ dst: UnsafeMutablePointer<Float>,              // the k block: panels of (kc, NR), panel q at dst + q*NR*kc
    b: UnsafePointer<Float>, ldb: Int,               // B (k, n) row-major
    k0: Int, kc: Int, rows: Range<Int>,              // rows (within 0..<kc) of the k block to pack
    n0: Int, nc: Int, panels: Range<Int>, prologue: GEMMPrologue
) {
    let NR = GEMMBlocking.NR
    let j0 = panels.lowerBound * NR, j1 = min(nc, panels.upperBound * NR)
    guard j0 < j1 else { return }
    withUnsafeTemporaryAllocation(of: Float.self, capacity: j1) { buffer in
        let row = buffer.baseAddress!  // columns j0..<j1 of f of one row of B, at their own offsets
        for p in rows {
            prologue.applyRow(row + j0, b + (k0 + p) * ldb + n0 + j0, count: j1 - j0, row: k0 + p, col: n0 + j0)
            packB(dst, b: row, ldb: 0, transB: false, k0: 0, kc: kc, rows: p..<p + 1, n0: 0, nc: nc, panels: panels)
        }
    }
}
