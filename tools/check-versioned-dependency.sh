#!/usr/bin/env bash
# Proves that an app can depend on this package *by version* (SwiftPM refuses versioned dependencies whose
# manifest has unsafeFlags) and turn the fast path on from its own command line or a toolset file.
# Builds a throwaway consumer against a tagged clone of HEAD three times: plain (portable), with
# -Xcc -mavx2 -Xcc -mfma, and with --toolset tools/avx2-fma-toolset.json; each run checks a GEMM against
# the reference and prints the compiled SIMD path, which must match the flags.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

git clone -q "$root" "$work/lib"
git -C "$work/lib" -c user.name=ci -c user.email=ci@localhost tag -a 0.1.0 -m "versioned-dependency check"

mkdir -p "$work/app/Sources/App"
cat > "$work/app/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "App",
    dependencies: [.package(url: "file://$work/lib", from: "0.1.0")],
    targets: [.executableTarget(name: "App", dependencies: [.product(name: "CPUKernels", package: "lib")])]
)
SWIFT
cat > "$work/app/Sources/App/main.swift" <<'SWIFT'
import CPUKernels
let (m, n, k) = (37, 53, 300)
let a = (0..<m * k).map { Float($0 % 13) - 6 }, b = (0..<k * n).map { Float($0 % 7) - 3 }
var c = [Float](repeating: 0, count: m * n), ref = c
sgemm(c: &c, ldc: n, a: a, lda: k, transA: false, b: b, ldb: n, transB: false, m: m, n: n, k: k)
sgemmReference(c: &ref, ldc: n, a: a, lda: k, transA: false, b: b, ldb: n, transB: false, m: m, n: n, k: k)
precondition(c == ref, "GEMM mismatch in the consumer app")  // small integers: exact in Float
print("SIMD path: \(SIMDPath.name)")
SWIFT

check() {
    local expect="$1"; shift
    local out
    out="$(cd "$work/app" && swift build -c release "$@" >/dev/null && "$(swift build -c release "$@" --show-bin-path)/App")"
    echo "  $* -> $out"
    case "$out" in *"$expect"*) ;; *) echo "error: expected '$expect' with flags '$*'" >&2; exit 1 ;; esac
}
echo "consumer depends on CPUKernels from: 0.1.0"
if [ "$(uname -m)" = "x86_64" ]; then
    check "no-fma"
    check "avx2+fma" -Xcc -mavx2 -Xcc -mfma
    check "avx2+fma" --toolset "$root/tools/avx2-fma-toolset.json"
else
    check "SIMD path"
fi
echo "versioned dependency: OK"
