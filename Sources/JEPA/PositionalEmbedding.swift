import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The fixed 2-D sin-cos positional table of the official code (`get_2d_sincos_pos_embed`), (G G, D):
/// for token k = i G + j (row i, column j), with w_m = 10000^(-m / (D/4)), m < D/4,
///   [0, D/4) sin(j w) · [D/4, D/2) cos(j w) · [D/2, 3D/4) sin(i w) · [3D/4, D) cos(i w).
/// The column half comes first (the official meshgrid puts w first). Computed in Double, stored as Float.
package func sinCosPositionTable(gridSize g: Int, dim d: Int) throws -> Tensor {
    guard g > 0, d > 0, d % 4 == 0 else {
        throw TensorError.incompatibleShapes(operation: "sinCosPositionTable: grid > 0 and dim divisible by 4", [g], [d])
    }
    let q = d / 4
    var values = [Float](repeating: 0, count: g * g * d)
    for i in 0..<g {
        for j in 0..<g {
            let row = (i * g + j) * d
            for m in 0..<q {
                let w = 1 / pow(10_000.0, Double(m) / Double(q))
                values[row + m] = Float(sin(Double(j) * w))
                values[row + q + m] = Float(cos(Double(j) * w))
                values[row + 2 * q + m] = Float(sin(Double(i) * w))
                values[row + 3 * q + m] = Float(cos(Double(i) * w))
            }
        }
    }
    return try Tensor(shape: [g * g, d], values: values)
}
