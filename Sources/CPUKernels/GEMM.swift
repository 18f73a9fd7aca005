/// Blocking parameters of the packed GEMM (BLIS loop structure, docs/gemm.md).
///
/// | param | value | why |
/// |-------|-------|-----|
/// | MR    | 6 / 12 | rows of the register tile: AVX2 6 x 2 accumulators + 2 B vectors + 1 broadcast = 15 of 16 ymm; AVX-512 12 x 2 + 3 = 27 of 32 zmm |
/// | NR    | 16 / 32 | columns of the register tile: two SIMD8<Float> per row (AVX2), two SIMD16<Float> (AVX-512); 8x8 reached only 54-72 GFLOP/s |
/// | KC    | 384   | depth of a rank-KC update: B micro-panel 384x16x4 = 24 KiB in L1 (32 KiB), A micro-panel (9 KiB) from L2 |
/// | MC    | 96    | rows of the packed A block: 96x384x4 = 144 KiB, a third of L2 (512 KiB) with room for B panels |
/// | NC    | 3072  | columns of the packed B block: 384x3072x4 = 4.5 MiB in L3 (32 MiB shared) |
///
/// KC 384 and MC 96 were the fastest pair over the 48 ViT and I-JEPA shapes of `bench gemm --ab` (the values
/// tried and their ratios: docs/performance.md, Decisions).
///
/// Only KC changes results (it sets where partial sums are rounded into C); MC and NC and the task split
/// change speed only, so results do not depend on the thread count.
public enum GEMMBlocking {
    /// Register tile: 6 x 16 on AVX2, 12 x 32 on AVX-512 builds (compile-time constants).
    @inlinable public static var MR: Int { SIMDPath.hasAVX512F ? 12 : 6 }
    @inlinable public static var NR: Int { SIMDPath.hasAVX512F ? 32 : 16 }
    /// Defaults of the tunable values; a call uses its `KernelContext.blocking`.
    public static let KC = 384
    public static let MC = 96
    /// MC when A is transposed (the weight gradients, A (k, m) with a long k): a task packs 768 columns of each
    /// of A's rows, a whole row of the narrow ones (m 192-768), read front to back, instead of 384-byte pieces of
    /// rows several KiB apart, which missed the prefetchers (11 % of vit-s16.fc1.wgrad in perf at 1.5 ns per
    /// float), and fewer row blocks re-read the packed B. Its A block (768 x 384 floats, 1.1 MiB) no longer
    /// fits L2, yet it was the fastest on the 16 weight-gradient shapes (docs/performance.md, Decisions).
    public static let MCTransposedA = 768
    public static let NC = 3072
    /// Rows up to which a GEMM's row blocks are one block of all its rows (MC is ignored): AVX-512 builds 264
    /// (22 panels; A block 264 x 384 x 4 = 396 KiB of the 2 MiB L2 of the Xeons that have full-width AVX-512),
    /// so that a batch-1 ViT's op(B) (a packed weight, read from memory) streams once instead of once per 96
    /// rows; AVX2 builds 0 (off: Zen 3's L2 is 512 KiB). The task plan may still cut the rows on more threads.
    public static let mcWhole = SIMDPath.hasAVX512F ? 264 : 0
    /// How far ahead of its B reads the AVX-512 register tile prefetches (bytes; the B panel streams from L2,
    /// or from memory on a packed weight's first pass).
    public static let prefetchBytes = 1024
    /// Whether the AVX-512 tiles after a chunk's first A panel prefetch the B panels the task reads next.
    public static let farPrefetch = true
    /// Whether, with op(B) packed ahead (an inference weight), a k group's last chunk prefetches the next
    /// group's first B panels as the chunks before it prefetch their successors (otherwise each group's first
    /// chunk, 3 of a batch-1 ViT-H/14 fc2's 40 panels in each of its 14 groups, came from memory a line at a
    /// time). ViT-H/14 batch-1 embedding at 1 thread 1.03x and 1.07x faster, at 2 threads 0.96x and 1.00x;
    /// ViT-S/16 0.97-1.01x, noise (`bench embed --ab FARG=0`, 12-80 rounds, 2026-12-07).
    public static let farPrefetchAcrossGroups = true
    /// Tile order within a task's column chunk: each A micro-panel (kc x MR) outer, the chunk's B micro-panels
    /// streaming past it, or the reverse (B panel outer, A panels streaming).
    public static let aPanelOuter = SIMDPath.hasAVX512F
    /// How a short A (m <= mcWhole: a batch-1 ViT's 196 or 256 tokens) is cut on several threads: true, one block
    /// of rows per thread, each task packing its own rows and reading all of op(B); false, the columns only, op(A)
    /// packed once per k group in a shared buffer (a region of its own before the first group's tasks).
    /// Rows: batch-1 embeddings on 2 threads 1.05-1.07x faster (ViT-S/16), 1.05x (ViT-H/14) (`bench embed --ab
    /// ROWS=0`); each thread's rows of a layer's output stay in its own L2 for the next GEMM's packing, and a
    /// GEMM opens one parallel region instead of two (the shared packing had its own).
    public static let shortARows = true

    /// The blocking values `bench gemm --ab` varies, in one process, against these defaults; a kernel context
    /// carries one (`KernelContext.blocking`). A different KC gives different bits.
    @_spi(Tuning) public struct Tuning: Sendable, Equatable, CustomStringConvertible {
        public var kc = GEMMBlocking.KC
        public var mc = GEMMBlocking.MC
        public var maxTileFloats = GEMMBlocking.maxTileFloats
        public var mcTransposedA = GEMMBlocking.MCTransposedA
        public var aPanelOuter = GEMMBlocking.aPanelOuter
        public var mcWhole = GEMMBlocking.mcWhole
        public var prefetchBytes = GEMMBlocking.prefetchBytes
        public var farPrefetch = GEMMBlocking.farPrefetch
        public var farAcrossGroups = GEMMBlocking.farPrefetchAcrossGroups
        public var shortARows = GEMMBlocking.shortARows
        public init() {}
        /// In the form `bench gemm --ab` reads.
        public var description: String {
            "KC=\(kc),MC=\(mc),MCT=\(mcTransposedA),MCW=\(mcWhole),TILE=\(maxTileFloats),AOUTER=\(aPanelOuter ? 1 : 0),PF=\(prefetchBytes),FAR=\(farPrefetch ? 1 : 0),FARG=\(farAcrossGroups ? 1 : 0),ROWS=\(shortARows ? 1 : 0)"
        }
    }

    /// Work below which a GEMM runs on one thread: ~50 us at 90 GFLOP/s (Dispatch costs 5-10 us per call).
    public static let serialFlops = 4_000_000
    /// Work per task the splitter aims at: ~25 us of compute, >= 4-8 tasks per thread for big problems.
    public static let flopsPerTask = 2_000_000
    public static let maxTasks = 32
    /// Packed op(B) of one k group: 1M floats = 4 MiB, so it stays in L3 (32 MiB, shared).
    public static let packedBFloats = 1 << 20
    /// A stripe a task packs for a k group: 80K floats = 320 KiB (2 k blocks of 96 rows), so it stays in L2:
    /// a stripe of all k (2.4 MiB for k 4096) went through L3 and cost the weight gradients 10-20 %.
    public static let stripeFloats = 80 * 1024
    /// C block that a task keeps across a k group: 32K floats = 128 KiB, so it, the A block of one k block
    /// (144 KiB) and the B panels in flight share L2 (512 KiB).
    public static let maxTileFloats = 1 << 15
    /// Small C (at most this many floats) with at least `kSplitMinBlocks` KC blocks, on more than one thread:
    /// the k blocks run as parallel tasks (`sgemmKSplit`). The predictor's weight gradients (96..384 x 96, k 5376)
    /// otherwise gave each k group's few tiles to the threads behind one barrier per ~0.1 ms of work and
    /// ran 1.07-1.16x faster on 2 threads than on 1.
    public static let kSplitMaxFloats = 1 << 17
    public static let kSplitMinBlocks = 4
    /// The partial products of a k split (blocks x m x n floats) stay below 16 MiB.
    public static let kSplitMaxPartialFloats = 1 << 22
}

/// Single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C (+ bias) (+ residual)`, row-major with leading dimensions.
///
/// Packs op(A) and op(B) into panels (absorbing the transposes), runs the SIMD micro-kernel (6x16 on AVX2, 12x32 on AVX-512), and spreads
/// tiles over the context's threads with its blocking and scratch memory. Results are bit-identical for any
/// thread count. When beta == 0, C is never read (it may hold NaN). `bias` (n values) is added to every row of C
/// in the last k block's store, after the alpha/beta expression is rounded: the same bits as a separate
/// `addBias` pass without its extra trip through C (a Linear layer's forward). `residual` ((m, n), with
/// C's row stride, not aliasing C) is added last in that same store: the bits of a separate
/// elementwise add of the residual stream, without that pass's two reads and one write (a transformer
/// block's proj and fc2). `epilogue` (GELU, or GELU's derivative) is applied to each finished block of C after
/// that, with the bits of a separate pass. Invalid arguments stop with a message.
public func sgemm(
    c: UnsafeMutablePointer<Float>, ldc: Int,       // (m, n) row-major, row stride ldc
    a: UnsafePointer<Float>, lda: Int, transA: Bool, // (m, k), or (k, m) when transA; row stride lda
    b: UnsafePointer<Float>, ldb: Int, transB: Bool, // (k, n), or (n, k) when transB; row stride ldb
    m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0, bias: UnsafePointer<Float>? = nil,  // bias: (n) or nil
    residual: UnsafePointer<Float>? = nil,          // (m, n) row-major, row stride ldc, or nil
    epilogue: GEMMEpilogue? = nil,                  // applied to each finished block of C, after bias and residual
    aPrologue: GEMMPrologue? = nil,                 // applied to each element of A as it is packed (A not transposed)
    bPrologue: GEMMPrologue? = nil,                 // applied to each element of B as it is packed (B not transposed)
    context: KernelContext
) {
    sgemm(c: c, ldc: ldc, a: a, lda: lda, transA: transA, b: b, ldb: ldb, transB: transB, m: m, n: n, k: k, alpha: alpha,
          beta: beta, bias: bias, residual: residual, epilogue: epilogue, aPrologue: aPrologue, bPrologue: bPrologue,
          packedB: nil, context: context)
}

/// `sgemm` with op(B) packed ahead (`PackedWeight`: an inference weight packed once), which replaces the
/// packing of op(B); the bits are the same. `b` and `ldb` still describe op(B) (the argument checks read them).
package func sgemm(
    c: UnsafeMutablePointer<Float>, ldc: Int,       // (m, n) row-major, row stride ldc
    a: UnsafePointer<Float>, lda: Int, transA: Bool, // (m, k), or (k, m) when transA; row stride lda
    b: UnsafePointer<Float>, ldb: Int, transB: Bool, // (k, n), or (n, k) when transB; row stride ldb
    m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0, bias: UnsafePointer<Float>? = nil,  // bias: (n) or nil
    residual: UnsafePointer<Float>? = nil,          // (m, n) row-major, row stride ldc, or nil
    epilogue: GEMMEpilogue? = nil, aPrologue: GEMMPrologue? = nil, bPrologue: GEMMPrologue? = nil,
    packedB: GEMMPackedB?,                          // op(B) packed with this context's KC, or nil
    context: KernelContext
) {
    if let problem = gemmArgumentProblem(ldc: ldc, lda: lda, transA: transA, ldb: ldb, transB: transB, m: m, n: n, k: k) {
        fatalError("sgemm: \(problem)")
    }
    precondition(residual.map { $0 != UnsafePointer(c) } ?? true, "sgemm: residual must not be C itself")
    precondition(aPrologue == nil || !transA, "sgemm: a prologue on A needs A not transposed")
    precondition(bPrologue == nil || !transB, "sgemm: a prologue on B needs B not transposed")
    if let packedB {
        precondition(packedB.k == k && packedB.n == n && packedB.kc == context.blocking.kc && bPrologue == nil,
                     "sgemm: packed B (\(packedB.k) x \(packedB.n), KC \(packedB.kc)) does not fit (\(k) x \(n), KC \(context.blocking.kc))")
    }
    if m == 0 || n == 0 { return }
    if k == 0 || alpha == 0 {
        scaleMatrix(c, ldc: ldc, rows: m, cols: n, beta: beta)
        if let bias { for i in 0..<m { for j in 0..<n { c[i * ldc + j] += bias[j] } } }
        if let residual { for i in 0..<m { for j in 0..<n { c[i * ldc + j] += residual[i * ldc + j] } } }
        if let epilogue { for i in 0..<m { applyEpilogue(epilogue, c: c, offset: i * ldc, ldc: ldc, rows: 1, cols: n) } }
        return
    }
    typealias P = GEMMBlocking
    let flops = 2 * m * n * k
    let threads = flops < P.serialFlops ? 1 : context.threads
    let tuning = context.blocking
    let KC = tuning.kc
    let kBlocks = (k + KC - 1) / KC
    let shortA = !transA && m <= tuning.mcWhole  // on several threads: a shared packed op(A) (below)
    if threads > 1, !shortA, kBlocks >= P.kSplitMinBlocks, m * n <= P.kSplitMaxFloats, kBlocks * m * n <= P.kSplitMaxPartialFloats {
        sgemmKSplit(c: c, ldc: ldc, a: a, lda: lda, transA: transA, b: b, ldb: ldb, transB: transB, m: m, n: n, k: k,
                    alpha: alpha, beta: beta, bias: bias, residual: residual, epilogue: epilogue, aPrologue: aPrologue,
                    bPrologue: bPrologue, packedB: packedB, threads: threads, context: context)
        return
    }
    let ncMax = min(n, P.NC)
    let panelsMax = (ncMax + P.NR - 1) / P.NR
    // k blocks per group: as many as keep the group's packed B under `packedBFloats` and a task's A stripe
    // (its rows x the group's depth) under `stripeFloats`, so the stripe stays in L2. On several threads the
    // plan gives a task fewer rows than mcMax, so its groups are deeper: fewer groups, fewer barriers
    // (docs/performance.md: the weight gradients and the context encoder's GEMMs at 2 threads).
    let mcMax = transA ? tuning.mcTransposedA : m <= tuning.mcWhole ? (m + P.MR - 1) / P.MR * P.MR : tuning.mc
    // A short A (m <= mcWhole: a batch-1 ViT's 196 or 256 tokens) on several threads (`shortARows`): one row
    // block per thread, or the columns only with op(A) packed once per k group into a buffer every task reads.
    // Never rows and columns: each task packed its rows again per column block (with the LayerNorm or GELU
    // prologue).
    let sharedA = threads > 1 && shortA && !tuning.shortARows
    let rowsPerThread = threads > 1 && shortA && tuning.shortARows
    let bBlocks = max(1, P.packedBFloats / (panelsMax * P.NR * KC))
    let taskPlan = GEMMTaskPlan(m: m, nc: ncMax, k: min(k, bBlocks * KC), threads: threads, mcMax: mcMax,
                                columnsOnly: sharedA, rowsPerThread: rowsPerThread)
    let taskRows = max(taskPlan.mc, taskPlan.lastRows)  // the largest row block (the last one may be the larger)
    let groupBlocks = max(1, min(bBlocks, P.stripeFloats / (taskRows * KC)))
    let kgMax = min(k, groupBlocks * KC)
    let mcPadMax = (min(m, mcMax) + P.MR - 1) / P.MR * P.MR
    let bFloats = panelsMax * P.NR * kgMax
    let aFloats = mcPadMax * kgMax + packASlack

    // Loop order: jc (NC columns) > k group > tasks (mc rows x panels) > column chunk > k block > NR panel >
    // MR panel. op(B) for a group of k blocks is packed once and shared (L3); each task packs its stripe of
    // op(A) for the group's k blocks once, then walks its columns in chunks whose C block (`maxTileFloats`)
    // stays in L2 across the group's k blocks. Measured (docs/performance.md): packing all of A or a 12 MiB B
    // up front wrote it through DRAM (a third of the time of 4096x192x768, 192x768x4096); one k block at a
    // time re-read all of C from L3 or DRAM for every block (square 2048 at 0.7x the same-run numpy baseline).
    // On several threads, two packed-B buffers: the next group's op(B) is packed while this group's tasks run.
    // Shared op(A) likewise: two buffers, the next group's packed with this group's tasks.
    let bBuffers = packedB != nil ? 0 : threads > 1 ? 2 : 1
    let aBuffers = sharedA ? 2 : threads
    context.scratch.withFloats(bBuffers * bFloats + aBuffers * aFloats) { scratch in
        let aStripes = scratch + bBuffers * bFloats  // per worker (or per group when shared), at aStripes + i * aFloats
        let kGroups = (k + kgMax - 1) / kgMax
        let groups = (n + P.NC - 1) / P.NC * kGroups  // jc major, then k0
        func bGroup(_ g: Int) -> GEMMBPack {
            let jc = g / kGroups * P.NC, k0 = g % kGroups * kgMax
            let nc = min(P.NC, n - jc), kg = min(k - k0, kgMax), panels = (nc + P.NR - 1) / P.NR
            if let packedB {  // nothing to pack: the group reads its panels where they are
                return GEMMBPack(b: b, ldb: ldb, transB: transB, prologue: nil,
                                 dst: UnsafeMutablePointer(mutating: packedB.base + k0 * packedB.rowFloats), jc: jc, nc: nc,
                                 panels: panels, k0: k0, kg: kg, kc: KC, splits: 0, rowFloats: packedB.rowFloats,
                                 panel0: jc / P.NR)
            }
            return GEMMBPack(b: b, ldb: ldb, transB: transB, prologue: bPrologue, dst: scratch + g % max(1, bBuffers) * bFloats,
                             jc: jc, nc: nc, panels: panels, k0: k0, kg: kg, kc: KC,
                             splits: threads == 1 ? 1 : max(1, 8 / ((kg + KC - 1) / KC)), rowFloats: panels * P.NR, panel0: 0)
        }
        func aGroup(_ g: Int) -> GEMMAPack? {
            guard sharedA else { return nil }
            let k0 = g % kGroups * kgMax
            return GEMMAPack(a: a, lda: lda, prologue: aPrologue, dst: aStripes + g % 2 * aFloats, m: m, k0: k0,
                             kg: min(k - k0, kgMax), kc: KC, tasks: min((m + P.MR - 1) / P.MR, 2 * threads))
        }
        var pack = bGroup(0)
        var aPack = aGroup(0)
        let first = pack, firstA = aPack
        if first.tasks + (firstA?.tasks ?? 0) > 0 {
            context.forEach(tasks: first.tasks + (firstA?.tasks ?? 0), threads: threads) { t, _ in
                if t < first.tasks { packBTask(first, task: t) } else { packATask(firstA!, task: t - first.tasks) }
            }
        }
        for g in 0..<groups {
            var group = GEMMGroup(c: c, ldc: ldc, a: a, lda: lda, transA: transA, m: m, k: k, alpha: alpha, beta: beta,
                                  bias: bias, residual: residual, epilogue: epilogue, aPrologue: aPrologue,
                                  bPack: pack.dst, bRowFloats: pack.rowFloats, bPanel0: pack.panel0, jc: pack.jc, nc: pack.nc,
                                  panels: pack.panels, k0: pack.k0, kg: pack.kg, kc: KC, maxTileFloats: tuning.maxTileFloats,
                                  aPanelOuter: tuning.aPanelOuter, aShared: aPack?.dst, prefetchBytes: tuning.prefetchBytes,
                                  farPrefetch: tuning.farPrefetch)
            let plan = GEMMTaskPlan(m: m, nc: pack.nc, k: pack.kg, threads: threads, mcMax: mcMax, columnsOnly: sharedA,
                                    rowsPerThread: rowsPerThread)
            // The next group's op(B) is packed by the same parallel-for, after this group's tasks, into the other
            // buffer (one thread: the same buffer, after the tasks have read it): one barrier a group instead of
            // two, and the packing fills the time a thread would wait for the other's last task (measured:
            // docs/performance.md, Decisions).
            let next = g + 1 < groups ? bGroup(g + 1) : nil
            let nextA = g + 1 < groups ? aGroup(g + 1) : nil
            if let next, packedB != nil, tuning.farAcrossGroups {
                let kn = min(KC, next.kg)
                group.nextB = UnsafePointer(next.dst + next.panel0 * P.NR * kn)
                group.nextKc = kn
                group.nextPanels = next.panels
            }
            let bTasks = next?.tasks ?? 0
            context.forEach(tasks: plan.tasks + bTasks + (nextA?.tasks ?? 0), threads: threads) { task, worker in
                if task < plan.tasks {
                    gemmTask(group, plan: plan, task: task, aStripe: group.aShared ?? aStripes + worker * aFloats)
                } else if task < plan.tasks + bTasks {
                    packBTask(next!, task: task - plan.tasks)
                } else {
                    packATask(nextA!, task: task - plan.tasks - bTasks)
                }
            }
            if let next { pack = next }
            aPack = nextA
        }
    }
}

/// One k group's packing of op(B): its k blocks, each cut into `splits` tasks (row-major B by k rows, each
/// row read front to back; transposed B by panels, each panel's columns rows of B).
struct GEMMBPack {
    var b: UnsafePointer<Float>, ldb: Int, transB: Bool  // (k, n), or (n, k) when transB
    var prologue: GEMMPrologue?
    var dst: UnsafeMutablePointer<Float>                 // per k block pc, at dst + pc * panels * NR: panels of (kc, NR)
    var jc: Int, nc: Int, panels: Int                    // columns jc..<jc+nc of op(B), in `panels` NR-panels
    var k0: Int, kg: Int                                 // rows k0..<k0+kg of op(B)
    var kc: Int                                          // the call's KC
    var splits: Int                                      // 0: packed ahead (`GEMMPackedB`), nothing to do
    var rowFloats: Int                                   // floats per k row of a block: panels * NR, or packed ahead
    var panel0: Int                                      // the group's first panel within a block (packed ahead)
    var tasks: Int { (kg + kc - 1) / kc * splits }
}

/// Task `task` of a group's op(B) packing (out of line, as `gemmTask`, to keep `sgemm` small).
@inline(never)
func packBTask(_ p: GEMMBPack, task t: Int) {
    typealias P = GEMMBlocking
    let kb = t / p.splits, s = t % p.splits
    let pc = kb * p.kc, kc = min(p.kc, p.kg - pc)
    let dst = p.dst + pc * p.panels * P.NR
    if let prologue = p.prologue {
        let per = (kc + p.splits - 1) / p.splits
        packBPrologue(dst, b: p.b, ldb: p.ldb, k0: p.k0 + pc, kc: kc, rows: min(kc, s * per)..<min(kc, (s + 1) * per),
                      n0: p.jc, nc: p.nc, panels: 0..<p.panels, prologue: prologue)
    } else if p.transB {
        let per = (p.panels + p.splits - 1) / p.splits
        packB(dst, b: p.b, ldb: p.ldb, transB: true, k0: p.k0 + pc, kc: kc, rows: 0..<kc,
              n0: p.jc, nc: p.nc, panels: min(p.panels, s * per)..<min(p.panels, (s + 1) * per))
    } else {
        let per = (kc + p.splits - 1) / p.splits
        packB(dst, b: p.b, ldb: p.ldb, transB: false, k0: p.k0 + pc, kc: kc,
              rows: min(kc, s * per)..<min(kc, (s + 1) * per), n0: p.jc, nc: p.nc, panels: 0..<p.panels)
    }
}

/// One k group's packing of op(A) into a buffer its tasks share (`sharedA`): all m rows, in `tasks` runs of
/// whole MR panels.
struct GEMMAPack {
    var a: UnsafePointer<Float>, lda: Int                // A (m, k) row-major (not transposed)
    var prologue: GEMMPrologue?
    var dst: UnsafeMutablePointer<Float>                 // per k block pc, at dst + pc * mPad: panels of (kc, MR)
    var m: Int, k0: Int, kg: Int                         // rows 0..<m, the group's k range k0..<k0+kg
    var kc: Int                                          // the call's KC
    var tasks: Int
}

/// Task `task` of a group's shared op(A) packing: its run of panels in every k block of the group. The
/// panels of different tasks do not overlap (`packTwelveRowsBy8` writes nothing past a panel's end).
@inline(never)
func packATask(_ p: GEMMAPack, task t: Int) {
    typealias P = GEMMBlocking
    let rowPanels = (p.m + P.MR - 1) / P.MR, mPad = rowPanels * P.MR
    let per = (rowPanels + p.tasks - 1) / p.tasks
    let r0 = min(p.m, t * per * P.MR), r1 = min(p.m, (t + 1) * per * P.MR)
    if r0 >= r1 { return }
    var pc = 0
    while pc < p.kg {
        let kc = min(p.kc, p.kg - pc)
        let dst = p.dst + pc * mPad + r0 * kc
        if let prologue = p.prologue {
            packAPrologue(dst, a: p.a, lda: p.lda, m0: r0, mc: r1 - r0, k0: p.k0 + pc, kc: kc, prologue: prologue)
        } else {
            packA(dst, a: p.a, lda: p.lda, transA: false, m0: r0, mc: r1 - r0, k0: p.k0 + pc, kc: kc, aColumns: p.m)
        }
        pc += kc
    }
}

/// What every task of one k group shares: the call's operands and the group's packed op(B).
struct GEMMGroup {
    var c: UnsafeMutablePointer<Float>, ldc: Int        // (m, n) row-major, row stride ldc
    var a: UnsafePointer<Float>, lda: Int, transA: Bool  // (m, k), or (k, m) when transA
    var m: Int, k: Int, alpha: Float, beta: Float
    var bias: UnsafePointer<Float>?                      // (n) or nil
    var residual: UnsafePointer<Float>?                  // (m, n), row stride ldc, or nil
    var epilogue: GEMMEpilogue?, aPrologue: GEMMPrologue?
    var bPack: UnsafeMutablePointer<Float>               // per k block pc, at bPack + pc * bRowFloats: panels of (kc, NR)
    var bRowFloats: Int, bPanel0: Int                    // the group's panels: from bPanel0 on in each block
    var jc: Int, nc: Int, panels: Int                    // the group's columns jc..<jc+nc of C, in `panels` NR-panels
    var k0: Int, kg: Int                                 // the group's k range k0..<k0+kg
    var kc: Int, maxTileFloats: Int                      // the call's blocking
    var aPanelOuter: Bool                                // tile order: A panels outer (B streams) or B panels outer
    var aShared: UnsafeMutablePointer<Float>?            // op(A) of all rows packed for the group (`GEMMAPack`), or nil
    var prefetchBytes: Int, farPrefetch: Bool            // the call's blocking
    // The next group's first k block when op(B) is packed ahead (nil otherwise: its packing has not run yet):
    // panel 0 of its columns, its depth and panel count. The group's last chunk prefetches from there.
    var nextB: UnsafePointer<Float>? = nil, nextKc = 0, nextPanels = 0
}

/// One task of a k group: packs its stripe of op(A) (its rows, the group's k blocks) once, unless the group's
/// op(A) is packed and shared (`GEMMAPack`, a short A on several threads), then runs the micro-kernel over its
/// columns in chunks whose C block stays in L2 across the k blocks.
///
/// Out of line on purpose: inlined into `sgemm`'s closure, a few more lines elsewhere in `sgemm` pushed it
/// past the optimizer's inlining budget, the stdlib's unaligned SIMD loads became calls, and every GEMM ran
/// at a quarter of its speed (tools/test.sh checks that they stay inlined).
@inline(never)
func gemmTask(
    _ g: GEMMGroup, plan: GEMMTaskPlan, task: Int,
    aStripe: UnsafeMutablePointer<Float>  // per k block pc, at aStripe + pc * mcPad: ceil(mc/MR) panels of (kc, MR)
) {
    typealias P = GEMMBlocking
    let (c, ldc, a, lda, transA, m, k) = (g.c, g.ldc, g.a, g.lda, g.transA, g.m, g.k)
    let (alpha, beta, bias, residual, epilogue) = (g.alpha, g.beta, g.bias, g.residual, g.epilogue)
    let (bPack, jc, nc, panels, k0, kg) = (g.bPack, g.jc, g.nc, g.panels, g.k0, g.kg)
    let mi = task / plan.nBlocks, ni = task % plan.nBlocks
    let i0 = mi * plan.mc
    let mc = mi == plan.mBlocks - 1 ? m - i0 : min(plan.mc, m - i0)  // the last block takes the rest (`lastRows`)
    let q0 = ni * plan.panelsPerBlock
    let q1 = min(panels, q0 + plan.panelsPerBlock)
    if q0 >= q1 || mc <= 0 { return }
    let mcPad = (mc + P.MR - 1) / P.MR * P.MR
    var pc = 0
    while pc < kg && g.aShared == nil {
        let kc = min(g.kc, kg - pc)
        if let aPrologue = g.aPrologue {
            packAPrologue(aStripe + pc * mcPad, a: a, lda: lda, m0: i0, mc: mc, k0: k0 + pc, kc: kc,
                          prologue: aPrologue)
        } else {
            packA(aStripe + pc * mcPad, a: a, lda: lda, transA: transA, m0: i0, mc: mc,
                  k0: k0 + pc, kc: kc, aColumns: m)
        }
        pc += kc
    }
    let chunk = max(1, g.maxTileFloats / (mcPad * P.NR))
    var qc = q0
    while qc < q1 {
        let qe = min(q1, qc + chunk)
        pc = 0
        while pc < kg {
            let kc = min(g.kc, kg - pc)
            let betaNow: Float = k0 + pc == 0 ? beta : 1
            let lastBlock = k0 + pc + kc == k
            let aBlock = aStripe + pc * mcPad
            let bBlock = bPack + pc * g.bRowFloats + g.bPanel0 * P.NR * kc
            // The B panels this task reads next (this chunk's next k block, else the next chunk's first): the tiles
            // after the first A panel's prefetch them one line per k step while they compute on B already in L2,
            // so that a packed weight's first pass from memory (batch 1) does not wait for each line.
            var next = UnsafeRawPointer(bBlock), nextBytes = 0
            if pc + kc < kg {
                let kn = min(g.kc, kg - pc - kc)
                next = UnsafeRawPointer(bPack + (pc + kc) * g.bRowFloats + g.bPanel0 * P.NR * kn + qc * P.NR * kn)
                nextBytes = (qe - qc) * P.NR * kn * 4
            } else if qe < q1 {
                let kn = min(g.kc, kg)
                next = UnsafeRawPointer(bPack + g.bPanel0 * P.NR * kn + qe * P.NR * kn)
                nextBytes = (min(q1, qe + chunk) - qe) * P.NR * kn * 4
            } else if let nextB = g.nextB, q0 < g.nextPanels {
                // The group's last block of its last chunk: the next group's first chunk of the same panels.
                next = UnsafeRawPointer(nextB + q0 * P.NR * g.nextKc)
                nextBytes = (min(g.nextPanels, q0 + chunk) - q0) * P.NR * g.nextKc * 4
            }
            var far = 0  // bytes of `next` handed out to tiles so far
            // One tile: rows i..<i+MR of the task, panel q of the chunk.
            @inline(__always) func tile(_ i: Int, _ q: Int) {
                let j = q * P.NR
                let nr = min(P.NR, nc - j)
                let bp = UnsafePointer(bBlock + q * P.NR * kc)
                let cb = c + (i0 + i) * ldc + jc + j, ab = UnsafePointer(aBlock + i * kc), mr = min(P.MR, mc - i)
                let bs = lastBlock ? bias.map { $0 + jc + j } : nil
                let rs = lastBlock ? residual.map { $0 + (i0 + i) * ldc + jc + j } : nil
                // A tile of a later A panel takes the next kc lines of `next` (64 bytes a k step); otherwise it
                // re-prefetches its own first line (an L1 hit), so the loop has no branch.
                let farStep = i > 0 && far < nextBytes ? 64 : 0
                let farStart = farStep > 0 ? next + far : UnsafeRawPointer(bp)
                far += farStep * kc
                microKernel(c: cb, ldc: ldc, a: ab, b: bp, kc: kc, mr: mr, nr: nr, alpha: alpha, beta: betaNow,
                            bias: bs, residual: rs, prefetchBytes: g.prefetchBytes, farPrefetch: farStart,
                            farStep: g.farPrefetch ? farStep : 0)
            }
            if g.aPanelOuter {
                var i = 0
                while i < mc {
                    for q in qc..<qe { tile(i, q) }
                    i += P.MR
                }
            } else {
                for q in qc..<qe {
                    var i = 0
                    while i < mc {
                        tile(i, q)
                        i += P.MR
                    }
                }
            }
            pc += kc
        }
        if let epilogue, k0 + kg == k {
            // On the finished (mc, chunk) block while it is in L2: per tile (in L1) the epilogue's
            // reads of GELU's input came 64 bytes per row and missed the prefetchers
            // (`ijepa bench mlp`, training 0.87-0.94x the separate ops; docs/performance.md).
            let j0 = qc * P.NR, j1 = min(nc, qe * P.NR)
            applyEpilogue(epilogue, c: c, offset: i0 * ldc + jc + j0, ldc: ldc, rows: mc, cols: j1 - j0)
        }
        qc = qe
    }
}

/// `sgemm` for a small C and a long k, on several threads: each KC block's product `alpha op(A)_b op(B)_b` is
/// one task (a one-thread `sgemm` with beta 0 into its own partial buffer), then the partials are added into C
/// in k order, element by element, with the beta term, bias and residual where the sequential path adds them.
/// The sequential path rounds `alpha * acc_b` and adds it to C block by block in the same order, so the bits
/// are the same: results still do not depend on the thread count (tested).
func sgemmKSplit(
    c: UnsafeMutablePointer<Float>, ldc: Int,       // (m, n) row-major, row stride ldc
    a: UnsafePointer<Float>, lda: Int, transA: Bool, // (m, k), or (k, m) when transA; row stride lda
    b: UnsafePointer<Float>, ldb: Int, transB: Bool, // (k, n), or (n, k) when transB; row stride ldb
    m: Int, n: Int, k: Int, alpha: Float, beta: Float,
    bias: UnsafePointer<Float>?,                    // (n) or nil
    residual: UnsafePointer<Float>?,                // (m, n) row-major, row stride ldc, or nil
    epilogue: GEMMEpilogue?, aPrologue: GEMMPrologue?, bPrologue: GEMMPrologue?, packedB: GEMMPackedB?,
    threads: Int, context: KernelContext
) {
    typealias P = GEMMBlocking
    let KC = context.blocking.kc
    let blocks = (k + KC - 1) / KC
    let size = m * n
    let serial = context.with(threads: 1)
    context.scratch.withFloats(blocks * size) { partials in  // block q at partials + q * size: (m, n), row stride n
        // The blocks that do not divide among the threads (the last blocks % threads) are cut into `threads` row
        // pieces each, so that the threads finish together: 11 whole blocks (vit-tiny's proj and qkv weight
        // gradients, k 4096) left one thread the last one alone. A piece packs its block's op(B) again, so
        // blocks that divide evenly stay whole. Rows are computed the same way in any piece (same bits).
        let pieces = m >= 2 * P.MR * threads ? threads : 1
        let cut = pieces > 1 ? blocks % threads : 0
        let whole = blocks - cut
        let pieceRows = ((m + pieces - 1) / pieces + P.MR - 1) / P.MR * P.MR
        context.forEach(tasks: whole + cut * pieces, threads: threads) { t, _ in
            let q = t < whole ? t : whole + (t - whole) / pieces
            let r0 = t < whole ? 0 : (t - whole) % pieces * pieceRows
            let rows = t < whole ? m : min(pieceRows, m - r0)
            if rows <= 0 { return }
            let p0 = q * KC
            sgemm(c: partials + q * size + r0 * n, ldc: n, a: transA ? a + p0 * lda + r0 : a + r0 * lda + p0, lda: lda,
                  transA: transA, b: transB ? b + p0 : b + p0 * ldb, ldb: ldb, transB: transB, m: rows, n: n,
                  k: min(KC, k - p0), alpha: alpha, beta: 0, aPrologue: aPrologue?.offset(rows: r0, cols: p0),
                  bPrologue: bPrologue?.offset(rows: p0, cols: 0),
                  packedB: packedB?.rows(from: p0, count: min(KC, k - p0)), context: serial)
        }
        let rowsPerTask = max(1, (m + 4 * threads - 1) / (4 * threads))
        context.forEach(tasks: (m + rowsPerTask - 1) / rowsPerTask, threads: threads) { t, _ in
            for i in t * rowsPerTask..<min(m, (t + 1) * rowsPerTask) {
                let row = c + i * ldc
                let res = residual.map { $0 + i * ldc }
                var j = 0
                while j + 8 <= n {
                    typealias V = SIMD8<Float>
                    var y = UnsafeRawPointer(partials + i * n + j).loadUnaligned(as: V.self)
                    if beta != 0 { y = y + V(repeating: beta) * UnsafeRawPointer(row + j).loadUnaligned(as: V.self) }
                    for q in 1..<blocks {
                        y = UnsafeRawPointer(partials + q * size + i * n + j).loadUnaligned(as: V.self) + y
                    }
                    if let bias { y = y + UnsafeRawPointer(bias + j).loadUnaligned(as: V.self) }
                    if let res { y = y + UnsafeRawPointer(res + j).loadUnaligned(as: V.self) }
                    UnsafeMutableRawPointer(row + j).storeBytes(of: y, as: V.self)
                    j += 8
                }
                while j < n {
                    var y = partials[i * n + j]
                    if beta != 0 { y = y + beta * row[j] }
                    for q in 1..<blocks { y = partials[q * size + i * n + j] + y }
                    if let bias { y = y + bias[j] }
                    if let res { y = y + res[j] }
                    row[j] = y
                    j += 1
                }
                if let epilogue { applyEpilogue(epilogue, c: c, offset: i * ldc, ldc: ldc, rows: 1, cols: n) }
            }
        }
    }
}

/// How a k group of an (m, nc) block of C is cut into tasks: row blocks of `mc` rows (a multiple of MR) times
/// column blocks of `panelsPerBlock` NR-panels. One thread gets one task per tile; more threads get about 6 tasks each,
/// so that a thread slowed by another process on the machine delays a small task, not half the work. Rows
/// are cut first, down to 72 rows (each task packs its own A block, so a column cut packs A again), then
/// columns. Speed only: every C element is computed the same way whatever the plan, so results do not depend
/// on the thread count.
struct GEMMTaskPlan {
    var mc: Int
    var mBlocks: Int
    var nBlocks: Int
    var panelsPerBlock: Int
    /// Rows of the last row block: m - (mBlocks - 1) mc, which may exceed mc (`rowsPerThread`).
    var lastRows: Int
    var tasks: Int { mBlocks * nBlocks }

    init(m: Int, nc: Int, k: Int, threads: Int, mcMax: Int = GEMMBlocking.MC, columnsOnly: Bool = false,
         rowsPerThread: Bool = false) {
        typealias P = GEMMBlocking
        let panels = (nc + P.NR - 1) / P.NR
        let rowPanels = (m + P.MR - 1) / P.MR
        if rowsPerThread && threads > 1 {
            // One block of all columns per thread; blocks of whole panels as near m / threads rows as they come
            // (196 rows on 2 threads: 96 + 100, the last block taking the rest with its 4-row panel).
            let blocks = min(threads, rowPanels)
            var per = max(1, Int((Double(m) / Double(blocks * P.MR)).rounded()))
            if blocks > 1 { per = min(per, (rowPanels - 1) / (blocks - 1)) }  // the last block keeps >= 1 row
            (mc, mBlocks, panelsPerBlock, nBlocks) = (per * P.MR, blocks, panels, 1)
            lastRows = m - (blocks - 1) * mc
            return
        }
        let wanted = threads <= 1 ? 1 : max(1, min(P.maxTasks, 6 * threads, 2 * m * nc * k / P.flopsPerTask))
        if columnsOnly {  // one block of all rows (a shared packed A), the columns cut into `wanted` blocks
            let per = (panels + min(panels, wanted) - 1) / min(panels, wanted)
            (mc, mBlocks, panelsPerBlock, nBlocks) = (rowPanels * P.MR, 1, per, (panels + per - 1) / per)
            lastRows = m
            return
        }
        var mcPanels = min(max(1, mcMax / P.MR), rowPanels)  // MC below MR (an AVX-512 build with MC 6): one panel
        if (rowPanels + mcPanels - 1) / mcPanels < wanted {
            // Rows only where that leaves tasks of at least 48 rows (8 AVX2 panels); else at least 72 rows a task,
            // and the columns cut too: a column cut packs A again in each column block (measured with MR 6:
            // docs/performance.md, Decisions; counted in rows so that the 12-row AVX-512 panels cut alike).
            // Never more than mcMax (the A buffers are sized for it).
            let rowsOnly = (rowPanels + wanted - 1) / wanted
            mcPanels = min(max(1, mcMax / P.MR), rowsOnly * P.MR >= 48 ? rowsOnly : min(max(1, 72 / P.MR), rowPanels))
        }
        let mBlocks = (rowPanels + mcPanels - 1) / mcPanels
        var nBlocks = 1
        if mBlocks * nBlocks < wanted { nBlocks = min(panels, (wanted + mBlocks - 1) / mBlocks) }
        let per = (panels + nBlocks - 1) / nBlocks
        self.mc = mcPanels * P.MR
        self.mBlocks = mBlocks
        self.panelsPerBlock = per
        self.nBlocks = (panels + per - 1) / per
        lastRows = m - (mBlocks - 1) * mc
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

