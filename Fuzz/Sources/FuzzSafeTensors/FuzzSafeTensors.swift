import FuzzSupport
import TensorCore

/// safetensors: the whole-file reader, and the lazy reader tensor by tensor.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    withInputFile(data, size) { path in
        _ = try? SafeTensors.read(path)
        guard let file = try? SafeTensorsFile(path: path) else { return }
        for name in file.names {
            _ = try? file.tensor(name)
        }
    }
    return 0
}
