#!/usr/bin/env bash
# Quick start, command 2: the whole test suite.
#  1. all tests, built as users build (release, AVX2 + FMA when the CPU has them);
#  2. the kernel tests again in a portable build (no -mavx2/-mfma), which must pass too and must not call
#     libm's per-lane fmaf (docs/building.md);
#  3. the library consumed as a versioned SwiftPM dependency, without and with the fast-path flags.
source "$(dirname "$0")/setup.sh"

echo "== 1/3 swift test -c release ${SWIFT_FLAGS[*]}"
swift test -c release "${SWIFT_FLAGS[@]}"

echo "== 2/3 portable build (no AVX2/FMA flags): kernel tests"
swift test -c release --scratch-path .build-portable --filter CPUKernelsTests
if nm .build-portable/release/CPUKernels.build/*.o 2>/dev/null | grep -qE ' U fmaf?$'; then
    echo "error: the portable build of CPUKernels calls libm fma/fmaf (the per-lane trap)" >&2
    exit 1
fi
echo "portable build: no fmaf calls in CPUKernels"

echo "== 3/3 versioned-dependency check"
bash tools/check-versioned-dependency.sh
