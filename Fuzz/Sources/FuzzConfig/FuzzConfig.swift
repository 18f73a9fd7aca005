import Pretraining

/// The training configuration (JSON), and what is derived from it before a run starts: the architecture and the
/// mask settings, both validated.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let config = try? TrainingConfig.load(text: text, source: "fuzz.json") else { return 0 }
    _ = try? config.vitConfig()
    _ = try? config.maskConfig().validate()
    _ = config.jsonText()
    _ = config.trainingHash
    return 0
}
