import CZlib
import Foundation
import TensorCore

/// IDX files (the MNIST format: big-endian header, then raw UInt8 data), gzip-compressed or plain. Reading goes
/// through zlib's gzopen/gzread, which also reads uncompressed files as they are.
package enum IDX {
    /// Magic of an unsigned-byte IDX file with `dims` dimensions: 0x00 0x00 0x08 dims.
    static func magic(dims: UInt8) -> UInt32 { 0x0000_0800 | UInt32(dims) }

    /// The largest payload an IDX file may declare (bytes), by default: far above any real data set (MNIST's
    /// training images are 47 MB), low enough that a forged header cannot make us allocate memory we lack.
    package static let defaultMaxBytes = 1 << 32

    /// An image file (magic 0x00000803): count, rows, columns, then count * rows * columns bytes. The declared
    /// size is checked (overflow, `maxBytes`) before anything is allocated, and reading stops at the declared
    /// size plus one byte: a gzip bomb is refused without inflating it.
    package static func readImages(path: String, maxBytes: Int = defaultMaxBytes) throws -> (count: Int, height: Int, width: Int, pixels: [UInt8]) {
        let (dims, pixels) = try read(path, dims: 3, what: "image", maxBytes: maxBytes) { d in
            guard d[1] > 0, d[2] > 0 else {
                throw ImageDataError(path: path, problem: "IDX image file declares images of \(d[1])x\(d[2]) pixels")
            }
            return "\(d[0]) images of \(d[1])x\(d[2])"
        }
        return (dims[0], dims[1], dims[2], pixels)
    }

    /// A label file (magic 0x00000801): count, then count bytes.
    package static func readLabels(path: String, maxBytes: Int = defaultMaxBytes) throws -> [Int] {
        try read(path, dims: 1, what: "label", maxBytes: maxBytes) { "\($0[0]) labels" }.payload.map { Int($0) }
    }

    /// Writes an image file (gzip-compressed when `gzip`), atomically.
    package static func writeImages(path: String, count: Int, height: Int, width: Int, pixels: [UInt8], gzip: Bool) throws {
        precondition(pixels.count == count * height * width, "IDX.writeImages: \(pixels.count) bytes for \(count)x\(height)x\(width)")
        try write(path: path, dims: [count, height, width], data: pixels, gzip: gzip)
    }

    /// Writes a label file (labels in 0...255; gzip-compressed when `gzip`), atomically.
    package static func writeLabels(path: String, labels: [Int], gzip: Bool) throws {
        precondition(labels.allSatisfy { (0...255).contains($0) }, "IDX.writeLabels: labels must be in 0...255")
        try write(path: path, dims: [labels.count], data: labels.map { UInt8($0) }, gzip: gzip)
    }

    // MARK: Internals

    static func write(path: String, dims: [Int], data: [UInt8], gzip: Bool) throws {
        var bytes: [UInt8] = [0, 0, 8, UInt8(dims.count)]
        for d in dims {
            precondition(d >= 0 && d <= Int(Int32.max), "IDX: dimension \(d) does not fit the format")
            bytes += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)]
        }
        bytes += data
        let out = gzip ? try Gzip.compress(bytes, path: path) : bytes
        try out.withUnsafeBytes { try FileIO.writeAtomically($0, to: path) }
    }

    /// Checks the magic and reads `dims` big-endian sizes.
    static func header(_ b: [UInt8], dims: Int, path: String, what: String) throws -> [Int] {
        let headerSize = 4 + 4 * dims
        guard b.count >= 4 else {
            throw ImageDataError(path: path, problem: "truncated IDX \(what) file: \(b.count) bytes, the header alone needs \(headerSize)")
        }
        let m = be32(b, 0)
        guard m == magic(dims: UInt8(dims)) else {
            let got = String(m, radix: 16), want = String(magic(dims: UInt8(dims)), radix: 16)
            throw ImageDataError(path: path, problem: "not an IDX \(what) file: magic 0x\(String(repeating: "0", count: 8 - got.count))\(got), expected 0x\(String(repeating: "0", count: 8 - want.count))\(want)")
        }
        guard b.count >= headerSize else {
            throw ImageDataError(path: path, problem: "truncated IDX \(what) file: \(b.count) bytes, the header alone needs \(headerSize)")
        }
        return (0..<dims).map { Int(be32(b, 4 + 4 * $0)) }
    }

    @inline(__always) static func be32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }

    /// Reads the header (magic and `dims` sizes), then exactly the declared payload through gzread (a plain
    /// file is read as it is). `describe` checks the sizes and names them for messages. Refused: a declared size
    /// that overflows or exceeds `maxBytes` (before any allocation), fewer bytes than declared, any byte more.
    static func read(_ path: String, dims: Int, what: String, maxBytes: Int,
                     describe: ([Int]) throws -> String) throws -> (dims: [Int], payload: [UInt8]) {
        try FileIO.requireFile(path)
        guard let gz = gzopen(path, "rb") else {
            throw ImageDataError(path: path, problem: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { gzclose(gz) }
        /// Fills `buf` from the stream; returns how many bytes came (fewer at the end of the data).
        func fill(_ buf: UnsafeMutableRawBufferPointer) throws -> Int {
            var done = 0
            while done < buf.count {
                let n = gzread(gz, buf.baseAddress! + done, UInt32(min(buf.count - done, 1 << 24)))
                if n <= 0 {
                    var errnum: Int32 = 0
                    let msg = String(cString: gzerror(gz, &errnum))
                    if n < 0 || (errnum != Z_OK && errnum != Z_STREAM_END) {
                        let why = errnum == Z_ERRNO ? String(cString: strerror(errno)) : msg
                        throw ImageDataError(path: path, problem: "corrupt or truncated gzip data after \(done) bytes: \(why)")
                    }
                    break
                }
                done += Int(n)
            }
            return done
        }
        var head = [UInt8](repeating: 0, count: 4 + 4 * dims)
        let got = try head.withUnsafeMutableBytes { try fill($0) }
        let sizes = try header(Array(head[0..<got]), dims: dims, path: path, what: what)
        let name = try describe(sizes)
        let declared = checkedProduct(sizes)
        guard let count = declared, count <= maxBytes else {
            throw ImageDataError(path: path, problem: "the header declares \(name): \(declared.map { "\($0) bytes" } ?? "a size that overflows"), more than the \(maxBytes)-byte limit (maxBytes)")
        }
        // Read in pieces of 16 MiB as bytes arrive, so a short file declaring gigabytes costs its own size; the
        // payload is assembled once all of it has come, each piece freed as it is copied (peak: the payload and
        // one piece; a growing array would double its buffer and copy).
        var pieces: [[UInt8]] = []
        var read = 0
        while read < count {
            let want = min(count - read, 1 << 24)
            var got = 0
            pieces.append(try [UInt8](unsafeUninitializedCapacity: want) { b, initialized in
                got = try fill(UnsafeMutableRawBufferPointer(b))
                initialized = got
            })
            read += got
            if got < want { break }
        }
        if read < count {
            throw ImageDataError(path: path, problem: "truncated: the header declares \(name) (\(count) bytes) but only \(read) follow")
        }
        var probe: UInt8 = 0
        if try withUnsafeMutableBytes(of: &probe, { try fill($0) }) > 0 {
            throw ImageDataError(path: path, problem: "the header declares \(name) (\(count) bytes) but extra bytes follow")
        }
        let payload = [UInt8](unsafeUninitializedCapacity: count) { b, initialized in
            var offset = 0
            for i in pieces.indices {
                pieces[i].withUnsafeBufferPointer { p in
                    (b.baseAddress! + offset).initialize(from: p.baseAddress!, count: p.count)
                    offset += p.count
                }
                pieces[i] = []
            }
            initialized = offset
        }
        return (sizes, payload)
    }
}

/// gzip compression in memory (zlib deflate with the gzip wrapper).
enum Gzip {
    static func compress(_ input: [UInt8], path: String, level: Int32 = 6) throws -> [UInt8] {
        var s = z_stream()
        // windowBits 15 + 16: gzip header and trailer instead of the zlib ones.
        var rc = deflateInit2_(&s, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
                               Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw ImageDataError(path: path, problem: "zlib deflateInit2 failed (\(rc))") }
        defer { deflateEnd(&s) }
        let bound = Int(deflateBound(&s, uLong(input.count))) + 64
        var out = [UInt8](repeating: 0, count: bound)
        var input = input
        rc = input.withUnsafeMutableBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                s.next_in = inp.baseAddress
                s.avail_in = uInt(inp.count)
                s.next_out = o.baseAddress
                s.avail_out = uInt(o.count)
                return deflate(&s, Z_FINISH)
            }
        }
        guard rc == Z_STREAM_END else { throw ImageDataError(path: path, problem: "zlib deflate failed (\(rc))") }
        out.removeLast(out.count - Int(s.total_out))
        return out
    }
}

/// Fashion-MNIST (Xiao et al. 2017): 28x28 gray, 10 classes, 60000 train and 10000 test images, as the four
/// IDX files of the original distribution (Debian package `dataset-fashion-mnist`).
package enum FashionMNIST {
    package static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    package static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                    "Sneaker", "Bag", "Ankle boot"]

    /// The file names of a split: "train" -> train-*, "test" -> t10k-*.
    package static func files(split: String, directory: String = defaultDirectory) throws -> (images: String, labels: String) {
        let prefix: String
        switch split {
        case "train": prefix = "train"
        case "test", "t10k": prefix = "t10k"
        default: throw ImageDataError(path: directory, problem: "unknown IDX split \"\(split)\" (use \"train\" or \"test\")")
        }
        func pick(_ base: String) -> String {
            // The .gz files as distributed; an uncompressed copy is used when only that exists.
            let gz = directory + "/" + base + ".gz", plain = directory + "/" + base
            return !FileManager.default.fileExists(atPath: gz) && FileManager.default.fileExists(atPath: plain) ? plain : gz
        }
        return (pick("\(prefix)-images-idx3-ubyte"), pick("\(prefix)-labels-idx1-ubyte"))
    }

    /// Loads a split ("train" or "test") as a gray (channels 1) 28x28 data set named "fashion-mnist-<split>".
    package static func load(split: String, directory: String = defaultDirectory) throws -> ImageDataset {
        guard FileIO.isDirectory(directory) else {
            throw ImageDataError(path: directory, problem: "no such folder (Fashion-MNIST: install the Debian package dataset-fashion-mnist, or pass the folder holding the four IDX files)")
        }
        return try IDXFolder.load(split: split, directory: directory, name: "fashion-mnist", classNames: classNames)
    }
}

/// Any folder of IDX files in the MNIST layout: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each gzipped (`.gz`) or not. MNIST, Fashion-MNIST,
/// KMNIST and EMNIST's splits are distributed this way. Images are gray, of any size.
package enum IDXFolder {
    /// Loads a split ("train" or "test") named "<name>-<split>" (name: the folder's own by default). Class names:
    /// `classNames`, else the folder's `classes.txt` (one per line, in label order), else "0", "1", ...
    package static func load(split: String, directory: String, name: String? = nil, classNames: [String]? = nil) throws -> ImageDataset {
        guard FileIO.isDirectory(directory) else {
            throw ImageDataError(path: directory, problem: "no such folder (an IDX data set is a folder holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz] and the t10k-* pair)")
        }
        let f = try FashionMNIST.files(split: split, directory: directory)
        let images = try IDX.readImages(path: f.images)
        let labels = try IDX.readLabels(path: f.labels)
        guard images.count == labels.count else {
            throw ImageDataError(path: f.labels, problem: "\(labels.count) labels for the \(images.count) images of \(f.images)")
        }
        var names = classNames
        let listed = directory + "/classes.txt"
        if names == nil, FileManager.default.fileExists(atPath: listed) {
            guard let text = try? String(contentsOfFile: listed, encoding: .utf8) else {
                throw ImageDataError(path: listed, problem: "cannot read the class names (UTF-8 text, one name per line)")
            }
            names = text.split(separator: "\n", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let classes = names?.count ?? (labels.max() ?? 0) + 1
        if let bad = labels.first(where: { $0 >= classes }) {
            throw ImageDataError(path: f.labels, problem: "label \(bad) outside 0..<\(classes)\(names != nil ? " (the class names given)" : "")")
        }
        let base = name ?? URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        return ImageDataset(name: "\(base)-\(split == "t10k" ? "test" : split)", width: images.width,
                            height: images.height, channels: 1, pixels: images.pixels, labels: labels,
                            classNames: names ?? (0..<classes).map { "\($0)" })
    }
}
