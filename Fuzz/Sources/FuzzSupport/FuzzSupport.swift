import Foundation

/// The fuzzer's input as a file, for parsers that read paths: written to one file per process under /dev/shm
/// (memory, so an execution costs no disk I/O) and overwritten by the next input. `suffix` picks the name's
/// extension where the parser looks at it.
public func withInputFile<R>(_ data: UnsafePointer<UInt8>, _ size: Int, suffix: String = "",
                             _ body: (String) throws -> R) rethrows -> R {
    let folder = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let path = "\(folder)/ijepa-fuzz-\(getpid())\(suffix)"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(fd >= 0, "cannot create \(path)")
    var written = 0
    while written < size {
        let n = write(fd, data + written, size - written)
        precondition(n > 0, "cannot write \(path)")
        written += n
    }
    close(fd)
    return try body(path)
}

/// The input as bytes.
public func bytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}
