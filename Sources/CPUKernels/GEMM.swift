/// Blocking parameters of the packed GEMM (BLIS loop structure, docs/gemm.md).
///
/// | param | value | why |
/// |-------|-------|-----|
/// | MR    | 6     | rows of the register tile: 6 x 2 accumulators + 2 B vectors + 1 broadcast = 15 of 16 ymm |
/// | NR    | 16    | columns of the register tile: two SIMD8<Float> per row; 8x8 reached only 54-72 GFLOP/s |
/// | KC    | 256   | depth of a rank-KC update: B micro-panel 256x16x4 = 16 KiB + A micro-panel 6 KiB stay in L1 (32 KiB) |
/// | MC    | 144   | rows of the packed A block: 144x256x4 = 144 KiB, a third of L2 (512 KiB) with room for B panels |
/// | NC    | 3072  | columns of the packed B block: 256x3072x4 = 3 MiB in L3 (32 MiB shared) |
///
/// Only KC changes results (it sets where partial sums are rounded into C); MC and NC and the task split
/// change speed only, so results do not depend on the thread count.
public enum GEMMBlocking {
    public static let MR = 6
    public static let NR = 16
    public static let KC = 256
    public static let MC = 144
    public static let NC = 3072
    /// Work below which a GEMM runs on one thread: ~50 us at 90 GFLOP/s (Dispatch costs 5-10 us per call).
    public static let serialFlops = 4_000_000
    /// Work per task the splitter aims at: ~25 us of compute, >= 4-8 tasks per thread for big problems.
    public static let flopsPerTask = 2_000_000
    public static let maxTasks = 32
    /// Rows of op(A) packed per rank-kc update: 8192 x 256 x 4 = 8 MiB, a quarter of L3.
    public static let MOuter = 8192
}

/// Single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`, row-major with leading dimensions.
///
/// Packs op(A) and op(B) into panels (absorbing the transposes), runs the 6x16 SIMD micro-kernel, and spreads
/// tiles over `threads` threads (default `Parallel.maxThreads`). Results are bit-identical for any thread
/// count. When beta == 0, C is never read (it may hold NaN). Invalid arguments stop with a message.
public func sgemm(
    c: UnsafeMutablePointer<Float>, ldc: Int,       // (m, n) row-major, row stride ldc
    a: UnsafePointer<Float>, lda: Int, transA: Bool, // (m, k), or (k, m) when transA; row stride lda
    b: UnsafePointer<Float>, ldb: Int, transB: Bool, // (k, n), or (n, k) when transB; row stride ldb
    m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0, threads: Int? = nil
) {
    if let problem = gemmArgumentProblem(ldc: ldc, lda: lda, transA: transA, ldb: ldb, transB: transB, m: m, n: n, k: k) {
        fatalError("sgemm: \(problem)")
    }
    if m == 0 || n == 0 { return }
    if k == 0 || alpha == 0 {
        scaleMatrix(c, ldc: ldc, rows: m, cols: n, beta: beta)
        return
    }
    typealias P = GEMMBlocking
    let flops = 2 * m * n * k
    let threads = flops < P.serialFlops ? 1 : (threads ?? Parallel.maxThreads)
    let ncMax = min(n, P.NC)
    let kcMax = min(P.KC, k)
    let mOuterMax = min(m, P.MOuter)
    let bFloats = (ncMax + P.NR - 1) / P.NR * P.NR * kcMax
    let aFloats = (mOuterMax + P.MR - 1) / P.MR * P.MR * kcMax

    ScratchPool.shared.withFloats(bFloats + aFloats) { scratch in
        let bPack = scratch           // ceil(nc/NR) panels of (kc, NR)
        let aPack = scratch + bFloats // ceil(mo/MR) panels of (kc, MR)
        var jc = 0
        while jc < n {
            let nc = min(P.NC, n - jc)
            let panels = (nc + P.NR - 1) / P.NR
            var i0 = 0
            while i0 < m {
                let mo = min(P.MOuter, m - i0)
                let rowPanels = (mo + P.MR - 1) / P.MR
                let plan = GEMMTaskPlan(m: mo, nc: nc, kc: kcMax)
                var pc = 0
                while pc < k {
                    let kc = min(P.KC, k - pc)
                    let betaNow: Float = pc == 0 ? beta : 1
                    // Phase 1: pack op(A)[i0..<i0+mo, pc..<pc+kc] and op(B)[pc..<pc+kc, jc..<jc+nc], shared by all
                    // tasks of phase 2 (each A block is packed once, however the tiles are split).
                    let aGroups = min(rowPanels, 8), bGroups = min(panels, 8)
                    let aPer = (rowPanels + aGroups - 1) / aGroups, bPer = (panels + bGroups - 1) / bGroups
                    let aTasks = (rowPanels + aPer - 1) / aPer, bTasks = (panels + bPer - 1) / bPer
                    Parallel.forEach(tasks: aTasks + bTasks, threads: threads) { t, _ in
                        if t < aTasks {
                            let r0 = t * aPer * P.MR
                            let rows = min(mo, r0 + aPer * P.MR) - r0
                            packA(aPack + r0 * kc, a: a, lda: lda, transA: transA, m0: i0 + r0, mc: rows, k0: pc, kc: kc)
                        } else {
                            let p0 = (t - aTasks) * bPer
                            packB(bPack + p0 * P.NR * kc, b: b, ldb: ldb, transB: transB,
                                  k0: pc, kc: kc, n0: jc, nc: nc, panels: p0..<min(panels, p0 + bPer))
                        }
                    }
                    // Phase 2: tiles of mc rows x panelsPerBlock panels; B micro-panel in L1 across the rows,
                    // the A block in L2 across the panels.
                    Parallel.forEach(tasks: plan.tasks, threads: threads) { task, _ in
                        let mi = task / plan.nBlocks, ni = task % plan.nBlocks
                        let r0 = mi * plan.mc
                        let rEnd = min(mo, r0 + plan.mc)
                        let q0 = ni * plan.panelsPerBlock
                        let q1 = min(panels, q0 + plan.panelsPerBlock)
                        if q0 >= q1 || r0 >= rEnd { return }
                        for q in q0..<q1 {
                            let j = q * P.NR
                            let nr = min(P.NR, nc - j)
                            let bp = UnsafePointer(bPack + q * P.NR * kc)
                            var i = r0
                            while i < rEnd {
                                microKernel6x16(
                                    c: c + (i0 + i) * ldc + jc + j, ldc: ldc, a: UnsafePointer(aPack + i * kc), b: bp,
                                    kc: kc, mr: min(P.MR, rEnd - i), nr: nr, alpha: alpha, beta: betaNow)
                                i += P.MR
                            }
                        }
                    }
                    pc += kc
                }
                i0 += mo
            }
            jc += nc
        }
    }
}

/// How one rank-kc update of an (m, nc) block of C is cut into tiles: row blocks of `mc` rows (a multiple of
/// MR) times column blocks of `panelsPerBlock` NR-panels. Rows are cut first, down to 4 MR (below that the B
/// micro-panel, loaded into L1 for each tile, is reused too little); then columns. Speed only: every C element
/// is computed the same way whatever the plan.
struct GEMMTaskPlan {
    var mc: Int
    var mBlocks: Int
    var nBlocks: Int
    var panelsPerBlock: Int
    var tasks: Int { mBlocks * nBlocks }

    init(m: Int, nc: Int, kc: Int) {
        typealias P = GEMMBlocking
        let panels = (nc + P.NR - 1) / P.NR
        let wanted = max(1, min(P.maxTasks, 2 * m * nc * kc / P.flopsPerTask))
        let rowPanels = (m + P.MR - 1) / P.MR
        var mcPanels = min(P.MC / P.MR, rowPanels)
        if (rowPanels + mcPanels - 1) / mcPanels < wanted {
            mcPanels = max(min(4, rowPanels), (rowPanels + wanted - 1) / wanted)
        }
        let mBlocks = (rowPanels + mcPanels - 1) / mcPanels
        var nBlocks = 1
        if mBlocks < wanted { nBlocks = min(panels, (wanted + mBlocks - 1) / mBlocks) }
        let per = (panels + nBlocks - 1) / nBlocks
        self.mc = mcPanels * P.MR
        self.mBlocks = mBlocks
        self.panelsPerBlock = per
        self.nBlocks = (panels + per - 1) / per
    }
}

/// C = beta * C over a (rows, cols) block; beta == 0 writes zeros without reading C.
@inline(__always)
func scaleMatrix(_ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, cols: Int, beta: Float) {
    for i in 0..<rows {
        let row = c + i * ldc
        if beta == 0 {
            row.update(repeating: 0, count: cols)
        } else if beta != 1 {
            for j in 0..<cols { row[j] *= beta }
        }
    }
}

