// image-search: index a folder of PNGs with a trained I-JEPA encoder, then find a query image's nearest
// neighbours by cosine similarity, printed and drawn as a contact sheet.
//
//   image-search index --checkpoint CKPT --images DIR --index index.safetensors
//   image-search query --checkpoint CKPT --index index.safetensors --image q.png [--k 8] [--sheet sheet.png]
//   image-search agreement --checkpoint CKPT --index index.safetensors --queries DIR [--k 5]
import Foundation
import IJEPA

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("image-search: \(message)\n".utf8))
    exit(1)
}

/// `--name value` pairs after the subcommand.
func options(_ args: ArraySlice<String>) -> [String: String] {
    var out: [String: String] = [:]
    var i = args.startIndex
    while i < args.endIndex {
        guard args[i].hasPrefix("--"), i + 1 < args.endIndex else { fail("expected --name value, got '\(args[i])'") }
        out[String(args[i].dropFirst(2))] = args[i + 1]
        i += 2
    }
    return out
}

let usage = """
    usage: image-search index --checkpoint CKPT --images DIR --index OUT.safetensors
           image-search query --checkpoint CKPT --index INDEX.safetensors --image Q.png [--k 8] [--sheet OUT.png]
           image-search agreement --checkpoint CKPT --index INDEX.safetensors --queries DIR [--k 5]
    """
let args = CommandLine.arguments
guard args.count >= 2 else { fail(usage) }
let opts = options(args.dropFirst(2))
func required(_ name: String) -> String {
    guard let v = opts[name] else { fail("--\(name) is required\n\(usage)") }
    return v
}

do {
    let encoder = try Encoder(checkpoint: required("checkpoint"))
    switch args[1] {
    case "index":
        let files = try pngFiles(under: required("images"))
        guard !files.isEmpty else { fail("no .png files under \(required("images"))") }
        let raw = try embedFiles(files, encoder: encoder) { done in
            let line = String(format: "\rindexing %d/%d images (%.0f %%)", done, files.count, 100 * Double(done) / Double(files.count))
            FileHandle.standardError.write(Data(line.utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        let index = SearchIndex(files: files, dimension: encoder.dimension, raw: raw)
        try index.save(to: required("index"), checkpoint: required("checkpoint"))
        print("indexed \(index.files.count) images (\(index.dimension) features each) into \(required("index"))")
    case "query":
        let index = try SearchIndex(contentsOf: required("index"))
        let k = Int(opts["k"] ?? "8") ?? 8
        let query = try Image(contentsOfFile: required("image"))
        let hits = index.nearest(to: try encoder.embed([query]).scalars, k: k)
        print("query \(required("image")): \(hits.count) nearest of \(index.files.count)")
        for (rank, hit) in hits.enumerated() {
            print(String(format: "%2d  %.4f  %@", rank + 1, hit.similarity, index.files[hit.index]))
        }
        if let sheet = opts["sheet"] {
            try contactSheet(query: query, queryName: required("image"),
                             neighbours: try hits.map { (try Image(contentsOfFile: index.files[$0.index]), index.files[$0.index]) })
                .writePNG(to: sheet)
            print("contact sheet: \(sheet)")
        }
    case "agreement":
        // For every query PNG under --queries: the share of its k neighbours that sit in a folder of the same name
        // (class folders, as `ijepa export-png` writes them).
        let index = try SearchIndex(contentsOf: required("index"))
        let k = Int(opts["k"] ?? "5") ?? 5
        let queries = try pngFiles(under: required("queries"))
        guard !queries.isEmpty else { fail("no .png files under \(required("queries"))") }
        func folder(_ path: String) -> String { path.split(separator: "/").dropLast().last.map(String.init) ?? "" }
        var same = 0, total = 0
        let raw = try embedFiles(queries, encoder: encoder) { _ in }
        for (qi, q) in queries.enumerated() {
            let row = Array(raw[qi * index.dimension..<(qi + 1) * index.dimension])
            for hit in index.nearest(to: row, k: k) {
                same += folder(index.files[hit.index]) == folder(q) ? 1 : 0
                total += 1
            }
        }
        print(String(format: "%d queries, %d neighbours each: %.1f %% of the neighbours share the query's class folder",
                     queries.count, k, 100 * Double(same) / Double(max(total, 1))))
    default:
        fail(usage)
    }
} catch {
    fail("\(error)")
}
