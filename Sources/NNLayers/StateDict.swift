import TensorCore

/// Copies tensors into parameters by name: `prefix + name` must exist with the parameter's shape (leading
/// 1-sized axes are ignored, so a PyTorch (1, N, D) buffer loads into (N, D)). Every problem is reported with
/// the file, the key and both shapes; nothing is changed unless every key matches.
package func loadParameters(
    _ params: [(String, Variable)], from tensors: [String: Tensor], prefix: String = "", file: String
) throws {
    try loadParameters(params, shape: { tensors[$0]?.shape }, read: { name, out in
        tensors[name]!.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: out.count) }
    }, prefix: prefix, file: file)
}

/// The same from a lazy source: `shape(name)` answers without reading (nil: no such tensor), `read(name, into)`
/// writes one tensor's values straight into the parameter's memory, so nothing beyond the parameters is held.
package func loadParameters(
    _ params: [(String, Variable)], shape: (String) -> [Int]?,
    read: (String, UnsafeMutableBufferPointer<Float>) throws -> Void, prefix: String = "", file: String
) throws {
    func squeeze(_ s: [Int]) -> [Int] { Array(s.drop(while: { $0 == 1 })) }
    var problems: [String] = []
    for (name, p) in params {
        guard let s = shape(prefix + name) else { problems.append("missing tensor '\(prefix + name)'"); continue }
        if squeeze(s) != squeeze(p.shape) {
            problems.append("'\(prefix + name)' has shape \(s), the model expects \(p.shape)")
        }
    }
    if !problems.isEmpty {
        throw SafeTensorsError(path: file, problem: problems.prefix(5).joined(separator: "; ")
                               + (problems.count > 5 ? "; and \(problems.count - 5) more" : ""))
    }
    for (name, p) in params {
        try p.value.withUnsafeMutableBufferPointer { try read(prefix + name, $0) }
    }
}

/// The (name, tensor) pairs of parameters, for `SafeTensors.write`.
package func parameterTensors(_ params: [(String, Variable)], prefix: String = "") -> [(String, Tensor)] {
    params.map { (prefix + $0.0, $0.1.value) }
}
