// swift-tools-version:6.0
// libFuzzer targets, one per parser of files users receive (docs/fuzzing.md). A package of its own because
// libFuzzer brings its own `main`, which collides with the `ijepa` tool's; it reaches the parsers through the
// IJEPA product's `Fuzzing` SPI (`@_spi(Fuzzing) import IJEPA`: the parsers are `package` inside the engine).
// Built and run by tools/fuzz.sh:
//   swift build -c release --sanitize=fuzzer --sanitize=address --package-path Fuzz --product FuzzPNG
import PackageDescription

let engine = "ijepa-swift"
func fuzzer(_ name: String, _ products: [String]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: engine) })
}
let package = Package(
    name: "ijepa-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: engine, path: "..")],
    targets: [
        .target(name: "FuzzSupport"),
        fuzzer("FuzzPNG", ["IJEPA"]),
        fuzzer("FuzzIDX", ["IJEPA"]),
        fuzzer("FuzzSafeTensors", ["IJEPA"]),
        fuzzer("FuzzConfig", ["IJEPA"]),
        fuzzer("FuzzCheckpoint", ["IJEPA"]),
        fuzzer("FuzzTorch", ["IJEPA"]),
    ],
    swiftLanguageModes: [.v5]
)
