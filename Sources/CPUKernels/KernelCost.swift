/// FLOPs and bytes each kernel moves, declared once here; benchmarks (and later the profiler) reuse them.
///
/// FLOPs count multiply and add as one each (an FMA is 2). Transcendentals are counted at a nominal cost
/// (exp 10, erf 25, as the polynomial evaluations do roughly that many operations). Bytes are the minimum
/// traffic: each input read once, each output written once (read too when accumulated).
public enum KernelCost {
    public struct Cost: Sendable { public var flops: Double; public var bytes: Double }

    public static func gemm(m: Int, n: Int, k: Int, betaNonZero: Bool = false) -> Cost {
        let (m, n, k) = (Double(m), Double(n), Double(k))
        return Cost(flops: 2 * m * n * k, bytes: 4 * (m * k + k * n + m * n * (betaNonZero ? 2 : 1)))
    }
    public static func layerNormForward(rows: Int, dim: Int) -> Cost {
        let e = Double(rows * dim)
        return Cost(flops: 7 * e, bytes: 4 * (2 * e + 2 * Double(dim) + 2 * Double(rows)))
    }
    public static func layerNormBackward(rows: Int, dim: Int) -> Cost {
        let e = Double(rows * dim)
        return Cost(flops: 16 * e, bytes: 4 * (4 * e + 3 * Double(dim) + 2 * Double(rows)))
    }
    public static func geluForward(count: Int) -> Cost {
        Cost(flops: 30 * Double(count), bytes: 8 * Double(count))
    }
    public static func geluBackward(count: Int) -> Cost {
        Cost(flops: 45 * Double(count), bytes: 16 * Double(count))
    }
    public static func softmaxForward(rows: Int, cols: Int) -> Cost {
        let e = Double(rows * cols)
        return Cost(flops: 14 * e, bytes: 8 * e)
    }
    public static func softmaxBackward(rows: Int, cols: Int) -> Cost {
        let e = Double(rows * cols)
        return Cost(flops: 4 * e, bytes: 16 * e)
    }
    public static func addBias(rows: Int, cols: Int) -> Cost {
        let e = Double(rows * cols)
        return Cost(flops: e, bytes: 8 * e + 4 * Double(cols))
    }
    public static func biasBackward(rows: Int, cols: Int) -> Cost {
        let e = Double(rows * cols)
        return Cost(flops: e, bytes: 4 * e + 8 * Double(cols))
    }
    public static func addElementwise(count: Int) -> Cost {
        Cost(flops: Double(count), bytes: 12 * Double(count))
    }
    public static func adamw(count: Int) -> Cost {
        Cost(flops: 16 * Double(count), bytes: 28 * Double(count))
    }
    /// `heads` independent (n, dh) attention heads: the two products (4 n^2 dh) plus the softmax (14 n^2).
    public static func attentionForward(heads: Int, n: Int, dh: Int) -> Cost {
        let (h, s) = (Double(heads), Double(n * n))
        return Cost(flops: h * (4 * s * Double(dh) + 14 * s), bytes: 4 * h * (4 * Double(n * dh) + s))
    }
    /// Four products (8 n^2 dh) plus the softmax backward (4 n^2); reads q, k, v, dO, P, writes dq, dk, dv.
    public static func attentionBackward(heads: Int, n: Int, dh: Int) -> Cost {
        let (h, s) = (Double(heads), Double(n * n))
        return Cost(flops: h * (8 * s * Double(dh) + 4 * s), bytes: 4 * h * (7 * Double(n * dh) + s))
    }
}
