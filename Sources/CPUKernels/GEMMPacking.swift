// Packing routines of the GEMM. They absorb the transposes: the micro-kernel always reads
// A panels as (kc, MR) and B panels as (kc, NR), contiguous, zero-padded at the edges (docs/gemm.md).

/// Extra floats a packed-A buffer needs after its last panel (the 8-wide copies of the transposed path).
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
    while i < mc {
        let mr = min(MR, mc - i)
        let d = dst + panel * MR * kc
        if transA {
            // A(k, m): the MR values of one k are contiguous. Copied as 8 floats per k (one load, one store):
            // the 2 extra floats land where the next k's values are written next, or in the buffer's slack
            // after the last panel (`packASlack`); only panels with 2 more valid columns take this path.
            if mr == MR && m0 + i + 8 <= aColumns {
                var src = UnsafeRawPointer(a + k0 * lda + m0 + i)
                let out = UnsafeMutableRawPointer(d)
                for p in 0..<kc {
                    out.storeBytes(of: src.loadUnaligned(as: Float8.self), toByteOffset: p * MR * 4, as: Float8.self)
                    src += lda * 4
                }
                panel += 1
                i += MR
                continue
            }
            for p in 0..<kc {
                let src = a + (k0 + p) * lda + m0 + i
                let out = d + p * MR
                if mr == MR {
                    out[0] = src[0]; out[1] = src[1]; out[2] = src[2]
                    out[3] = src[3]; out[4] = src[4]; out[5] = src[5]
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
                let r1 = r0 + lda, r2 = r1 + lda, r3 = r2 + lda, r4 = r3 + lda, r5 = r4 + lda
                var p = 0
                while p + 8 <= kc {
                    let v0 = load8(r0 + p), v1 = load8(r1 + p), v2 = load8(r2 + p)
                    let v3 = load8(r3 + p), v4 = load8(r4 + p), v5 = load8(r5 + p)
                    let o = d + p * MR
                    store8(o, Float8(v0[0], v1[0], v2[0], v3[0], v4[0], v5[0], v0[1], v1[1]))
                    store8(o + 8, Float8(v2[1], v3[1], v4[1], v5[1], v0[2], v1[2], v2[2], v3[2]))
                    store8(o + 16, Float8(v4[2], v5[2], v0[3], v1[3], v2[3], v3[3], v4[3], v5[3]))
                    store8(o + 24, Float8(v0[4], v1[4], v2[4], v3[4], v4[4], v5[4], v0[5], v1[5]))
                    store8(o + 32, Float8(v2[5], v3[5], v4[5], v5[5], v0[6], v1[6], v2[6], v3[6]))
                    store8(o + 40, Float8(v4[6], v5[6], v0[7], v1[7], v2[7], v3[7], v4[7], v5[7]))
                    p += 8
                }
                while p < kc {
                    let o = d + p * MR
                    o[0] = r0[p]; o[1] = r1[p]; o[2] = r2[p]; o[3] = r3[p]; o[4] = r4[p]; o[5] = r5[p]
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
        // B(n, k): each of the NR columns of op(B) is a contiguous row of B.
        for q in panels {
            let d = dst + q * NR * kc
            let j = q * NR
            let nr = min(NR, nc - j)
            for col in 0..<nr {
                let src = b + (n0 + j + col) * ldb + k0
                var out = d + rows.lowerBound * NR + col
                for p in rows {
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
                store8(out, load8(src + j))
                store8(out + 8, load8(src + j + 8))
            } else {
                let nr = nc - j
                for col in 0..<nr { out[col] = src[j + col] }
                for col in nr..<NR { out[col] = 0 }
            }
        }
    }
}
