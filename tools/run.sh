#!/usr/bin/env bash
# Quick start, command 1: the main job. Until training lands, that is the benchmark suite: the measured
# peak of this machine, the GEMM suite on ViT shapes and the row kernels, at 1 thread and at all cores.
# Extra arguments go to `ijepa bench` (e.g. --json, --filter vit-tiny, --threads 1).
source "$(dirname "$0")/setup.sh"
swift build -c release "${SWIFT_FLAGS[@]}" --product ijepa
threads="1,$(nproc)"
[ "$(nproc)" -gt 1 ] || threads=1
exec .build/release/ijepa bench --threads "$threads" "$@"
