#!/usr/bin/env bash
# Quick start, command 2: the whole test suite.
#  1. all tests, built as users build (release, AVX2 + FMA when the CPU has them, AVX-512 where it is full width);
#  2. the kernel tests again in a portable build (no -mavx2/-mfma), which must pass too and must not call
#     libm's per-lane fmaf (docs/building.md), and in an AVX2 build when step 1 built the AVX-512 path;
#  3. the library consumed as a versioned SwiftPM dependency, without and with the fast-path flags, the
#     example app (Examples/image-search) built by version through a URL mirror and run on 300 images, and
#     the DocC documentation of IJEPA built offline with warnings as errors (tools/docs.sh), and the public API
#     of the library products compared with docs/public-api.txt (tools/public_api.py);
#  4. the command-line tool fed bad inputs (corrupt PNG/IDX files, bad folders, configs, masks, checkpoints), and
#     faults while training (disk full, read-only and removed output folder, temporary files of killed runs, 20
#     kills at random moments each resumed to the uninterrupted run's bits);
#  5. AddressSanitizer over the whole suite, ThreadSanitizer over the tests that use threads, and a deliberate
#     race that ThreadSanitizer must report (tools/sanitize.sh); the whole suite in a debug build (the standard
#     library's debug checks);
#  6. the fuzz targets (libFuzzer + AddressSanitizer): every corpus and regression input replayed, then a short
#     run of each with a fixed seed (tools/fuzz.sh replay; open-ended fuzzing stays outside CI);
#  7. data-parallel training over Open MPI (the MPI trait; installs Open MPI when missing): the same bits on 1,
#     2, 4 and 8 processes, and a resume on another process count (tools/check-distributed.sh); two ranks in two
#     network namespaces over a veth link shaped to 1 Gbit/s, and the link taken down (tools/check-network.sh).
source "$(dirname "$0")/setup.sh"

# The repository is self-contained: no code, doc or tool cites documents outside it. The pattern is built from
# pieces so that this script does not match it itself.
pat='shared''/|reference ''section'
if grep -rnIE "$pat" Sources docs tools README.md --exclude-dir='.venv*' >/dev/null; then
    echo "error: citations of documents outside the repository:" >&2
    grep -rnIE "$pat" Sources docs tools README.md --exclude-dir='.venv*' >&2
    exit 1
fi

# No new global state in the library (the remaining globals are listed there, to be replaced by the Engine).
bash tools/check-globals.sh

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

echo "== 1/7 swift test -c release ${SWIFT_FLAGS[*]}"
swift test -c release "${SWIFT_FLAGS[@]}" 2>&1 | tee "$logs/fast.log"

# The stdlib's unaligned SIMD loads and stores must be inlined into the kernels. When a function grows past the
# optimizer's inlining budget they become out-of-line calls, which `nm` shows as defined specializations, and a
# GEMM ran at 10-25 GFLOP/s instead of 100 (docs/building.md).
check_inlined() {
    local outlined
    if ! ls "$1"/release/CPUKernels.build/*.o >/dev/null 2>&1; then
        echo "error: no CPUKernels objects under $1/release to check" >&2
        exit 1
    fi
    outlined="$(nm "$1"/release/CPUKernels.build/*.o 2>/dev/null | grep -E ' [TtWw] ' | grep -E 'loadUnaligned|storeBytes' || true)"
    if [ -n "$outlined" ]; then
        echo "error: $1: CPUKernels calls the stdlib's SIMD loads/stores out of line (a kernel outgrew the inliner's budget):" >&2
        echo "$outlined" >&2
        exit 1
    fi
    echo "$1: SIMD loads and stores inlined in CPUKernels"
}
check_inlined .build

echo "== 2/7 portable build (no AVX2/FMA flags): kernel tests"
swift test -c release --scratch-path .build-portable --filter CPUKernelsTests 2>&1 | tee "$logs/portable.log"
if nm .build-portable/release/CPUKernels.build/*.o 2>/dev/null | grep -E ' U fmaf?$' >/dev/null; then
    echo "error: the portable build of CPUKernels calls libm fma/fmaf (the per-lane trap)" >&2
    exit 1
fi
echo "portable build: no fmaf calls in CPUKernels"
check_inlined .build-portable
if [[ " ${SWIFT_FLAGS[*]} " == *" -mavx512f "* ]]; then
    # Step 1 ran the AVX-512 path (6x32 GEMM tile); the AVX2 path (6x16) is what AVX2-only CPUs run.
    echo "== 2/7 AVX2 build (the main build is AVX-512): kernel tests"
    swift test -c release --scratch-path .build-avx2 -Xcc -mavx2 -Xcc -mfma --filter CPUKernelsTests 2>&1 | tee "$logs/avx2.log"
    check_inlined .build-avx2
fi

echo "== 3/7 versioned-dependency check, example app, documentation"
FAST_FLAGS="${SWIFT_FLAGS[*]}" bash tools/check-versioned-dependency.sh
FAST_FLAGS="${SWIFT_FLAGS[*]}" bash tools/check-example.sh
bash tools/docs.sh
source tools/install-mpi.sh  # the symbol graphs are dumped with every trait on, MPI included
python3 tools/public_api.py --check -c release "${SWIFT_FLAGS[@]}"

echo "== 4/7 bad inputs through the CLI"
swift build -c release "${SWIFT_FLAGS[@]}" --product ijepa
bash tools/check-bad-inputs.sh .build/release/ijepa
bash tools/check-faults.sh .build/release/ijepa
bash tools/check-kill-resume.sh .build/release/ijepa | tail -1

echo "== 5/7 sanitizers: ASan over the suite, TSan over the threaded tests, the TSan canary; a debug build"
bash tools/sanitize.sh all
# The whole suite once more in a debug build: the standard library's debug checks (the alignment of raw-pointer
# loads, among others), which release builds drop, found a misaligned SIMD load in the attention kernel.
if ! swift test "${SWIFT_FLAGS[@]}" >"$logs/debug.log" 2>&1; then
    grep -E "error:|Fatal|failed" "$logs/debug.log" | tail -20
    echo "error: the test suite failed in the debug build" >&2
    exit 1
fi
echo "debug build: $(grep -E "Executed [0-9]+ tests" "$logs/debug.log" | tail -1 | sed -E 's/^[[:space:]]+//')"

echo "== 6/7 fuzz targets: corpora and regression inputs replayed, short seeded runs"
bash tools/fuzz.sh replay

echo "== 7/7 data-parallel training over Open MPI: the same bits for any number of processes"
bash tools/check-distributed.sh
bash tools/check-network.sh

# One plain closing line for tools that read it: XCTest's totals of steps 1 and 2 (Swift Testing, which runs
# after XCTest in each `swift test`, has no tests here and prints a 0-test line last). XCTest counts skipped
# tests (e.g. the external-checkpoint test without its environment variable) among the executed ones.
total() {
    grep -E "Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?" "$1" | tail -1 |
        sed -E 's/.*Executed ([0-9]+) tests?, with (([0-9]+) tests? skipped and )?([0-9]+) failures?.*/\1 \4 \3/'
}
read -r n1 f1 s1 < <(total "$logs/fast.log")
read -r n2 f2 s2 < <(total "$logs/portable.log")
s1=${s1:-0}; s2=${s2:-0}
echo "tests: $((n1 + n2 - f1 - f2 - s1 - s2)) passed, $((f1 + f2)) failed, $((s1 + s2)) skipped"
