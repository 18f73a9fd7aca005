#!/usr/bin/env bash
# Builds the DocC documentation of the IJEPA module (Sources/IJEPA/IJEPA.docc: the landing page and three
# articles) and of the CPUKernels product offline, with every warning an error, into .build-docs/IJEPA.doccarchive
# and .build-docs/CPUKernels.doccarchive; checks that the archives have the pages their users need. The plugin
# (swift-docc-plugin 1.5.0) is declared only when IJEPA_DOCS is set, so an app that depends on this package never
# sees it.
# Usage: tools/docs.sh [output folder for a static website, optional]
source "$(dirname "$0")/setup.sh"
out=.build-docs/IJEPA.doccarchive
rm -rf "$out"
extra=()
[ -n "${1:-}" ] && extra=(--transform-for-static-hosting --hosting-base-path ijepa-swift)
IJEPA_DOCS=1 swift package --scratch-path .build-docs generate-documentation --target IJEPA --warnings-as-errors \
    --output-path "$out" "${extra[@]}" 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]|^Building|^Build of|^Compiling' || true
[ -d "$out" ] || { echo "error: no documentation archive was written" >&2; exit 1; }
for page in ijepa ijepa/encoder ijepa/engine ijepa/image ijepa/trainingconfig ijepa/trainingrun ijepa/embeddingimages ijepa/trainingamodel ijepa/kernelsandperformance; do
    [ -f "$out/data/documentation/$page.json" ] || { echo "error: $out has no page $page" >&2; exit 1; }
done
echo "docs: $out (IJEPA, Encoder, Engine, Image, TrainingConfig, TrainingRun and the three articles)"
# The kernels product, for the profiling user and Benchmarks/: its own archive, the same rules.
kout=.build-docs/CPUKernels.doccarchive
rm -rf "$kout"
IJEPA_DOCS=1 swift package --scratch-path .build-docs generate-documentation --target CPUKernels --warnings-as-errors \
    --output-path "$kout" 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]|^Building|^Build of|^Compiling' || true
for page in cpukernels cpukernels/kernelcontext cpukernels/gemmblocking cpukernels/peakprobe cpukernels/parallel \
    "cpukernels/sgemmreference(c:ldc:a:lda:transa:b:ldb:transb:m:n:k:alpha:beta:bias:residual:)"; do
    [ -f "$kout/data/documentation/$page.json" ] || { echo "error: $kout has no page $page" >&2; exit 1; }
done
echo "docs: $kout (sgemm and its reference, the row kernels, KernelContext, GEMMBlocking, PeakProbe)"
[ -n "${1:-}" ] && { rm -rf "$1"; cp -r "$out" "$1"; echo "static website in $1"; }
exit 0
