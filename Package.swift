// swift-tools-version:6.1
// The I-JEPA engine: pure-Swift CPU kernels, tensors and (later) the model.
//
// No `unsafeFlags` here on purpose: SwiftPM refuses a versioned dependency whose manifest declares any, so
// the fast path (AVX2 + FMA) is switched on from the command line (`-Xcc -mavx2 -Xcc -mfma`, or a --toolset
// file), never from this file. See docs/building.md. `SIMDProbe` tells the Swift code at compile time which
// instruction set it is being compiled for, so a build without FMA uses mul + add instead of per-lane `fmaf`.
import PackageDescription

let package = Package(
    name: "ijepa-swift",
    platforms: [.macOS(.v15)],
    // Two library products: `IJEPA`, the front door for apps (encoders, training, the engine's settings), and
    // `CPUKernels`, the raw-pointer kernels for profiling and for Benchmarks/. Every other module is an internal
    // layer of IJEPA whose declarations are `package` (docs/public-api.txt lists what apps can call).
    products: [
        .library(name: "CPUKernels", targets: ["CPUKernels"]),
        .library(name: "IJEPA", targets: ["IJEPA"]),
        .executable(name: "ijepa", targets: ["ijepa"]),
    ],
    // Opt-in features, off by default: `swift build --traits MPI` (docs/distributed.md).
    traits: [
        .trait(name: "MPI", description: "Data-parallel training over Open MPI (Debian: libopenmpi-dev, openmpi-bin)."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Header-only compile-time probe of the target's SIMD features (no C code, nothing linked).
        .systemLibrary(name: "SIMDProbe", path: "Sources/SIMDProbe"),
        // System libraries reached through their headers only (no C code of ours): PNG decoding and gzip.
        .systemLibrary(name: "CLibPNG", path: "Sources/CLibPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Open MPI through a shim header, only with the MPI trait (all code that uses it is inside `#if MPI`).
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "CPUKernels", dependencies: ["SIMDProbe"]),
        .target(name: "TensorCore", dependencies: ["CPUKernels"]),
        .target(name: "NNLayers", dependencies: ["CPUKernels", "TensorCore"]),
        .target(name: "JEPA", dependencies: ["CPUKernels", "TensorCore", "NNLayers"]),
        .target(name: "ImageData", dependencies: ["CLibPNG", "CZlib", "CPUKernels", "TensorCore"]),
        .target(name: "LinearEval", dependencies: ["CPUKernels", "TensorCore"]),
        // Data parallelism: the shard tree's top levels across processes (MPI trait), else nothing.
        .target(name: "DataParallel", dependencies: [
            "CPUKernels", "TensorCore", .target(name: "CMPI", condition: .when(traits: ["MPI"])),
        ]),
        .target(name: "KernelBench", dependencies: ["CPUKernels", "TensorCore", "NNLayers", "JEPA", "IJEPA"]),
        // The app-facing front door: the Encoder that embeds images, the training run and its config, the step
        // trainer (above the model, beside the run that drives it).
        .target(name: "IJEPA", dependencies: ["CPUKernels", "TensorCore", "NNLayers", "JEPA", "ImageData", "LinearEval",
                                              "TorchImport", "DataParallel"]),
        .target(name: "TorchImport", dependencies: ["CZlib", "TensorCore"]),
        .executableTarget(
            name: "ijepa",
            dependencies: [
                "CPUKernels", "TensorCore", "NNLayers", "JEPA", "ImageData", "LinearEval", "KernelBench", "IJEPA",
                "DataParallel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "CPUKernelsTests", dependencies: ["CPUKernels"]),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "CPUKernels"]),
        .testTarget(name: "ImageDataTests", dependencies: ["ImageData", "TensorCore"]),
        .testTarget(name: "LinearEvalTests", dependencies: ["LinearEval", "TensorCore", "CPUKernels"]),
        .testTarget(name: "IJEPATests",
                    dependencies: ["IJEPA", "JEPA", "ImageData", "NNLayers", "TensorCore", "CPUKernels"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "JEPATests", dependencies: ["JEPA", "IJEPA", "DataParallel", "NNLayers", "TensorCore", "CPUKernels"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "TorchImportTests", dependencies: ["TorchImport", "TensorCore", "IJEPA"],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)

// The documentation plugin, only when building the docs (tools/docs.sh sets IJEPA_DOCS=1): an app that depends
// on this package never resolves it.
if Context.environment["IJEPA_DOCS"] != nil {
    package.dependencies.append(.package(url: "https://github.com/swiftlang/swift-docc-plugin", exact: "1.5.0"))
}
