import TensorCore

/// Copies tensors into parameters by name: `prefix + name` must exist with the parameter's shape (leading
/// 1-sized axes are ignored, so a PyTorch (1, N, D) buffer loads into (N, D)). Every problem is reported with
/// the file, the key and both shapes; nothing is changed unless every key matches.
public func loadParameters(
    _ params: [(String, Variable)], from tensors: [String: Tensor], prefix: String = "", file: String
) throws {
    func squeeze(_ s: [Int]) -> [Int] { Array(s.drop(while: { $0 == 1 })) }
    var problems: [String] = []
    for (name, p) in params {
        guard let t = tensors[prefix + name] else { problems.append("missing tensor '\(prefix + name)'"); continue }
        if squeeze(t.shape) != squeeze(p.shape) {
            problems.append("'\(prefix + name)' has shape \(t.shape), the model expects \(p.shape)")
        }
    }
    if !problems.isEmpty {
        throw SafeTensorsError(path: file, problem: problems.prefix(5).joined(separator: "; ")
                               + (problems.count > 5 ? "; and \(problems.count - 5) more" : ""))
    }
    for (name, p) in params {
        let t = tensors[prefix + name]!
        p.value.withUnsafeMutableBufferPointer { dst in
            t.withUnsafeBufferPointer { dst.baseAddress!.update(from: $0.baseAddress!, count: $0.count) }
        }
    }
}

/// The (name, tensor) pairs of parameters, for `SafeTensors.write`.
public func parameterTensors(_ params: [(String, Variable)], prefix: String = "") -> [(String, Tensor)] {
    params.map { (prefix + $0.0, $0.1.value) }
}
