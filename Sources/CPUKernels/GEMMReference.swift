/// Naive reference GEMM, accumulating in Double: `C = alpha * op(A) * op(B) + beta * C (+ bias per column)
/// (+ residual)`.
///
/// Used by the tests and the benchmark validation. Same argument conventions as `sgemm`; beta == 0 does not
/// read C.
public func sgemmReference(
    c: UnsafeMutablePointer<Float>, ldc: Int,       // (m, n) row-major, row stride ldc
    a: UnsafePointer<Float>, lda: Int, transA: Bool, // (m, k), or (k, m) when transA; row stride lda
    b: UnsafePointer<Float>, ldb: Int, transB: Bool, // (k, n), or (n, k) when transB; row stride ldb
    m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0, bias: UnsafePointer<Float>? = nil,  // bias: (n) or nil
    residual: UnsafePointer<Float>? = nil           // (m, n), row stride ldc, or nil
) {
    if let problem = gemmArgumentProblem(ldc: ldc, lda: lda, transA: transA, ldb: ldb, transB: transB, m: m, n: n, k: k) {
        fatalError("sgemmReference: \(problem)")
    }
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                let av = transA ? a[p * lda + i] : a[i * lda + p]
                let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                sum += Double(av) * Double(bv)
            }
            let ab = Double(alpha) * sum
            let y = beta == 0 ? ab : ab + Double(beta) * Double(c[i * ldc + j])
            c[i * ldc + j] = Float(y + (bias.map { Double($0[j]) } ?? 0) + (residual.map { Double($0[i * ldc + j]) } ?? 0))
        }
    }
}

/// Describes what is wrong with GEMM arguments, or nil when they are valid.
///
/// Row-major storage: A is (m, k) with lda >= k, or (k, m) with lda >= m when transposed; likewise B; C is
/// (m, n) with ldc >= n. Leading dimensions must be >= 1 even for empty matrices (BLAS convention).
public func gemmArgumentProblem(
    ldc: Int, lda: Int, transA: Bool, ldb: Int, transB: Bool, m: Int, n: Int, k: Int
) -> String? {
    if m < 0 || n < 0 || k < 0 { return "negative dimension (m \(m), n \(n), k \(k))" }
    let aCols = transA ? m : k
    let bCols = transB ? k : n
    if lda < max(1, aCols) {
        return "lda \(lda) too small: A is stored \(transA ? "(k \(k), m \(m))" : "(m \(m), k \(k))") row-major, needs lda >= \(max(1, aCols))"
    }
    if ldb < max(1, bCols) {
        return "ldb \(ldb) too small: B is stored \(transB ? "(n \(n), k \(k))" : "(k \(k), n \(n))") row-major, needs ldb >= \(max(1, bCols))"
    }
    if ldc < max(1, n) { return "ldc \(ldc) too small: C is (m \(m), n \(n)) row-major, needs ldc >= \(max(1, n))" }
    let (_, o1) = m.multipliedReportingOverflow(by: ldc)
    let (_, o2) = (transA ? k : m).multipliedReportingOverflow(by: lda)
    let (_, o3) = (transB ? n : k).multipliedReportingOverflow(by: ldb)
    if o1 || o2 || o3 { return "matrix extent overflows Int" }
    return nil
}
