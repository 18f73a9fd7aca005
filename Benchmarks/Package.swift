// swift-tools-version:6.1
// package-benchmark targets for the engine, kept in their own package so that the library's users never
// build package-benchmark (swift-collections keeps Benchmarks/ the same way). Run from this folder:
//   swift package -Xswiftc -Xcc -Xswiftc -mavx2 -Xswiftc -Xcc -Xswiftc -mfma benchmark
// (or plain `swift package benchmark` for the portable path). docs/performance.md has the details.
import PackageDescription

let package = Package(
    name: "ijepa-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "ijepa-swift", path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "KernelBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "CPUKernels", package: "ijepa-swift"),
            ],
            path: "Benchmarks/KernelBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]),
    ],
    swiftLanguageModes: [.v5]
)
