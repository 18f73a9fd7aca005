/// op(B) of a GEMM packed once, ahead of the calls that use it: a weight that does not change (an encoder's
/// Linear layers at inference). `sgemm(..., packedB:)` then skips the packing of B, which at batch 1 of a
/// ViT-S/16 (196 rows per weight) was an eighth of the embedding's time even with the vectorised transpose.
///
/// Layout (the panels `sgemm` packs for itself, for all of B at once): KC blocks of k, block at rows p0..<p0+kc
/// at `base + p0 * rowFloats`; in it, NR-column panels of (kc, NR), zero-padded, panel q at `q * NR * kc`.
/// The same floats as `sgemm`'s own packing, so the products have the same bits (tested).
package struct GEMMPackedB: @unchecked Sendable {
    package let base: UnsafePointer<Float>
    /// op(B) is (k, n); packed with KC `kc` and this build's NR.
    package let k: Int, n: Int, kc: Int
    /// Floats per k row of a block: the panels times NR.
    package var rowFloats: Int { Self.rowFloats(n: n) }
    static func rowFloats(n: Int) -> Int { (n + GEMMBlocking.NR - 1) / GEMMBlocking.NR * GEMMBlocking.NR }

    /// Rows p0..<p0+count of this operand (p0 a multiple of kc): the same layout, for a GEMM over that k range.
    func rows(from p0: Int, count: Int) -> GEMMPackedB {
        GEMMPackedB(base: base + p0 * rowFloats, k: count, n: n, kc: kc)
    }
}

/// Owns the memory of a `GEMMPackedB`. Immutable after `init`; callers keep it alive across the `sgemm` calls
/// that read it (`withExtendedLifetime`).
package final class PackedWeight: @unchecked Sendable {
    package let operand: GEMMPackedB
    private let storage: UnsafeMutablePointer<Float>

    /// Packs op(B) (k, n): B (k, n) or, when `transB`, (n, k) (a Linear weight (out, in) is transB, n = out,
    /// k = in), with KC `kc` (a GEMM that uses it must run with the same KC).
    package init(b: UnsafePointer<Float>, ldb: Int, transB: Bool, k: Int, n: Int, kc: Int = GEMMBlocking.KC) {
        precondition(k > 0 && n > 0 && kc > 0, "PackedWeight: empty operand (k \(k), n \(n)) or kc \(kc)")
        let rowFloats = GEMMPackedB.rowFloats(n: n)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: k * rowFloats * 4, alignment: 64)
        storage = raw.bindMemory(to: Float.self, capacity: k * rowFloats)
        var p0 = 0
        while p0 < k {
            let depth = min(kc, k - p0)
            packB(storage + p0 * rowFloats, b: b, ldb: ldb, transB: transB, k0: p0, kc: depth, rows: 0..<depth,
                  n0: 0, nc: n, panels: 0..<rowFloats / GEMMBlocking.NR)
            p0 += depth
        }
        operand = GEMMPackedB(base: storage, k: k, n: n, kc: kc)
    }

    /// Bytes held.
    package var bytes: Int { operand.k * operand.rowFloats * 4 }

    /// Writes the operand back as the (n, k) row-major B it was packed from with `transB` (a Linear weight
    /// (out, in)): the same floats, for a reader of a weight kept only in packed form.
    package func unpackTransposed(into dst: UnsafeMutablePointer<Float>) {  // (n, k) row-major
        let (k, n, kc, rowFloats, NR) = (operand.k, operand.n, operand.kc, operand.rowFloats, GEMMBlocking.NR)
        var p0 = 0
        while p0 < k {
            let depth = min(kc, k - p0)
            let block = UnsafePointer(storage) + p0 * rowFloats  // panels of (depth, NR), panel q at q * NR * depth
            for j in 0..<n {
                let column = block + j / NR * NR * depth + j % NR
                let out = dst + j * k + p0
                for p in 0..<depth { out[p] = column[p * NR] }
            }
            p0 += depth
        }
    }

    deinit { storage.deallocate() }
}
