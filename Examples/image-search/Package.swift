// swift-tools-version:6.0
// An app that uses the engine as any app would: by version, through its one app-facing product, `IJEPA`
// (the encoder, and safetensors for the index file).
// (CI and local checks point this URL at a tagged clone: `swift package config set-mirror`.)
import PackageDescription

let package = Package(
    name: "image-search",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/ijepa-swift/ijepa-swift.git", from: "0.1.0"),
    ],
    targets: [
        .executableTarget(name: "image-search", dependencies: [.product(name: "IJEPA", package: "ijepa-swift")]),
    ],
    swiftLanguageModes: [.v5]
)
