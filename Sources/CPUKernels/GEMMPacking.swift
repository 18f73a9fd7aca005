// Packing routines of the GEMM. They absorb the transposes: the micro-kernel always reads
// A panels as (kc, MR) and B panels as (kc, NR), contiguous, zero-padded at the edges (docs/gemm.md).

/// Extra floats a packed-A buffer keeps after its last panel (room for 8-wide copies; the transposed path's
/// row walk no longer writes past a panel's end, see `packA`).
let packASlack = 8

/// Packs rows m0..<m0+mc, columns k0..<k0+kc of op(A) into MR-row panels.
@inline(__always)
func packA(
    _ dst: UnsafeMutablePointer<Float>,              // ceil(mc/MR) panels, each (kc, MR) row-major
    a: UnsafePointer<Float>, lda: Int, transA: Bool, // op(A) (m, k): A (m, k) or, transposed, (k, m)
    m0: Int, mc: Int, k0: Int, kc: Int,
    aColumns: Int                                    // m when transA (the valid width of A's rows), else unused
) {
    let MR = GEMMBlocking.MR
    var panel = 0
    var i = 0
    if transA {
        // A(k, m): walk each k row once across all the full panels (its mc values are contiguous), so A streams
        // front to back, as packB walks B. The panel-by-panel walk read 24 bytes every lda floats (a new line,
        // often a new page, per k). Kept for its access pattern, the one packB's row walk was measured to need;
        // the whole GEMM gains little above the noise (docs/performance.md, Decisions).
        // The MR floats of one k as 8-float copies: MR 6, one copy whose 2 extra floats land in the next k's
        // slot, written after; MR 12, copies of floats 0..<8 and 4..<12 (the same values twice, no spill).
        @inline(__always) func copyK(_ o: UnsafeMutableRawPointer, _ t: Int, _ src: UnsafeRawPointer, _ x: Int) {
            o.storeBytes(of: src.loadUnaligned(fromByteOffset: x, as: Float8.self), toByteOffset: t * MR * 4, as: Float8.self)
            if MR > 8 {
                o.storeBytes(of: src.loadUnaligned(fromByteOffset: x + (MR - 8) * 4, as: Float8.self),
                             toByteOffset: (t * MR + MR - 8) * 4, as: Float8.self)
            }
        }
        // Full panels whose copies stay inside A's row.
        let span = max(MR, 8)
        let full = aColumns - m0 >= span ? min(mc / MR, (aColumns - m0 - span) / MR + 1) : 0
        if full > 0 {
            // The last k copies exactly MR floats (an MR 6 copy's 2 extra would land on the next panel's first
            // k, already written).
            // Eight k rows at a time, so each panel gets 192 bytes (three whole lines) at once: one row at a
            // time wrote 24 bytes per panel, and the panels' 9 KiB stride (kc 384) maps them all to 4 of L1's
            // 64 sets, so the lines were evicted between rows (measured: docs/performance.md, Decisions).
            var p0 = 0
            while p0 + 8 <= kc - 1 {
                let s0 = UnsafeRawPointer(a + (k0 + p0) * lda + m0), s1 = s0 + 4 * lda, s2 = s1 + 4 * lda
                let s3 = s2 + 4 * lda, s4 = s3 + 4 * lda, s5 = s4 + 4 * lda, s6 = s5 + 4 * lda, s7 = s6 + 4 * lda
                for r in 0..<full {
                    let o = UnsafeMutableRawPointer(dst + r * MR * kc + p0 * MR), x = r * MR * 4
                    copyK(o, 0, s0, x); copyK(o, 1, s1, x); copyK(o, 2, s2, x); copyK(o, 3, s3, x)
                    copyK(o, 4, s4, x); copyK(o, 5, s5, x); copyK(o, 6, s6, x); copyK(o, 7, s7, x)
                }
                p0 += 8
            }
            for p in p0..<kc - 1 {
                let src = UnsafeRawPointer(a + (k0 + p) * lda + m0)
                for r in 0..<full { copyK(UnsafeMutableRawPointer(dst + r * MR * kc + p * MR), 0, src, r * MR * 4) }
            }
            let last = a + (k0 + kc - 1) * lda + m0
            for r in 0..<full {
                let out = dst + r * MR * kc + (kc - 1) * MR
                for t in 0..<MR { out[t] = last[r * MR + t] }
            }
            panel = full
            i = full * MR
        }
    }
    while i < mc {
        let mr = min(MR, mc - i)
        let d = dst + panel * MR * kc
        if transA {
            // The panels the row walk above left: the last ones of A's rows and a partial one.
            for p in 0..<kc {
                let src = a + (k0 + p) * lda + m0 + i
                let out = d + p * MR
                if mr == MR {
                    for r in 0..<MR { out[r] = src[r] }  // a constant trip count: unrolled
                } else {
                    for r in 0..<mr { out[r] = src[r] }
                    for r in mr..<MR { out[r] = 0 }
                }
            }
        } else {
            // A(m, k): each row is contiguous in k; interleave the MR rows. Full panels go 8 columns at a
            // time through registers (a 6x8 -> 8x6 transpose): the scalar strided stores ran at 1.3 ns per
            // float, 3x a plain read of A, and packing cost a third of a 4096x192x768 GEMM.
            if mr == MR {
                let r0 = a + (m0 + i) * lda + k0
                var p = MR == 6 ? packRowsBy8(d, r0, lda: lda, kc: kc) : packTwelveRowsBy8(d, r0, lda: lda, kc: kc)
                while p < kc {
                    let o = d + p * MR
                    for r in 0..<MR { o[r] = r0[r * lda + p] }
                    p += 1
                }
                panel += 1
                i += MR
                continue
            }
            for r in 0..<mr {
                let src = a + (m0 + i + r) * lda + k0
                var out = d + r
                for p in 0..<kc {
                    out.pointee = src[p]
                    out += MR
                }
            }
            if mr < MR {
                for p in 0..<kc {
                    for r in mr..<MR { d[p * MR + r] = 0 }
                }
            }
        }
        panel += 1
        i += MR
    }
}

/// Packs columns 0..<8 floor(kc / 8) of six rows (r0, r0 + lda, ...) k-major into `d` (MR 6); returns the
/// first column left.
@inline(__always)
func packRowsBy8(_ d: UnsafeMutablePointer<Float>, _ r0: UnsafePointer<Float>, lda: Int, kc: Int) -> Int {
    let r1 = r0 + lda, r2 = r1 + lda, r3 = r2 + lda, r4 = r3 + lda, r5 = r4 + lda
    var p = 0
    while p + 8 <= kc {
        transpose6x8(d + p * 6, load8(r0 + p), load8(r1 + p), load8(r2 + p), load8(r3 + p), load8(r4 + p), load8(r5 + p))
        p += 8
    }
    return p
}

/// `packRowsBy8` for twelve rows (MR 12): each 8-column block as three 4-row groups, each transposed in
/// registers (the in-lane unpacks transpose columns 0-3 in the low 128 bits and 4-7 in the high ones), and
/// every column's 4 floats of a group stored in place: 24 16-byte stores per 8 columns, none outside the panel.
/// Why: the two 6x8 transposes through a small buffer it replaced read each column back with an 8-float load
/// straddling two of the transposes' stores, which the store buffer cannot forward: a stall per column, 40 % of
/// `packA`'s samples on one store, 3 % of a batch-1 ViT-S/16 embedding (perf).
@inline(__always)
func packTwelveRowsBy8(_ d: UnsafeMutablePointer<Float>, _ r0: UnsafePointer<Float>, lda: Int, kc: Int) -> Int {
    typealias D4 = SIMD4<Double>
    var p = 0
    while p + 8 <= kc {
        let o = UnsafeMutableRawPointer(d + p * 12)
        for g in 0..<3 {  // rows 4g..<4g+4, at floats 4g..<4g+4 of each column's 12
            let s = r0 + 4 * g * lda + p
            let l01 = pairsLow(load8(s), load8(s + lda)), l23 = pairsLow(load8(s + 2 * lda), load8(s + 3 * lda))
            let h01 = pairsHigh(load8(s), load8(s + lda)), h23 = pairsHigh(load8(s + 2 * lda), load8(s + 3 * lda))
            // Columns c (low half) and c + 4 (high half) of the group's four rows.
            @inline(__always) func put(_ c: Int, _ v: D4) {
                let f = unsafeBitCast(v, to: Float8.self)
                o.storeBytes(of: f.lowHalf, toByteOffset: (c * 12 + 4 * g) * 4, as: SIMD4<Float>.self)
                o.storeBytes(of: f.highHalf, toByteOffset: ((c + 4) * 12 + 4 * g) * 4, as: SIMD4<Float>.self)
            }
            put(0, D4(l01[0], l23[0], l01[2], l23[2]))
            put(1, D4(l01[1], l23[1], l01[3], l23[3]))
            put(2, D4(h01[0], h23[0], h01[2], h23[2]))
            put(3, D4(h01[1], h23[1], h01[3], h23[3]))
        }
        p += 8
    }
    return p
}

/// Columns 0, 1, 4, 5 of two rows as 64-bit pairs (x0 y0 | x1 y1 | x4 y4 | x5 y5: the in-lane unpack
/// `unpcklps`), the first step of the register transposes here and in the attention kernel.
@inline(__always)
func pairsLow(_ x: Float8, _ y: Float8) -> SIMD4<Double> {
    unsafeBitCast(Float8(x[0], y[0], x[1], y[1], x[4], y[4], x[5], y[5]), to: SIMD4<Double>.self)
}

/// Columns 2, 3, 6, 7 of two rows as 64-bit pairs (`unpckhps`).
@inline(__always)
func pairsHigh(_ x: Float8, _ y: Float8) -> SIMD4<Double> {
    unsafeBitCast(Float8(x[2], y[2], x[3], y[3], x[6], y[6], x[7], y[7]), to: SIMD4<Double>.self)
}

/// Writes 8 columns of 6 rows k-major: o[6p + r] = v_r[p], 48 floats.
///
/// Rows are interleaved in pairs with the in-lane unpacks (unpcklps / unpckhps: the pairs of columns 0, 1, 4, 5
/// and 2, 3, 6, 7), then each column's three pairs are placed as 64-bit elements. Built from 32-bit lane
/// extracts instead, the same copy compiled to ~50 single-lane inserts per 48 floats: 0.40 against 0.19 ns per
/// float in isolation (6x256 panels of a 5376x288 A), and packing was a quarter of the predictor's
/// input-gradient GEMMs (perf, 5376x96x288).
@inline(__always)
func transpose6x8(
    _ o: UnsafeMutablePointer<Float>,                // 48 floats: 8 columns x 6 rows
    _ v0: Float8, _ v1: Float8, _ v2: Float8, _ v3: Float8, _ v4: Float8, _ v5: Float8  // the 6 rows
) {
    typealias D4 = SIMD4<Double>
    let l01 = pairsLow(v0, v1), l23 = pairsLow(v2, v3), l45 = pairsLow(v4, v5)     // pairs of columns 0, 1, 4, 5
    let h01 = pairsHigh(v0, v1), h23 = pairsHigh(v2, v3), h45 = pairsHigh(v4, v5)  // pairs of columns 2, 3, 6, 7
    let out = UnsafeMutableRawPointer(o)
    out.storeBytes(of: D4(l01[0], l23[0], l45[0], l01[1]), toByteOffset: 0, as: D4.self)
    out.storeBytes(of: D4(l23[1], l45[1], h01[0], h23[0]), toByteOffset: 32, as: D4.self)
    out.storeBytes(of: D4(h45[0], h01[1], h23[1], h45[1]), toByteOffset: 64, as: D4.self)
    out.storeBytes(of: D4(l01[2], l23[2], l45[2], l01[3]), toByteOffset: 96, as: D4.self)
    out.storeBytes(of: D4(l23[3], l45[3], h01[2], h23[2]), toByteOffset: 128, as: D4.self)
    out.storeBytes(of: D4(h45[2], h01[3], h23[3], h45[3]), toByteOffset: 160, as: D4.self)
}

/// Packs rows k0..<k0+kc, columns n0 + NR*panels of op(B) into NR-column panels.
///
/// Row-major B is walked row by row, each row across all the panels, so that B streams from memory front to
/// back: panel by panel it was a 64-byte read every ldb floats, and packing a 4096x768 B that way took 17 %
/// of a 192x768x4096 GEMM (1.3 ns per float against 0.4 for a plain read).
@inline(__always)
func packB(
    _ dst: UnsafeMutablePointer<Float>,              // the k block: panels of (kc, NR), panel q at dst + q*NR*kc
    b: UnsafePointer<Float>, ldb: Int, transB: Bool, // op(B) (k, n): B (k, n) or, transposed, (n, k)
    k0: Int, kc: Int, rows: Range<Int>,              // rows (within 0..<kc) of the k block to pack
    n0: Int, nc: Int, panels: Range<Int>
) {
    let NR = GEMMBlocking.NR
    if transB {
        // B(n, k): each of the NR columns of op(B) is a contiguous row of B. Eight columns (eight rows of B) and
        // eight k at a time go through an 8x8 register transpose: the scalar copy, one strided store per float,
        // was a quarter of a batch-1 ViT-S/16 embedding, where each packed weight is used by only 196 rows (perf).
        for q in panels {
            let d = dst + q * NR * kc
            let j = q * NR
            let nr = min(NR, nc - j)
            let vectorRows = (rows.count / 8) * 8  // rows.lowerBound..<+vectorRows in 8x8 blocks
            for g in 0..<nr / 8 {
                let s = b + (n0 + j + 8 * g) * ldb + k0
                var p = rows.lowerBound
                while p < rows.lowerBound + vectorRows {
                    transpose8x8(d + p * NR + 8 * g, ld: NR, load8(s + p), load8(s + ldb + p), load8(s + 2 * ldb + p),
                                 load8(s + 3 * ldb + p), load8(s + 4 * ldb + p), load8(s + 5 * ldb + p),
                                 load8(s + 6 * ldb + p), load8(s + 7 * ldb + p))
                    p += 8
                }
            }
            for col in 0..<nr {
                // The rest one float at a time: the last rows % 8 k of the full groups, every k of the last nr % 8.
                let start = col < nr / 8 * 8 ? rows.lowerBound + vectorRows : rows.lowerBound
                let src = b + (n0 + j + col) * ldb + k0
                var out = d + start * NR + col
                for p in start..<rows.upperBound {
                    out.pointee = src[p]
                    out += NR
                }
            }
            if nr < NR {
                for p in rows {
                    for col in nr..<NR { d[p * NR + col] = 0 }
                }
            }
        }
        return
    }
    for p in rows {
        let src = b + (k0 + p) * ldb + n0
        for q in panels {
            let j = q * NR
            let out = dst + q * NR * kc + p * NR
            if j + NR <= nc {
                var v = 0
                while v < NR {  // NR is a constant (16 or 32): unrolled
                    store8(out + v, load8(src + j + v))
                    v += 8
                }
            } else {
                let nr = nc - j
                for col in 0..<nr { out[col] = src[j + col] }
                for col in nr..<NR { out[col] = 0 }
            }
        }
    }
}
