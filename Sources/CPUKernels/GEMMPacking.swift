// Packing routines of the GEMM. They absorb the transposes: the micro-kernel always reads
// A panels as (kc, MR) and B panels as (kc, NR), contiguous, zero-padded at the edges (docs/gemm.md).

/// Packs rows m0..<m0+mc, columns k0..<k0+kc of op(A) into MR-row panels.
@inline(__always)
func packA(
    _ dst: UnsafeMutablePointer<Float>,              // ceil(mc/MR) panels, each (kc, MR) row-major
    a: UnsafePointer<Float>, lda: Int, transA: Bool, // op(A) (m, k): A (m, k) or, transposed, (k, m)
    m0: Int, mc: Int, k0: Int, kc: Int
) {
    let MR = GEMMBlocking.MR
    var panel = 0
    var i = 0
    while i < mc {
        let mr = min(MR, mc - i)
        let d = dst + panel * MR * kc
        if transA {
            // A(k, m): the MR values of one k are contiguous.
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
            // A(m, k): each row is contiguous in k; interleave the MR rows.
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
@inline(__always)
func packB(
    _ dst: UnsafeMutablePointer<Float>,              // one (kc, NR) row-major panel per index in `panels`
    b: UnsafePointer<Float>, ldb: Int, transB: Bool, // op(B) (k, n): B (k, n) or, transposed, (n, k)
    k0: Int, kc: Int, n0: Int, nc: Int, panels: Range<Int>
) {
    let NR = GEMMBlocking.NR
    var d = dst
    for q in panels {
        let j = q * NR
        let nr = min(NR, nc - j)
        if transB {
            // B(n, k): each of the NR columns of op(B) is a contiguous row of B.
            for col in 0..<nr {
                let src = b + (n0 + j + col) * ldb + k0
                var out = d + col
                for p in 0..<kc {
                    out.pointee = src[p]
                    out += NR
                }
            }
            if nr < NR {
                for p in 0..<kc {
                    for col in nr..<NR { d[p * NR + col] = 0 }
                }
            }
        } else {
            for p in 0..<kc {
                let src = b + (k0 + p) * ldb + n0 + j
                let out = d + p * NR
                if nr == NR {
                    let s = UnsafeRawPointer(src)
                    let o = UnsafeMutableRawPointer(out)
                    o.storeBytes(of: s.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                    o.storeBytes(of: s.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self),
                                 toByteOffset: 32, as: SIMD8<Float>.self)
                } else {
                    for col in 0..<nr { out[col] = src[col] }
                    for col in nr..<NR { out[col] = 0 }
                }
            }
        }
        d += NR * kc
    }
}
