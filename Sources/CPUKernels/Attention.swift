#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Fused attention of one (batch, head) for the short sequences of I-JEPA (7x7 to 14x14 tokens, predictor
// sequences of ~20), forward and backward, in place of five general GEMM calls per head.
//
// Why: the general `sgemm` packs both operands and plans tasks for every call, which on a 21 x 21 x 32 product
// is most of the work (measured: docs/performance.md, Decisions). The row softmax (`softmaxRows`) and the
// transpose of K (`transpose8x8`) are vectorised for the same reason: perf found them next.

// Every product here is one `smallGEMM`: A read in place through (row, column) strides, so transposes cost
// nothing; B a row-major copy padded to a multiple of 16 columns (a few KiB, in L1). Each element is one fma
// chain over k in ascending order followed by alpha (and + C when accumulating): the same arithmetic as the
// packed `sgemm` for k <= KC, so each product has the bits of the GEMM call it replaced (tested).

/// C[0..<m, 0..<n] = alpha * A B (+ C when `accumulate`), for small operands.
///
/// A element (i, t) is `a[i * rowStride + t * colStride]`; B is (k, ldb) row-major with ldb a multiple of 16
/// and at least n (columns n..<ldb are read and ignored). Register tile: 4 rows x 16 columns, 8 accumulators.
/// B's rows are loaded unaligned: the forward pass's head scratch starts after the copied rows, at any float
/// (an aligned load trapped there in debug builds and would fault in an SSE build).
@inline(__always)
func smallGEMM(
    c: UnsafeMutablePointer<Float>, ldc: Int,                              // (m, n), row stride ldc
    a: UnsafePointer<Float>, rowStride: Int, colStride: Int,                // (m, k) through strides
    b: UnsafePointer<Float>, ldb: Int,                                      // (k, ldb), ldb % 16 == 0
    m: Int, n: Int, k: Int, alpha: Float = 1, accumulate: Bool = false
) {
    if SIMDPath.hasAVX512F {
        smallGEMM8x16(c: c, ldc: ldc, a: a, rowStride: rowStride, colStride: colStride, b: b, ldb: ldb, m: m, n: n, k: k,
                      alpha: alpha, accumulate: accumulate)
        return
    }
    typealias V = SIMD8<Float>
    var i = 0
    while i < m {
        let rows = min(4, m - i)
        // Rows past m repeat the last real row (computed, never stored), so the loop body has no branches.
        let a0 = a + i * rowStride
        let a1 = a0 + min(1, rows - 1) * rowStride
        let a2 = a0 + min(2, rows - 1) * rowStride
        let a3 = a0 + min(3, rows - 1) * rowStride
        var j = 0
        while j < n {
            var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V()
            var pb = UnsafeRawPointer(b + j)
            var o = 0
            for _ in 0..<k {
                let b0 = pb.loadUnaligned(as: V.self), b1 = pb.loadUnaligned(fromByteOffset: 32, as: V.self)
                var av = V(repeating: a0[o]); c00 = fmadd(c00, av, b0); c01 = fmadd(c01, av, b1)
                av = V(repeating: a1[o]); c10 = fmadd(c10, av, b0); c11 = fmadd(c11, av, b1)
                av = V(repeating: a2[o]); c20 = fmadd(c20, av, b0); c21 = fmadd(c21, av, b1)
                av = V(repeating: a3[o]); c30 = fmadd(c30, av, b0); c31 = fmadd(c31, av, b1)
                pb += ldb * 4
                o += colStride
            }
            let cols = min(16, n - j)
            let al = V(repeating: alpha)
            storeSmallRow(c + i * ldc + j, c00, c01, al, cols, accumulate)
            if rows > 1 { storeSmallRow(c + (i + 1) * ldc + j, c10, c11, al, cols, accumulate) }
            if rows > 2 { storeSmallRow(c + (i + 2) * ldc + j, c20, c21, al, cols, accumulate) }
            if rows > 3 { storeSmallRow(c + (i + 3) * ldc + j, c30, c31, al, cols, accumulate) }
            j += 16
        }
        i += 4
    }
}

/// `smallGEMM` in AVX-512 builds: 8 rows x 32 columns (16 `SIMD16<Float>` accumulators of 32 zmm), or 8 x 16
/// where fewer than 32 padded columns are left. Each element is the same fma chain over k followed by alpha
/// (and + C), so the bits equal the AVX2 tile's.
/// Why: with SIMD8 the attention heads ran at ~40 GFLOP/s, 16 % of a batch-1 ViT-S/16 embedding (profile); an
/// 8 x 16 tile loads a B vector per 8 fused multiply-adds (with the 8 broadcasts, 9 loads for 8 FMAs), 8 x 32 one
/// per 16 (10 loads for 16).
@inline(never)
func smallGEMM8x16(
    c: UnsafeMutablePointer<Float>, ldc: Int,                              // (m, n), row stride ldc
    a: UnsafePointer<Float>, rowStride: Int, colStride: Int,                // (m, k) through strides
    b: UnsafePointer<Float>, ldb: Int,                                      // (k, ldb), ldb % 16 == 0
    m: Int, n: Int, k: Int, alpha: Float, accumulate: Bool
) {
    var i = 0
    while i < m {
        let rows = min(8, m - i)
        var j = 0
        while j < n {
            let out = c + i * ldc + j
            if j + 32 <= ldb && n - j > 16 {
                smallTile8(SmallTile32.self, c: out, ldc: ldc, a: a + i * rowStride, rowStride: rowStride,
                           colStride: colStride, rows: rows, b: b + j, ldb: ldb, cols: min(32, n - j), k: k, alpha: alpha,
                           accumulate: accumulate)
                j += 32
            } else {
                smallTile8(SmallTile16.self, c: out, ldc: ldc, a: a + i * rowStride, rowStride: rowStride,
                           colStride: colStride, rows: rows, b: b + j, ldb: ldb, cols: min(16, n - j), k: k, alpha: alpha,
                           accumulate: accumulate)
                j += 16
            }
        }
        i += 8
    }
}

/// The columns a `smallTile8` computes, a constant once specialised: 32 (two vectors a row) or 16.
/// Why a type: as a Bool argument of a local function, the width stayed a run-time value inside the k loop (the
/// function was not inlined), and the loop ran eight branches per step beside its 16 fused multiply-adds.
protocol SmallTileColumns { static var wide: Bool { get } }
enum SmallTile32: SmallTileColumns { static var wide: Bool { true } }
enum SmallTile16: SmallTileColumns { static var wide: Bool { false } }

/// One 8-row tile of `smallGEMM8x16`: C rows 0..<rows, columns 0..<cols (cols <= 16 or 32 by `W`) of the
/// block at `c`, from A's rows 0..<rows (rows past them repeat the last one, computed, never stored, so the
/// loop body has no branches) and B's columns from `b`.
@inline(__always)
private func smallTile8<W: SmallTileColumns>(
    _: W.Type, c: UnsafeMutablePointer<Float>, ldc: Int,                   // (rows, cols), row stride ldc
    a a0: UnsafePointer<Float>, rowStride: Int, colStride: Int, rows: Int,  // (rows, k) through strides
    b: UnsafePointer<Float>, ldb: Int, cols: Int, k: Int,                   // (k, ldb) row-major
    alpha: Float, accumulate: Bool
) {
    typealias V = SIMD16<Float>
    let wide = W.wide
    @inline(__always) func row(_ r: Int) -> UnsafePointer<Float> { a0 + min(r, rows - 1) * rowStride }
    let (a1, a2, a3, a4, a5, a6, a7) = (row(1), row(2), row(3), row(4), row(5), row(6), row(7))
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var d0 = V(), d1 = V(), d2 = V(), d3 = V(), d4 = V(), d5 = V(), d6 = V(), d7 = V()
    var pb = UnsafeRawPointer(b)
    var o = 0
    for _ in 0..<k {
        let bv = pb.loadUnaligned(as: V.self)
        let bw = wide ? pb.loadUnaligned(fromByteOffset: 64, as: V.self) : V()
        @inline(__always) func step(_ x: inout V, _ y: inout V, _ ar: UnsafePointer<Float>) {
            let av = V(repeating: ar[o])
            x = fmadd(x, av, bv)
            if wide { y = fmadd(y, av, bw) }
        }
        step(&c0, &d0, a0); step(&c1, &d1, a1); step(&c2, &d2, a2); step(&c3, &d3, a3)
        step(&c4, &d4, a4); step(&c5, &d5, a5); step(&c6, &d6, a6); step(&c7, &d7, a7)
        pb += ldb * 4
        o += colStride
    }
    let al = V(repeating: alpha)
    @inline(__always) func store(_ r: Int, _ x: V, _ x2: V) {
        guard r < rows else { return }
        let y = al * x, y2 = al * x2, d = c + r * ldc
        let p = UnsafeMutableRawPointer(d)
        if cols >= 16 { p.storeBytes(of: accumulate ? y + p.loadUnaligned(as: V.self) : y, as: V.self) }
        if cols == 32 {
            p.storeBytes(of: accumulate ? y2 + p.loadUnaligned(fromByteOffset: 64, as: V.self) : y2,
                         toByteOffset: 64, as: V.self)
        }
        for t in (cols >= 16 ? 16 : 0)..<(cols == 32 ? 16 : cols) {
            let v = t < 16 ? y[t] : y2[t - 16]
            d[t] = accumulate ? v + d[t] : v
        }
    }
    store(0, c0, d0); store(1, c1, d1); store(2, c2, d2); store(3, c3, d3)
    store(4, c4, d4); store(5, c5, d5); store(6, c6, d6); store(7, c7, d7)
}

@inline(__always)
private func storeSmallRow(
    _ c: UnsafeMutablePointer<Float>, _ x0: SIMD8<Float>, _ x1: SIMD8<Float>, _ alpha: SIMD8<Float>, _ cols: Int,
    _ accumulate: Bool
) {
    let y0 = alpha * x0, y1 = alpha * x1
    if cols == 16 {
        store8(c, accumulate ? y0 + load8(c) : y0)
        store8(c + 8, accumulate ? y1 + load8(c + 8) : y1)
        return
    }
    for t in 0..<cols {
        let y = t < 8 ? y0[t] : y1[t - 8]
        c[t] = accumulate ? y + c[t] : y
    }
}

@inline(__always) func paddedTo16(_ x: Int) -> Int { (x + 15) & ~15 }

/// dst (rows, ld) = src (rows, cols) through strides, zero in columns cols..<ld. `transpose` reads src^T:
/// dst[r][c] = src[c * rowStride + r], walking src row by row (contiguous reads).
@inline(__always)
private func copyPadded(
    _ dst: UnsafeMutablePointer<Float>, ld: Int, _ src: UnsafePointer<Float>, rowStride: Int,
    rows: Int, cols: Int, transpose: Bool
) {
    if transpose {
        // 8 x 8 blocks through registers; source rows past `cols` are zeros, which is what the padding needs
        // (ld is a multiple of 16, so the 8-wide stores stay inside each row).
        var c0 = 0
        while c0 < cols {
            let cn = min(8, cols - c0)
            @inline(__always) func row(_ t: Int, _ r0: Int) -> Float8 {
                t < cn ? load8(src + (c0 + t) * rowStride + r0) : Float8()
            }
            var r0 = 0
            while r0 + 8 <= rows {
                transpose8x8(dst + r0 * ld + c0, ld: ld, row(0, r0), row(1, r0), row(2, r0), row(3, r0),
                             row(4, r0), row(5, r0), row(6, r0), row(7, r0))
                r0 += 8
            }
            for r in r0..<rows {
                for t in 0..<cn { dst[r * ld + c0 + t] = src[(c0 + t) * rowStride + r] }
            }
            c0 += 8
        }
    }
    for r in 0..<rows {
        let d = dst + r * ld
        if !transpose {
            var c = 0
            while c + 8 <= cols { store8(d + c, load8(src + r * rowStride + c)); c += 8 }
            while c < cols { d[c] = src[r * rowStride + c]; c += 1 }
        }
        for c in cols..<ld { d[c] = 0 }
    }
}

/// o[i * ld + t] = v_t[i] for i, t in 0..<8: eight rows in, eight columns out.
///
/// Row pairs interleaved by the in-lane unpacks, then 64-bit pairs, then 128-bit halves (the usual AVX 8x8
/// transpose). The scalar copy it replaced (K^T and V^T of every head) was a sixth of the predictor's
/// attention heads (perf).
@inline(__always)
func transpose8x8(
    _ o: UnsafeMutablePointer<Float>, ld: Int,    // (8, ld) rows of the output
    _ v0: Float8, _ v1: Float8, _ v2: Float8, _ v3: Float8, _ v4: Float8, _ v5: Float8, _ v6: Float8, _ v7: Float8
) {
    typealias D4 = SIMD4<Double>
    let l01 = pairsLow(v0, v1), l23 = pairsLow(v2, v3), l45 = pairsLow(v4, v5), l67 = pairsLow(v6, v7)  // 0, 1 | 4, 5
    let h01 = pairsHigh(v0, v1), h23 = pairsHigh(v2, v3), h45 = pairsHigh(v4, v5), h67 = pairsHigh(v6, v7)  // 2, 3 | 6, 7
    // Column c of rows 0-3 and of rows 4-7, as 64-bit pairs: (pairs 01, 23) and (pairs 45, 67).
    @inline(__always) func column(_ a: D4, _ b: D4, _ c: D4, _ d: D4, _ i: Int, _ hiHalf: Bool) -> Float8 {
        let k = hiHalf ? i + 2 : i
        return unsafeBitCast(D4(a[k], b[k], c[k], d[k]), to: Float8.self)
    }
    let out = UnsafeMutableRawPointer(o)
    @inline(__always) func put(_ i: Int, _ v: Float8) { out.storeBytes(of: v, toByteOffset: i * ld * 4, as: Float8.self) }
    put(0, column(l01, l23, l45, l67, 0, false))
    put(1, column(l01, l23, l45, l67, 1, false))
    put(2, column(h01, h23, h45, h67, 0, false))
    put(3, column(h01, h23, h45, h67, 1, false))
    put(4, column(l01, l23, l45, l67, 0, true))
    put(5, column(l01, l23, l45, l67, 1, true))
    put(6, column(h01, h23, h45, h67, 0, true))
    put(7, column(h01, h23, h45, h67, 1, true))
}

/// Floats of scratch that `attentionHeadForward` / `attentionHeadBackward` need for (n, dh); without
/// `keptProbabilities` the backward pass also holds K^T and the P it recomputes.
public func attentionHeadScratch(n: Int, dh: Int, backward: Bool, keptProbabilities: Bool = true) -> Int {
    let (np, dp) = (paddedTo16(n), paddedTo16(dh))
    // Recomputing: K^T at the next 16-float boundary after dS (smallGEMM loads B aligned), then P.
    let recompute = keptProbabilities ? 0 : 2 * (paddedTo16(n * n) - n * n) + dh * np + n * n
    return backward ? 2 * dh * np + 3 * n * dp + 2 * n * n + recompute : dh * np + n * dp
}

/// P = softmax(scale Q K^T) by rows, with K^T padded into `kt`. The forward pass and the backward pass's
/// recomputation both run this code, so P has the same bits in both.
@inline(__always)
func attentionHeadProbabilities(
    _ probs: UnsafeMutablePointer<Float>,         // (n, n) row-major
    kt: UnsafeMutablePointer<Float>,              // (dh, paddedTo16(n)) scratch
    q: UnsafePointer<Float>, k: UnsafePointer<Float>, ld: Int,  // (n, dh) each, row stride ld
    n: Int, dh: Int, scale: Float
) {
    let np = paddedTo16(n)
    copyPadded(kt, ld: np, k, rowStride: ld, rows: dh, cols: n, transpose: true)
    smallGEMM(c: probs, ldc: n, a: q, rowStride: ld, colStride: 1, b: kt, ldb: np, m: n, n: n, k: dh, alpha: scale)
    softmaxRows(probs, probs, rows: n, cols: n, scale: 1)
}

/// One (batch, head) of attention: P = softmax(scale Q K^T) by rows, O = P V.
public func attentionHeadForward(
    out: UnsafeMutablePointer<Float>, ldo: Int,   // (n, dh), row stride ldo
    probs: UnsafeMutablePointer<Float>,           // (n, n) row-major: P
    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,  // (n, dh) each, row stride ld
    n: Int, dh: Int, scale: Float,
    scratch: UnsafeMutablePointer<Float>          // attentionHeadScratch(n:dh:backward: false) floats
) {
    let (np, dp) = (paddedTo16(n), paddedTo16(dh))
    let kt = scratch, vp = scratch + dh * np     // K^T (dh, np), V (n, dp)
    copyPadded(vp, ld: dp, v, rowStride: ld, rows: n, cols: dh, transpose: false)
    attentionHeadProbabilities(probs, kt: kt, q: q, k: k, ld: ld, n: n, dh: dh, scale: scale)
    smallGEMM(c: out, ldc: ldo, a: probs, rowStride: n, colStride: 1, b: vp, ldb: dp, m: n, n: dh, k: n)
}

/// Multi-head attention forward over a batch in the layout of a ViT's qkv Linear: every (batch, head) through
/// `attentionHeadForward`. Channel c of a qkv row is s D + head dh + t with s in {q, k, v} (D = heads dh).
/// Short sequences copy each batch element's rows first (`attentionCopyMaxFloats`).
public func attentionForward(
    out: UnsafeMutablePointer<Float>,             // (batch, n, D): channel head dh + t
    probs: UnsafeMutablePointer<Float>?,          // (batch, heads, n, n): P, kept for the backward pass; or nil
    qkv: UnsafePointer<Float>,                    // (batch, n, 3 D)
    batch: Int, n: Int, heads: Int, dh: Int, scale: Float, context: KernelContext
) {
    let d = heads * dh, per = n * 3 * d
    let headScratch = attentionHeadScratch(n: n, dh: dh, backward: false) + (probs == nil ? n * n : 0)
    let (threads, copiesRows) = attentionPlan(batch: batch, n: n, heads: heads, dh: dh, context: context)
    // Tasks are images (rows copied, all heads) or (image, head) pairs (rows read in place).
    context.forEach(tasks: copiesRows ? batch : batch * heads, threads: threads) { task, _ in
        let (b, hs) = copiesRows ? (task, 0..<heads) : (task / heads, task % heads..<task % heads + 1)
        context.scratch.withFloats((copiesRows ? per : 0) + headScratch) { buf in
            let x = copiesRows ? UnsafePointer(buf) : qkv + b * per
            if copiesRows { buf.update(from: qkv + b * per, count: per) }
            let scratch = buf + (copiesRows ? per : 0)
            for h in hs {
                let q = x + h * dh
                let p = probs.map { $0 + (b * heads + h) * n * n } ?? scratch + headScratch - n * n
                attentionHeadForward(out: out + b * n * d + h * dh, ldo: d, probs: p, q: q, k: q + d, v: q + 2 * d,
                                     ld: 3 * d, n: n, dh: dh, scale: scale, scratch: scratch)
            }
        }
    }
}

/// A batch element's qkv rows (n x 3D floats) up to this size are copied into a contiguous scratch block
/// before its heads run (and, in the backward pass, its dOut rows in and its dqkv rows out): one sequential
/// read instead of every head gathering short slices of n strided rows (perf put a third of the predictor's
/// head kernel on the first loads of those slices). Same arithmetic, so the same bits; faster on every model
/// measured (docs/performance.md, Decisions). Up to 1 MiB per image (the backward's scratch is then ~2.5 MiB per thread);
/// larger images, unmeasured, keep the per-head gather, and so do batches of fewer than two images per
/// thread, whose heads are the tasks that keep every thread busy.
let attentionCopyMaxFloats = 256 * 1024

/// Threads for a batch of attention heads (one below 4 MFLOP: a Dispatch call costs 5-10 us), and whether each
/// image's rows are copied first (`attentionCopyMaxFloats`; then the images, not the heads, are the tasks).
/// A head also costs ~100 KFLOP's worth of time whatever its size (copies, padding to 16, the softmax): the
/// context encoder's 64 images x 3 heads of 11 tokens are 3 MFLOP but took 0.3 ms forward and 0.37 ms backward
/// on one thread (`bench kernels --filter attention.*ijepa-ctx`, 1.5 us a head), and ran on one thread.
func attentionPlan(batch: Int, n: Int, heads: Int, dh: Int, context: KernelContext) -> (threads: Int, copiesRows: Bool) {
    let work = batch * heads * (2 * n * n * dh + 100_000)
    let t = work < 4_000_000 ? 1 : context.threads
    return (t, n * 3 * heads * dh <= attentionCopyMaxFloats && batch >= 2 * t)
}

/// Backward of `attentionForward`: dqkv (batch, n, 3D) gets dq, dk, dv of every (batch, head), written
/// (`accumulate` false) or added.
public func attentionBackward(
    dqkv: UnsafeMutablePointer<Float>,            // (batch, n, 3 D)
    accumulate: Bool,
    dOut: UnsafePointer<Float>,                   // (batch, n, D)
    probs: UnsafePointer<Float>?,                 // (batch, heads, n, n) from the forward pass, or nil: recomputed
    qkv: UnsafePointer<Float>,                    // (batch, n, 3 D)
    batch: Int, n: Int, heads: Int, dh: Int, scale: Float, context: KernelContext
) {
    let d = heads * dh, per = n * 3 * d
    let headScratch = attentionHeadScratch(n: n, dh: dh, backward: true, keptProbabilities: probs != nil)
    let (threads, copiesRows) = attentionPlan(batch: batch, n: n, heads: heads, dh: dh, context: context)
    let copied = copiesRows ? 2 * per + n * d : 0  // the image's qkv, dqkv and dOut rows
    context.forEach(tasks: copiesRows ? batch : batch * heads, threads: threads) { task, _ in
        let (b, hs) = copiesRows ? (task, 0..<heads) : (task / heads, task % heads..<task % heads + 1)
        context.scratch.withFloats(copied + headScratch) { buf in
            let (x, dx, dO) = copiesRows ? (UnsafePointer(buf), buf + per, UnsafePointer(buf + 2 * per))
                                         : (qkv + b * per, dqkv + b * per, dOut + b * n * d)
            if copiesRows {
                buf.update(from: qkv + b * per, count: per)
                (buf + 2 * per).update(from: dOut + b * n * d, count: n * d)
                if accumulate { dx.update(from: dqkv + b * per, count: per) }
            }
            for h in hs {
                let q = x + h * dh, dq = dx + h * dh
                attentionHeadBackward(dq: dq, dk: dq + d, dv: dq + 2 * d, ldd: 3 * d, accumulate: accumulate,
                                      dOut: dO + h * dh, lddo: d, probs: probs.map { $0 + (b * heads + h) * n * n },
                                      q: q, k: q + d, v: q + 2 * d, ld: 3 * d, n: n, dh: dh, scale: scale,
                                      scratch: buf + copied)
            }
            if copiesRows { (dqkv + b * per).update(from: dx, count: per) }
        }
    }
}

/// Backward of `attentionHeadForward`: dV = P^T dO, dP = dO V^T, dS = scale P * (dP - rowsum(dP * P)),
/// dQ = dS K, dK = dS^T Q. Gradients are written (`accumulate` false) or added.
public func attentionHeadBackward(
    dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
    ldd: Int,                                     // (n, dh) each, row stride ldd
    accumulate: Bool,
    dOut: UnsafePointer<Float>, lddo: Int,        // (n, dh), row stride lddo
    probs kept: UnsafePointer<Float>?,            // (n, n): P from the forward pass, or nil: recomputed here
    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, ld: Int,  // (n, dh) each, row stride ld
    n: Int, dh: Int, scale: Float,
    scratch: UnsafeMutablePointer<Float>          // attentionHeadScratch(n:dh:backward: true, keptProbabilities: kept != nil)
) {
    let (np, dp) = (paddedTo16(n), paddedTo16(dh))
    let vt = scratch, kp = vt + dh * np, qp = kp + n * dp, dop = qp + n * dp  // V^T (dh, np); K, Q, dO (n, dp)
    let dP = dop + n * dp, dS = dP + n * n                                    // (n, n) each
    let probs: UnsafePointer<Float>
    if let kept {
        probs = kept
    } else {
        // K^T (dh, np) 64-byte aligned like the forward pass's (smallGEMM loads its B rows aligned), then P.
        let kt = dP + 2 * paddedTo16(n * n), p = kt + dh * np
        attentionHeadProbabilities(p, kt: kt, q: q, k: k, ld: ld, n: n, dh: dh, scale: scale)
        probs = UnsafePointer(p)
    }
    copyPadded(vt, ld: np, v, rowStride: ld, rows: dh, cols: n, transpose: true)
    copyPadded(kp, ld: dp, k, rowStride: ld, rows: n, cols: dh, transpose: false)
    copyPadded(qp, ld: dp, q, rowStride: ld, rows: n, cols: dh, transpose: false)
    copyPadded(dop, ld: dp, dOut, rowStride: lddo, rows: n, cols: dh, transpose: false)
    // dV = P^T dO: A = P^T through strides (row j of P^T is column j of P).
    smallGEMM(c: dv, ldc: ldd, a: probs, rowStride: 1, colStride: n, b: dop, ldb: dp, m: n, n: dh, k: n,
              accumulate: accumulate)
    smallGEMM(c: dP, ldc: n, a: dOut, rowStride: lddo, colStride: 1, b: vt, ldb: np, m: n, n: n, k: dh)
    dS.update(repeating: 0, count: n * n)
    softmaxBackwardRows(dS, dP, probs, rows: n, cols: n, scale: scale)
    smallGEMM(c: dq, ldc: ldd, a: dS, rowStride: n, colStride: 1, b: kp, ldb: dp, m: n, n: dh, k: n,
              accumulate: accumulate)
    smallGEMM(c: dk, ldc: ldd, a: dS, rowStride: 1, colStride: n, b: qp, ldb: dp, m: n, n: dh, k: n,
              accumulate: accumulate)
}

/// Naive reference of one attention head in Double (tests, benchmark validation): O and P.
public func attentionHeadReference(
    q: [Float], k: [Float], v: [Float], n: Int, dh: Int, scale: Float   // (n, dh) each, contiguous
) -> (out: [Float], probs: [Float]) {
    var p = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
        var row = (0..<n).map { j in (0..<dh).reduce(0.0) { $0 + Double(q[i * dh + $1]) * Double(k[j * dh + $1]) } * Double(scale) }
        let mx = row.max() ?? 0
        row = row.map { exp($0 - mx) }
        let s = row.reduce(0, +)
        for j in 0..<n { p[i * n + j] = row[j] / s }
    }
    var o = [Float](repeating: 0, count: n * dh)
    for i in 0..<n {
        for t in 0..<dh { o[i * dh + t] = Float((0..<n).reduce(0.0) { $0 + p[i * n + $1] * Double(v[$1 * dh + t]) }) }
    }
    return (o, p.map(Float.init))
}

/// Naive reference of `attentionHeadBackward` in Double, from P (as the forward pass saved it): dQ, dK, dV.
public func attentionHeadBackwardReference(
    dOut: [Float], probs: [Float], q: [Float], k: [Float], v: [Float], n: Int, dh: Int, scale: Float  // contiguous
) -> (dq: [Float], dk: [Float], dv: [Float]) {
    let p = probs.map(Double.init)
    var dv = [Double](repeating: 0, count: n * dh), dq = dv, dk = dv
    var dS = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
        let dP = (0..<n).map { j in (0..<dh).reduce(0.0) { $0 + Double(dOut[i * dh + $1]) * Double(v[j * dh + $1]) } }
        let dot = (0..<n).reduce(0.0) { $0 + dP[$1] * p[i * n + $1] }
        for j in 0..<n { dS[i * n + j] = Double(scale) * p[i * n + j] * (dP[j] - dot) }
    }
    for i in 0..<n {
        for j in 0..<n {
            for t in 0..<dh {
                dv[j * dh + t] += p[i * n + j] * Double(dOut[i * dh + t])
                dq[i * dh + t] += dS[i * n + j] * Double(k[j * dh + t])
                dk[j * dh + t] += dS[i * n + j] * Double(q[i * dh + t])
            }
        }
    }
    return (dq.map(Float.init), dk.map(Float.init), dv.map(Float.init))
}
