import CPUKernels
import Foundation

/// Image trees laid out as torchvision's `ImageFolder`: `root/<class>/<image>.png`.
///
/// Rules of `load`:
/// - classes are the sub-folders of `root`, sorted by name (byte order); label = position in that order;
/// - the images of a class are its `.png` files (any case), found recursively, in name order folder by folder;
/// - names starting with "." (`.DS_Store`, `.git`, editor swap files) are skipped, as are plain files directly
///   in `root` (a README next to the class folders);
/// - any other file in a class folder is an error naming it: a `.jpg` or `.txt` silently left out would change
///   the data set without anyone knowing;
/// - a missing root, a root without class folders, an empty class folder, and an unreadable, corrupt or
///   truncated PNG are errors naming the path.
/// Every image is decoded to `channels` (see `PNGCodec` for alpha and colour conversion) and resized to
/// size x size with the antialiased bilinear filter (kept as it is when already that size).
package enum ImageFolder {
    /// Decodes on up to `threads` threads; the result does not depend on it.
    package static func load(root: String, size: Int, channels: Int, threads: Int = Parallel.hardwareThreads) throws -> ImageDataset {
        guard size > 0 else { throw ImageDataError(path: root, problem: "image size must be positive (got \(size))") }
        guard channels == 1 || channels == 3 else {
            throw ImageDataError(path: root, problem: "channels must be 1 or 3 (got \(channels))")
        }
        guard FileManager.default.fileExists(atPath: root) else { throw ImageDataError(path: root, problem: "no such folder") }
        guard FileIO.isDirectory(root) else { throw ImageDataError(path: root, problem: "is a file, not a folder of class folders") }
        let fm = FileManager.default
        let classes = try sortedEntries(root).filter { !$0.hasPrefix(".") && FileIO.isDirectory(root + "/" + $0) }
        guard !classes.isEmpty else {
            throw ImageDataError(path: root, problem: "no class folders (expected root/<class>/<image>.png)")
        }
        var files: [String] = [], labels: [Int] = []
        for (label, name) in classes.enumerated() {
            let dir = root + "/" + name
            let found = try pngFiles(in: dir, fm: fm)
            guard !found.isEmpty else {
                throw ImageDataError(path: dir, problem: "class folder \"\(name)\" holds no .png images")
            }
            files += found
            labels += [Int](repeating: label, count: found.count)
        }
        let name = URL(fileURLWithPath: root).standardizedFileURL.lastPathComponent
        return try ImageDataset.resizing(count: files.count, size: size, channels: channels, name: name, labels: labels,
                                         classNames: classes, threads: threads, source: { files[$0] }) { i in
            try PNGCodec.decode(path: files[i], channels: channels)
        }
    }

    /// Writes `data` as `root/<label>_<class>/<index>.png`: the label zero-padded so that the folders sort in
    /// label order (and load back with the same labels), `/` in class names replaced by `-`, the file named by
    /// the image's index in `data`, zero-padded to at least 5 digits. Each file is written atomically.
    ///
    /// An existing non-empty `root` is refused unless `overwrite`; with `overwrite` its contents are deleted
    /// first, but only when they look like an image tree (class folders holding `.png` and hidden files only),
    /// so a mistyped path never wipes unrelated files. A class without images is refused (the tree could not be
    /// loaded back). Class folder names are what `load` then reports as class names.
    package static func export(_ data: ImageDataset, to root: String, overwrite: Bool, threads: Int = Parallel.hardwareThreads) throws {
        guard [1, 2, 3, 4].contains(data.channels) else {
            throw ImageDataError(path: root, problem: "cannot export \(data.channels)-channel images as PNG")
        }
        if let empty = data.classCounts.firstIndex(of: 0) {
            throw ImageDataError(path: root, problem: "class \(empty) (\"\(data.classNames[empty])\") has no images; an image folder cannot hold an empty class")
        }
        let fm = FileManager.default
        if fm.fileExists(atPath: root) {
            guard FileIO.isDirectory(root) else { throw ImageDataError(path: root, problem: "exists and is not a folder") }
            let entries = try sortedEntries(root)
            if !entries.isEmpty {
                guard overwrite else {
                    throw ImageDataError(path: root, problem: "folder is not empty (\(entries.count) entries); refusing to write into it without overwrite")
                }
                for e in entries where !e.hasPrefix(".") {
                    let p = root + "/" + e
                    guard FileIO.isDirectory(p) else {
                        throw ImageDataError(path: p, problem: "refusing to overwrite \(root): it holds this file, which an export does not write")
                    }
                    for f in try sortedEntries(p) where !f.hasPrefix(".") && !f.lowercased().hasSuffix(".png") {
                        throw ImageDataError(path: p + "/" + f, problem: "refusing to overwrite \(root): it holds this file, which an export does not write")
                    }
                }
                for e in entries {
                    do { try fm.removeItem(atPath: root + "/" + e) } catch {
                        throw ImageDataError(path: root + "/" + e, problem: "cannot remove: \(error.localizedDescription)")
                    }
                }
            }
        }
        let labelDigits = String(max(0, data.classNames.count - 1)).count
        let fileDigits = max(5, String(max(0, data.count - 1)).count)
        func padded(_ v: Int, _ n: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, n - s.count)) + s }
        let folders = data.classNames.enumerated().map { (i, name) -> String in
            root + "/" + padded(i, labelDigits) + "_" + name.replacingOccurrences(of: "/", with: "-")
                .replacingOccurrences(of: "\0", with: "")
        }
        for f in folders {
            do { try fm.createDirectory(atPath: f, withIntermediateDirectories: true) } catch {
                throw ImageDataError(path: f, problem: "cannot create folder: \(error.localizedDescription)")
            }
        }
        var errors = [ImageDataError?](repeating: nil, count: data.count)
        errors.withUnsafeMutableBufferPointer { errs in
            let errs = errs
            Parallel.forEach(tasks: data.count, threads: threads) { i, _ in
                let path = folders[data.labels[i]] + "/" + padded(i, fileDigits) + ".png"
                do {
                    try PNGCodec.write(path: path, width: data.width, height: data.height, channels: data.channels,
                                       pixels: Array(data.image(i)))
                } catch let e as ImageDataError {
                    errs[i] = e
                } catch {
                    errs[i] = ImageDataError(path: path, problem: "\(error)")
                }
            }
        }
        if let first = errors.first(where: { $0 != nil }) { throw first! }
    }

    // MARK: Internals

    static func sortedEntries(_ dir: String) throws -> [String] {
        do {
            // Byte order of the UTF-8 names (as Python's sorted on str for ASCII names).
            return try FileManager.default.contentsOfDirectory(atPath: dir).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        } catch {
            throw ImageDataError(path: dir, problem: "cannot list folder: \(error.localizedDescription)")
        }
    }

    /// The .png files under `dir`, recursively, in name order folder by folder; hidden entries skipped; any other file
    /// is an error naming it.
    static func pngFiles(in dir: String, fm: FileManager) throws -> [String] {
        var out: [String] = []
        for e in try sortedEntries(dir) where !e.hasPrefix(".") {
            let p = dir + "/" + e
            if FileIO.isDirectory(p) {
                out += try pngFiles(in: p, fm: fm)
            } else if e.lowercased().hasSuffix(".png") {
                out.append(p)
            } else {
                throw ImageDataError(path: p, problem: "not a .png file; image folders hold PNG images only (remove or move it, or hide it with a leading \".\")")
            }
        }
        return out
    }
}

extension ImageDataset {
    /// `count` images from `decode(i)` (any size, `channels` interleaved), each resized to `size` x `size` with
    /// `Resample.resize` (as a folder of PNGs loads), decoded on up to `threads` threads, each into its own slot
    /// (the result does not depend on the thread count). The first failure is thrown, named by `source(i)`.
    package static func resizing(
        count: Int, size: Int, channels: Int, name: String, labels: [Int], classNames: [String], threads: Int,
        source: (Int) -> String, decode: (Int) throws -> (width: Int, height: Int, pixels: [UInt8])
    ) throws -> ImageDataset {
        let per = size * size * channels
        var pixels = [UInt8](repeating: 0, count: count * per)
        var errors = [ImageDataError?](repeating: nil, count: count)
        pixels.withUnsafeMutableBufferPointer { px in
            errors.withUnsafeMutableBufferPointer { errs in
                let (px, errs) = (px, errs)
                Parallel.forEach(tasks: count, threads: threads) { i, _ in
                    do {
                        let d = try decode(i)
                        let img = Resample.resize(d.pixels, width: d.width, height: d.height, channels: channels,
                                                  outW: size, outH: size)
                        img.withUnsafeBufferPointer { px.baseAddress!.advanced(by: i * per).update(from: $0.baseAddress!, count: per) }
                    } catch let e as ImageDataError {
                        errs[i] = e
                    } catch {
                        errs[i] = ImageDataError(path: source(i), problem: "\(error)")
                    }
                }
            }
        }
        if let first = errors.first(where: { $0 != nil }) { throw first! }
        return ImageDataset(name: name, width: size, height: size, channels: channels, pixels: pixels,
                            labels: labels, classNames: classNames)
    }
}
