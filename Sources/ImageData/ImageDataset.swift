import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error about one file or folder, with what is wrong with it: `"<path>: <problem>"`.
public struct ImageDataError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}

/// An in-memory labelled image set. Pixels are UInt8, (count, height, width, channels) row-major with the
/// channels interleaved (as in a PNG row); every image has the same size and channel count.
package struct ImageDataset: Sendable, Equatable {
    package var name: String
    package let width: Int, height: Int, channels: Int
    /// (count, height, width, channels) interleaved.
    package var pixels: [UInt8]
    /// One label per image, in 0..<classNames.count.
    package var labels: [Int]
    package var classNames: [String]

    package var count: Int { labels.count }
    /// Bytes per image: height * width * channels.
    package var imageSize: Int { width * height * channels }

    /// Stops with a message when the pixel count does not match `labels.count` images of that size, or a
    /// label is outside the class list (a programming error, not bad input: loaders validate files first).
    package init(
        name: String, width: Int, height: Int, channels: Int, pixels: [UInt8], labels: [Int], classNames: [String]
    ) {
        precondition(width > 0 && height > 0 && channels > 0, "ImageDataset: bad image size \(width)x\(height)x\(channels)")
        precondition(pixels.count == labels.count * width * height * channels,
                     "ImageDataset: \(pixels.count) pixel bytes for \(labels.count) images of \(width)x\(height)x\(channels)")
        precondition(labels.allSatisfy { $0 >= 0 && $0 < classNames.count },
                     "ImageDataset: a label is outside 0..<\(classNames.count)")
        self.name = name
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
        self.labels = labels
        self.classNames = classNames
    }

    /// The bytes of image `i`: (height, width, channels) interleaved.
    package func image(_ i: Int) -> ArraySlice<UInt8> {
        precondition(i >= 0 && i < count, "ImageDataset.image: index \(i) outside 0..<\(count)")
        return pixels[i * imageSize..<(i + 1) * imageSize]
    }

    /// The images at `indices`, in that order (repeats allowed); same classes and size.
    package func subset(_ indices: [Int]) -> ImageDataset {
        let size = imageSize
        var px = [UInt8](repeating: 0, count: indices.count * size)
        px.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                for (k, i) in indices.enumerated() {
                    precondition(i >= 0 && i < count, "ImageDataset.subset: index \(i) outside 0..<\(count)")
                    dst.baseAddress!.advanced(by: k * size).update(from: src.baseAddress!.advanced(by: i * size), count: size)
                }
            }
        }
        return ImageDataset(name: name, width: width, height: height, channels: channels, pixels: px,
                            labels: indices.map { labels[$0] }, classNames: classNames)
    }

    /// Number of images of each class.
    package var classCounts: [Int] {
        var h = [Int](repeating: 0, count: classNames.count)
        for l in labels { h[l] += 1 }
        return h
    }
}

/// File-system helpers shared by the readers and writers.
enum FileIO {
    /// Throws, naming the path, unless it is an existing file (not a folder).
    static func requireFile(_ path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ImageDataError(path: path, problem: "no such file")
        }
        if isDir.boolValue { throw ImageDataError(path: path, problem: "is a folder, not a file") }
    }

    /// The whole file; errors name the path (missing, a folder, unreadable).
    static func readAll(_ path: String) throws -> [UInt8] {
        try requireFile(path)
        guard let f = fopen(path, "rb") else {
            throw ImageDataError(path: path, problem: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
            if n > 0 { out.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count {
                if ferror(f) != 0 { throw ImageDataError(path: path, problem: "read error: \(String(cString: strerror(errno)))") }
                break
            }
        }
        return out
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed, then renamed over the
    /// target, so a reader never sees a half-written file and a crash leaves the old file (or none).
    static func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard let f = fopen(tmp, "wb") else {
            throw ImageDataError(path: path, problem: "cannot create \(tmp): \(String(cString: strerror(errno)))")
        }
        let written = bytes.count == 0 ? 0 : fwrite(bytes.baseAddress, 1, bytes.count, f)
        let flushed = fflush(f) == 0 && fsync(fileno(f)) == 0
        let closed = fclose(f) == 0
        guard written == bytes.count, flushed, closed else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw ImageDataError(path: path, problem: "write failed: \(why)")
        }
        guard rename(tmp, path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw ImageDataError(path: path, problem: "cannot rename the temporary file into place: \(why)")
        }
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }
}
