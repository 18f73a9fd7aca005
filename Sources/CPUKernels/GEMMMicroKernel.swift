/// The build's register tile (compile-time choice): `microKernel12x32` in AVX-512 builds, else `microKernel6x16`.
@inline(__always)
func microKernel(
    c: UnsafeMutablePointer<Float>, ldc: Int, // (mr, nr) block of C, row stride ldc
    a: UnsafePointer<Float>,                  // (kc, MR) packed
    b: UnsafePointer<Float>,                  // (kc, NR) packed
    kc: Int, mr: Int, nr: Int, alpha: Float, beta: Float,
    bias: UnsafePointer<Float>?,              // (nr) values for these columns, or nil
    residual: UnsafePointer<Float>?,          // (mr, nr) block added last, row stride ldc, or nil
    prefetchBytes: Int,                       // AVX-512 tile: how far ahead of its B reads it prefetches
    farPrefetch: UnsafeRawPointer, farStep: Int // AVX-512 tile: a second stream it prefetches, farStep bytes a k step
) {
    if SIMDPath.hasAVX512F {
        microKernel12x32(c: c, ldc: ldc, a: a, b: b, kc: kc, mr: mr, nr: nr, alpha: alpha, beta: beta, bias: bias,
                         residual: residual, prefetchBytes: prefetchBytes, farPrefetch: farPrefetch, farStep: farStep)
    } else {
        microKernel6x16(c: c, ldc: ldc, a: a, b: b, kc: kc, mr: mr, nr: nr, alpha: alpha, beta: beta, bias: bias,
                        residual: residual)
    }
}

/// The 6x16 micro-kernel: C[0..<mr, 0..<nr] = alpha * (Ap * Bp) + beta * C (+ bias per column) over one
/// kc-deep rank update.
///
/// Contract (docs/gemm.md): `a` is a packed (kc, 6) panel, `b` a packed (kc, 16) panel, both zero-padded;
/// 12 SIMD8 accumulators stay in registers; beta == 0 never reads C. Edge tiles (mr < 6 or nr < 16) go
/// through a stack tile and store the same expression per element, so an element's value does not depend
/// on whether it sat in a full or an edge tile. `bias` (the GEMM's last k block only) is added after the
/// alpha/beta expression is rounded, exactly as a separate bias pass would add it; `residual` (last k block too)
/// after that, exactly as a separate elementwise add of the residual stream would.
@inline(__always)
func microKernel6x16(
    c: UnsafeMutablePointer<Float>, ldc: Int, // (mr, nr) block of C, row stride ldc
    a: UnsafePointer<Float>,                  // (kc, 6) packed
    b: UnsafePointer<Float>,                  // (kc, 16) packed
    kc: Int, mr: Int, nr: Int, alpha: Float, beta: Float,
    bias: UnsafePointer<Float>? = nil,         // (nr) values for these columns, or nil
    residual: UnsafePointer<Float>? = nil      // (mr, nr) block added last, row stride ldc, or nil
) {
    typealias V = SIMD8<Float>
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
    var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
    var pa = UnsafeRawPointer(a)
    var pb = UnsafeRawPointer(b)
    for _ in 0..<kc {
        let b0 = pb.loadUnaligned(as: V.self)
        let b1 = pb.loadUnaligned(fromByteOffset: 32, as: V.self)
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
        pb += 64
    }
    let al = V(repeating: alpha)
    if mr == 6 && nr == 16 {
        // The bias as plain SIMD8 vectors and a flag: as an Optional<SIMD8<Float>> LLVM kept it in eight
        // general registers and rebuilt each vector per row with ~40 inserts (objdump of sgemm), most of the
        // tile's store code. (Two specialised copies of the stores instead grew sgemm past the inliner's
        // budget: the stdlib's unaligned loads and stores became calls.)
        let hasBias = bias != nil
        let b0 = hasBias ? UnsafeRawPointer(bias!).loadUnaligned(as: V.self) : V()
        let b1 = hasBias ? UnsafeRawPointer(bias!).loadUnaligned(fromByteOffset: 32, as: V.self) : V()
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
        storeEdgeTile(c, ldc: ldc, tile: UnsafeRawPointer(t.baseAddress!).assumingMemoryBound(to: Float.self), width: 16,
                      mr: mr, nr: nr, alpha: alpha, beta: beta, bias: bias, residual: residual)
    }
}

/// The 12x32 micro-kernel of AVX-512 builds: the contract of `microKernel6x16` with a (kc, 12) A panel, a
/// (kc, 32) B panel and 24 `SIMD16<Float>` accumulators (of 32 zmm registers).
///
/// Why 12 rows: per k step 2 B vectors (128 bytes) feed 24 fused multiply-adds, so the B panel (kc x 32 x 4 =
/// 48 KiB at KC 384, more than L1) can stream from L2 at half the rate a 6-row tile needs; the 6x32 tile ran
/// the batch-1 ViT-S/16 GEMMs at ~55-70 % of the AVX-512 peak. Each element is still one fma chain in k order
/// with the same KC, so the bits equal the AVX2 build's (tested through the suite's exact fixtures).
@inline(never)
func microKernel12x32(
    c: UnsafeMutablePointer<Float>, ldc: Int, // (mr, nr) block of C, row stride ldc
    a: UnsafePointer<Float>,                  // (kc, 12) packed
    b: UnsafePointer<Float>,                  // (kc, 32) packed
    kc: Int, mr: Int, nr: Int, alpha: Float, beta: Float,
    bias: UnsafePointer<Float>?,              // (nr) values for these columns, or nil
    residual: UnsafePointer<Float>?,          // (mr, nr) block added last, row stride ldc, or nil
    prefetchBytes: Int,                       // B is prefetched this far ahead of each k step's reads (bytes)
    farPrefetch: UnsafeRawPointer,            // a second stream: one line a k step from here (data read later)
    farStep: Int                              // bytes the second stream advances a k step (0: it stays put)
) {
    if mr <= 4 {
        tile12x32(FourRows.self, c: c, ldc: ldc, a: a, b: b, kc: kc, mr: mr, nr: nr, alpha: alpha, beta: beta, bias: bias,
                  residual: residual, prefetchBytes: prefetchBytes, farPrefetch: farPrefetch, farStep: farStep)
    } else {
        tile12x32(TwelveRows.self, c: c, ldc: ldc, a: a, b: b, kc: kc, mr: mr, nr: nr, alpha: alpha, beta: beta, bias: bias,
                  residual: residual, prefetchBytes: prefetchBytes, farPrefetch: farPrefetch, farStep: farStep)
    }
}

/// The rows a `tile12x32` computes, a constant once specialised: 12, or 4 for the last panel of a GEMM whose
/// rows leave 4 (196 = 16 x 12 + 4 and 256 = 21 x 12 + 4: a batch-1 ViT-S/16 or ViT-H/14), which otherwise
/// ran 12 rows' fused multiply-adds for 4 rows of C (a 17th or 22nd of the GEMM's time).
protocol TileRowCount { static var rows: Int { get } }
enum TwelveRows: TileRowCount { static var rows: Int { 12 } }
enum FourRows: TileRowCount { static var rows: Int { 4 } }

/// `microKernel12x32`'s body for the first `R.rows` rows of the (kc, 12) A panel (mr <= R.rows); each element
/// is the same fma chain as in the full tile, so the bits do not depend on which body computed it.
@inline(__always)
private func tile12x32<R: TileRowCount>(
    _: R.Type, c: UnsafeMutablePointer<Float>, ldc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
    kc: Int, mr: Int, nr: Int, alpha: Float, beta: Float, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
    prefetchBytes: Int, farPrefetch: UnsafeRawPointer, farStep: Int
) {
    typealias V = SIMD16<Float>
    let full = R.rows > 4
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V()
    var c40 = V(), c41 = V(), c50 = V(), c51 = V(), c60 = V(), c61 = V(), c70 = V(), c71 = V()
    var c80 = V(), c81 = V(), c90 = V(), c91 = V(), ca0 = V(), ca1 = V(), cb0 = V(), cb1 = V()
    var pa = UnsafeRawPointer(a)
    var pb = UnsafeRawPointer(b)
    var far = farPrefetch
    for _ in 0..<kc {
        prefetch(pb + prefetchBytes)
        prefetch(pb + prefetchBytes + 64)
        prefetch(far)
        far += farStep
        let b0 = pb.loadUnaligned(as: V.self)
        let b1 = pb.loadUnaligned(fromByteOffset: 64, as: V.self)
        @inline(__always) func row(_ r: Int) -> V { V(repeating: pa.load(fromByteOffset: 4 * r, as: Float.self)) }
        var av = row(0); c00 = fmadd(c00, av, b0); c01 = fmadd(c01, av, b1)
        av = row(1); c10 = fmadd(c10, av, b0); c11 = fmadd(c11, av, b1)
        av = row(2); c20 = fmadd(c20, av, b0); c21 = fmadd(c21, av, b1)
        av = row(3); c30 = fmadd(c30, av, b0); c31 = fmadd(c31, av, b1)
        if full {
            av = row(4); c40 = fmadd(c40, av, b0); c41 = fmadd(c41, av, b1)
            av = row(5); c50 = fmadd(c50, av, b0); c51 = fmadd(c51, av, b1)
            av = row(6); c60 = fmadd(c60, av, b0); c61 = fmadd(c61, av, b1)
            av = row(7); c70 = fmadd(c70, av, b0); c71 = fmadd(c71, av, b1)
            av = row(8); c80 = fmadd(c80, av, b0); c81 = fmadd(c81, av, b1)
            av = row(9); c90 = fmadd(c90, av, b0); c91 = fmadd(c91, av, b1)
            av = row(10); ca0 = fmadd(ca0, av, b0); ca1 = fmadd(ca1, av, b1)
            av = row(11); cb0 = fmadd(cb0, av, b0); cb1 = fmadd(cb1, av, b1)
        }
        pa += 48
        pb += 128
    }
    let al = V(repeating: alpha)
    if mr == R.rows && nr == 32 {
        let hasBias = bias != nil
        let b0 = hasBias ? UnsafeRawPointer(bias!).loadUnaligned(as: V.self) : V()
        let b1 = hasBias ? UnsafeRawPointer(bias!).loadUnaligned(fromByteOffset: 64, as: V.self) : V()
        let scaled = alpha != 1
        @inline(__always) func store(_ r: Int, _ x0: V, _ x1: V) {
            storeRow(c + r * ldc, x0, x1, scaled, al, beta, hasBias, b0, b1, residual.map { $0 + r * ldc })
        }
        store(0, c00, c01); store(1, c10, c11); store(2, c20, c21); store(3, c30, c31)
        if full {
            store(4, c40, c41); store(5, c50, c51); store(6, c60, c61); store(7, c70, c71)
            store(8, c80, c81); store(9, c90, c91); store(10, ca0, ca1); store(11, cb0, cb1)
        }
        return
    }
    withUnsafeTemporaryAllocation(of: V.self, capacity: 24) { t in
        t[0] = c00; t[1] = c01; t[2] = c10; t[3] = c11; t[4] = c20; t[5] = c21; t[6] = c30; t[7] = c31
        t[8] = c40; t[9] = c41; t[10] = c50; t[11] = c51; t[12] = c60; t[13] = c61; t[14] = c70; t[15] = c71
        t[16] = c80; t[17] = c81; t[18] = c90; t[19] = c91; t[20] = ca0; t[21] = ca1; t[22] = cb0; t[23] = cb1
        storeEdgeTile(c, ldc: ldc, tile: UnsafeRawPointer(t.baseAddress!).assumingMemoryBound(to: Float.self), width: 32,
                      mr: mr, nr: nr, alpha: alpha, beta: beta, bias: bias, residual: residual)
    }
}

/// An edge tile's store, element by element, with the expression of the full tiles' vector stores: C = alpha
/// tile (+ beta C) (+ bias) (+ residual), each step rounded, so an element's bits do not depend on its tile.
@inline(never)
func storeEdgeTile(
    _ c: UnsafeMutablePointer<Float>, ldc: Int,  // (mr, nr) block of C, row stride ldc
    tile: UnsafePointer<Float>, width: Int,      // the accumulators, (rows, width) row-major
    mr: Int, nr: Int, alpha: Float, beta: Float,
    bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?
) {
    for i in 0..<mr {
        for j in 0..<nr {
            let ab = alpha * tile[i * width + j]
            let y = beta == 0 ? ab : ab + beta * c[i * ldc + j]
            let yb = bias.map { y + $0[j] } ?? y
            c[i * ldc + j] = residual.map { yb + $0[i * ldc + j] } ?? yb
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
