/// The 6 x NR micro-kernel: C[0..<mr, 0..<nr] = alpha * (Ap * Bp) + beta * C (+ bias per column) over one
/// kc-deep rank update, with NR = 2 vectors of `V` (SIMD8: 6x16 on AVX2; SIMD16: 6x32 on AVX-512).
///
/// Contract (docs/gemm.md): `a` is a packed (kc, 6) panel, `b` a packed (kc, NR) panel, both zero-padded;
/// 12 accumulators of `V` stay in registers; beta == 0 never reads C. Edge tiles (mr < 6 or nr < NR) go
/// through a stack tile and store the same expression per element, so an element's value does not depend
/// on whether it sat in a full or an edge tile. Every element is the same chain of fused multiply-adds in k
/// order whatever the vector width, so both widths give the same bits. `bias` (the GEMM's last k block only)
/// is added after the alpha/beta expression is rounded, exactly as a separate bias pass would add it;
/// `residual` (last k block too) after that, exactly as a separate elementwise add of the residual stream would.
@inline(__always)
func microKernel6xNR<V: SIMD>(
    _ vector: V.Type,                         // SIMD8<Float> or SIMD16<Float>: GEMMBlocking.NR == 2 * lanes
    c: UnsafeMutablePointer<Float>, ldc: Int, // (mr, nr) block of C, row stride ldc
    a: UnsafePointer<Float>,                  // (kc, 6) packed
    b: UnsafePointer<Float>,                  // (kc, NR) packed
    kc: Int, mr: Int, nr: Int, alpha: Float, beta: Float,
    bias: UnsafePointer<Float>? = nil,         // (nr) values for these columns, or nil
    residual: UnsafePointer<Float>? = nil      // (mr, nr) block added last, row stride ldc, or nil
) where V.Scalar == Float {
    let vb = V.scalarCount * 4  // bytes per vector
    let NR = 2 * V.scalarCount
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
    var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
    var pa = UnsafeRawPointer(a)
    var pb = UnsafeRawPointer(b)
    for _ in 0..<kc {
        let b0 = pb.loadUnaligned(as: V.self)
        let b1 = pb.loadUnaligned(fromByteOffset: vb, as: V.self)
        var av = V(repeating: pa.load(as: Float.self))
        c00 = fmadd(c00, av, b0); c01 = fmadd(c01, av, b1)
        av = V(repeating: pa.load(fromByteOffset: 4, as: Float.self))
        c10 = fmadd(c10, av, b0); c11 = fmadd(c11, av, b1)
        av = V(repeating: pa.load(fromByteOffset: 8, as: Float.self))
        c20 = fmadd(c20, av, b0); c21 = fmadd(c21, av, b1)
        av = V(repeating: pa.load(fromByteOffset: 12, as: Float.self))
        c30 = fmadd(c30, av, b0); c31 = fmadd(c31, av, b1)
        av = V(repeating: pa.load(fromByteOffset: 16, as: Float.self))
        c40 = fmadd(c40, av, b0); c41 = fmadd(c41, av, b1)
        av = V(repeating: pa.load(fromByteOffset: 20, as: Float.self))
        c50 = fmadd(c50, av, b0); c51 = fmadd(c51, av, b1)
        pa += 24
        pb += 2 * vb
    }
    let al = V(repeating: alpha)
    if mr == 6 && nr == NR {
        // The bias as plain vectors and a flag: as an Optional<SIMD8<Float>> LLVM kept it in eight
        // general registers and rebuilt each vector per row with ~40 inserts (objdump of sgemm), most of the
        // tile's store code. (Two specialised copies of the stores instead grew sgemm past the inliner's
        // budget: the stdlib's unaligned loads and stores became calls.)
        let hasBias = bias != nil
        let b0 = hasBias ? UnsafeRawPointer(bias!).loadUnaligned(as: V.self) : V()
        let b1 = hasBias ? UnsafeRawPointer(bias!).loadUnaligned(fromByteOffset: vb, as: V.self) : V()
        let scaled = alpha != 1  // a multiply by 1 is exact: skipping it keeps every bit (a Linear layer's case)
        storeRow(c, c00, c01, scaled, al, beta, hasBias, b0, b1, residual)
        storeRow(c + ldc, c10, c11, scaled, al, beta, hasBias, b0, b1, residual.map { $0 + ldc })
        storeRow(c + 2 * ldc, c20, c21, scaled, al, beta, hasBias, b0, b1, residual.map { $0 + 2 * ldc })
        storeRow(c + 3 * ldc, c30, c31, scaled, al, beta, hasBias, b0, b1, residual.map { $0 + 3 * ldc })
        storeRow(c + 4 * ldc, c40, c41, scaled, al, beta, hasBias, b0, b1, residual.map { $0 + 4 * ldc })
        storeRow(c + 5 * ldc, c50, c51, scaled, al, beta, hasBias, b0, b1, residual.map { $0 + 5 * ldc })
        return
    }
    withUnsafeTemporaryAllocation(of: V.self, capacity: 12) { t in
        t[0] = c00; t[1] = c01; t[2] = c10; t[3] = c11; t[4] = c20; t[5] = c21
        t[6] = c30; t[7] = c31; t[8] = c40; t[9] = c41; t[10] = c50; t[11] = c51
        let tile = UnsafeRawPointer(t.baseAddress!).assumingMemoryBound(to: Float.self) // (6, NR)
        for i in 0..<mr {
            for j in 0..<nr {
                let ab = alpha * tile[i * NR + j]
                let y = beta == 0 ? ab : ab + beta * c[i * ldc + j]
                let yb = bias.map { y + $0[j] } ?? y
                c[i * ldc + j] = residual.map { yb + $0[i * ldc + j] } ?? yb
            }
        }
    }
}

@inline(__always)
private func storeRow<V: SIMD>(
    _ c: UnsafeMutablePointer<Float>, _ x0: V, _ x1: V, _ scaled: Bool, _ alpha: V,
    _ beta: Float, _ hasBias: Bool, _ bias0: V, _ bias1: V, _ residual: UnsafePointer<Float>?
) where V.Scalar == Float {
    let p = UnsafeMutableRawPointer(c)
    let vb = V.scalarCount * 4
    var y0 = x0, y1 = x1
    if scaled {
        y0 = alpha * x0
        y1 = alpha * x1
    }
    if beta != 0 {
        let bv = V(repeating: beta)
        y0 = y0 + bv * p.loadUnaligned(as: V.self)
        y1 = y1 + bv * p.loadUnaligned(fromByteOffset: vb, as: V.self)
    }
    if hasBias {
        y0 = y0 + bias0
        y1 = y1 + bias1
    }
    if let residual {
        let r = UnsafeRawPointer(residual)
        y0 = y0 + r.loadUnaligned(as: V.self)
        y1 = y1 + r.loadUnaligned(fromByteOffset: vb, as: V.self)
    }
    p.storeBytes(of: y0, as: V.self)
    p.storeBytes(of: y1, toByteOffset: vb, as: V.self)
}
