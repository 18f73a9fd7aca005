/// An elementwise function that `sgemm` applies to each finished block of C while the block is still in L2,
/// after the bias and the residual: what a separate pass over C would compute, with the same bits, without
/// that pass's trip through L3 or memory and its own parallel dispatch.
///
/// The buffers have C's shape (m, n) and C's row stride ldc.
public enum GEMMEpilogue {
    /// output = GELU(C) (exact erf form). C keeps the pre-activation (what GELU's backward needs); `output`
    /// may be C itself when the pre-activation is not needed (no gradient). A Linear layer followed by GELU.
    case gelu(output: UnsafeMutablePointer<Float>)
    /// C = C * GELU'(x): turns the gradient of GELU's output (the GEMM's product) into the gradient of its
    /// input `x`. The input-gradient GEMM of the Linear layer that consumes GELU's output.
    case geluBackward(x: UnsafePointer<Float>)
}

/// Applies `epilogue` to the (rows, cols) block of C at element offset `offset` (= row * ldc + column).
/// Kept out of line, so that `sgemm` (whose micro-kernel is inlined) does not grow.
@inline(never)
func applyEpilogue(_ epilogue: GEMMEpilogue, c: UnsafeMutablePointer<Float>, offset: Int, ldc: Int, rows: Int, cols: Int) {
    let x = c + offset
    switch epilogue {
    case .gelu(let output):
        for i in 0..<rows { geluSpan(output + offset + i * ldc, x + i * ldc, count: cols) }
    case .geluBackward(let input):
        for i in 0..<rows {
            geluBackwardSpan(dx: x + i * ldc, dy: x + i * ldc, x: input + offset + i * ldc, count: cols, accumulate: false)
        }
    }
}
