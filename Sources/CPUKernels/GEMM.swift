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
    public static var KC: Int { gemmTuningKC }
    public static let MC = 144
    public static let NC = 3072
    /// Work below which a GEMM runs on one thread: ~50 us at 90 GFLOP/s (Dispatch costs 5-10 us per call).
    public static let serialFlops = 4_000_000
    /// Work per task the splitter aims at: ~25 us of compute, >= 4-8 tasks per thread for big problems.
    public static let flopsPerTask = 2_000_000
    public static let maxTasks = 32
    /// Cap on the packed op(B) block (all of k x nc): 4 MiB, an eighth of L3.
    public static let packedBFloats = 1 << 20
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
    let kBlocks = (k + P.KC - 1) / P.KC
    // Columns per jc block: all of op(B)[:, jc..<jc+nc] is packed up front (every kc block), so a task can keep
    // its C block in L2 across the whole k loop; the packed block is capped at `packedBFloats`.
    let ncMax = min(n, max(P.NR, min(P.NC, P.packedBFloats / k / P.NR * P.NR)))
    let panelsMax = (ncMax + P.NR - 1) / P.NR
    let kcMax = min(P.KC, k)
    let workers = max(1, threads)
    let bFloats = panelsMax * P.NR * k
    let aFloats = (min(P.MC, m) + P.MR - 1) / P.MR * P.MR * kcMax

    ScratchPool.shared.withFloats(bFloats + workers * aFloats) { scratch in
        let bPack = scratch  // kBlocks x panels x (kc, NR); block pb starts at pb * KC * panels * NR
        var jc = 0
        while jc < n {
            let nc = min(ncMax, n - jc)
            let panels = (nc + P.NR - 1) / P.NR
            let plan = GEMMTaskPlan(m: m, nc: nc, k: k)
            // Pack op(B)[:, jc..<jc+nc]: one task per (k block, group of panels).
            let groups = min(panels, max(1, 16 / kBlocks))
            let perGroup = (panels + groups - 1) / groups
            let groupCount = (panels + perGroup - 1) / perGroup
            Parallel.forEach(tasks: kBlocks * groupCount, threads: threads) { t, _ in
                let pb = t / groupCount
                let p0 = (t % groupCount) * perGroup
                let pc = pb * P.KC
                let kc = min(P.KC, k - pc)
                packB(bPack + pc * panels * P.NR + p0 * P.NR * kc, b: b, ldb: ldb, transB: transB,
                      k0: pc, kc: kc, n0: jc, nc: nc, panels: p0..<min(panels, p0 + perGroup))
            }
            Parallel.forEach(tasks: plan.tasks, threads: threads) { task, worker in
                let mi = task / plan.nBlocks
                let ni = task % plan.nBlocks
                let i0 = mi * plan.mc
                let mcur = min(plan.mc, m - i0)
                let q0 = ni * plan.panelsPerBlock
                let q1 = min(panels, q0 + plan.panelsPerBlock)
                if q0 >= q1 { return }
                let aPack = scratch + bFloats + worker * aFloats
                let rowPanels = (mcur + P.MR - 1) / P.MR
                var pc = 0
                while pc < k {
                    let kc = min(P.KC, k - pc)
                    let betaNow: Float = pc == 0 ? beta : 1
                    packA(aPack, a: a, lda: lda, transA: transA, m0: i0, mc: mcur, k0: pc, kc: kc)
                    let bBlock = bPack + pc * panels * P.NR
                    for q in q0..<q1 {
                        let j = q * P.NR
                        let nr = min(P.NR, nc - j)
                        let bp = UnsafePointer(bBlock + q * P.NR * kc)
                        let cBlock = c + i0 * ldc + jc + j
                        for r in 0..<rowPanels {
                            let i = r * P.MR
                            microKernel6x16(
                                c: cBlock + i * ldc, ldc: ldc, a: UnsafePointer(aPack + i * kc), b: bp,
                                kc: kc, mr: min(P.MR, mcur - i), nr: nr, alpha: alpha, beta: betaNow)
                        }
                    }
                    pc += kc
                }
            }
            jc += nc
        }
    }
}

/// How the (m, nc) block of C of one jc step is cut into tasks: row blocks of `mc` rows times column
/// blocks of `panelsPerBlock` NR-panels. Depends on the problem size only.
struct GEMMTaskPlan {
    var mc: Int
    var mBlocks: Int
    var nBlocks: Int
    var panelsPerBlock: Int
    var mcPanels: Int { (mc + GEMMBlocking.MR - 1) / GEMMBlocking.MR }
    var tasks: Int { mBlocks * nBlocks }

    init(m: Int, nc: Int, k: Int) {
        typealias P = GEMMBlocking
        let panels = (nc + P.NR - 1) / P.NR
        let wanted = max(1, min(gemmTuningMaxTasks, 2 * m * nc * k / P.flopsPerTask))
        // Prefer splitting rows (each task then packs its A block once); keep >= 4 MR rows per block so the
        // B micro-panel in L1 is reused enough.
        var mc = min(gemmTuningMC, m)
        if (m + mc - 1) / mc < wanted {
            let rows = (m + wanted - 1) / wanted
            mc = max(4 * P.MR, (rows + P.MR - 1) / P.MR * P.MR)
            mc = min(mc, gemmTuningMC)
        }
        mc = max(1, mc)
        let mBlocks = (m + mc - 1) / mc
        var nBlocks = 1
        if mBlocks < wanted {
            nBlocks = min(panels, (wanted + mBlocks - 1) / mBlocks)
        }
        let per = (panels + nBlocks - 1) / nBlocks
        self.mc = mc
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

nonisolated(unsafe) public var gemmTuningMaxTasks = 32
nonisolated(unsafe) public var gemmTuningMC = 144
nonisolated(unsafe) public var gemmTuningKC = 256
