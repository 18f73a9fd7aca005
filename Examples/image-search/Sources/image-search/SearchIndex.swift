import Foundation
import IJEPA

/// The embedded images: one feature row per file, centred on the index's mean feature and scaled to length 1,
/// so cosine similarity is a dot product. Centring matters: pooled I-JEPA features share a large common
/// component (raw cosines are all near 1), which would otherwise dominate every comparison.
struct SearchIndex {
    static let format = "image-search-index-v1"
    var files: [String]
    var dimension: Int
    /// (files.count, dimension), rows centred and of length 1.
    var features: [Float]
    /// The mean of the raw features, subtracted from every row and query.
    var mean: [Float]

    /// Reads an index written by `save`; refuses another format with a message naming the file.
    init(contentsOf path: String) throws {
        let file = try SafeTensorsFile(path: path)
        guard file.metadata["format"] == Self.format else {
            throw SearchError("\(path): not an index of this app (format \(file.metadata["format"] ?? "none"), expected \(Self.format))")
        }
        guard let list = file.metadata["files"].flatMap({ try? JSONSerialization.jsonObject(with: Data($0.utf8)) }) as? [String],
              let shape = file.shape(of: "features"), shape.count == 2, shape[0] == list.count else {
            throw SearchError("\(path): the index's file list and features do not match")
        }
        guard file.shape(of: "mean") == [shape[1]] else { throw SearchError("\(path): the index has no mean feature") }
        files = list
        dimension = shape[1]
        features = try file.tensor("features").scalars
        mean = try file.tensor("mean").scalars
    }

    /// An index of raw feature rows (files.count, dimension): centred and normalised here.
    init(files: [String], dimension: Int, raw: [Float]) {
        var mean = [Float](repeating: 0, count: dimension)
        for i in 0..<files.count { for j in 0..<dimension { mean[j] += raw[i * dimension + j] / Float(files.count) } }
        var features: [Float] = []
        features.reserveCapacity(raw.count)
        for i in 0..<files.count {
            features += unit((0..<dimension).map { raw[i * dimension + $0] - mean[$0] })
        }
        (self.files, self.dimension, self.features, self.mean) = (files, dimension, features, mean)
    }

    func save(to path: String, checkpoint: String) throws {
        let list = String(decoding: try JSONSerialization.data(withJSONObject: files), as: UTF8.self)
        try SafeTensors.write([("features", try Tensor(shape: [files.count, dimension], values: features)),
                               ("mean", try Tensor(shape: [dimension], values: mean))],
                              metadata: ["format": Self.format, "files": list, "checkpoint": checkpoint], to: path)
    }

    /// The k rows most similar to the raw feature `query` (cosine after centring), best first.
    func nearest(to query: [Float], k: Int) -> [(index: Int, similarity: Float)] {
        let q = unit(zip(query, mean).map { $0 - $1 })
        var scored = (0..<files.count).map { i -> (Int, Float) in
            var s: Float = 0
            for j in 0..<dimension { s += q[j] * features[i * dimension + j] }
            return (i, s)
        }
        scored.sort { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
        return scored.prefix(max(k, 0)).map { (index: $0.0, similarity: $0.1) }
    }
}

struct SearchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

func unit(_ v: [Float]) -> [Float] {
    let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return n > 0 ? v.map { $0 / n } : v
}

/// The raw features of `files`, embedded in chunks of 64, reporting progress after each chunk.
func embedFiles(_ files: [String], encoder: Encoder, progress: (Int) -> Void) throws -> [Float] {
    var features: [Float] = []
    features.reserveCapacity(files.count * encoder.dimension)
    var start = 0
    while start < files.count {
        let end = min(start + 64, files.count)
        features += try encoder.embed(try files[start..<end].map { try Image(contentsOfFile: $0) }).scalars
        start = end
        progress(end)
    }
    return features
}

/// Every .png under `root` (sorted), or `root` itself when it is a file.
func pngFiles(under root: String) throws -> [String] {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir) else { throw SearchError("\(root): no such file or folder") }
    guard isDir.boolValue else { return [root] }
    return (FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? [])
        .filter { $0.lowercased().hasSuffix(".png") }.sorted().map { root + "/" + $0 }
}
