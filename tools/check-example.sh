#!/usr/bin/env bash
# Builds Examples/image-search as an app's CI would: the package named by its public URL and version, that URL
# mirrored to a tagged clone of this checkout (`swift package config set-mirror`), then runs it: index a few
# hundred Fashion-MNIST training PNGs, query one test PNG (printed neighbours and a contact sheet), and the
# neighbours' class agreement over test queries.
# Usage: tools/check-example.sh [CHECKPOINT]   (default: a 20-step run of the default model, trained here)
# FAST_FLAGS (e.g. "-Xcc -mavx2 -Xcc -mfma") are passed to the app's build, as tools/test.sh does.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bin="$root/.build/release/ijepa"
[ -x "$bin" ] || (cd "$root" && swift build -c release ${FAST_FLAGS:-} --product ijepa >/dev/null)

git clone -q "$root" "$work/lib"
git -C "$work/lib" -c user.name=ci -c user.email=ci@localhost tag -a 0.1.0 -m "example check"
cp -r "$root/Examples/image-search" "$work/app"
rm -rf "$work/app/.build" "$work/app/.swiftpm"
(cd "$work/app" && swift package config set-mirror --original https://github.com/ijepa-swift/ijepa-swift.git \
    --mirror "file://$work/lib" && swift build -c release ${FAST_FLAGS:-} >/dev/null)
app="$(cd "$work/app" && swift build -c release ${FAST_FLAGS:-} --show-bin-path)/image-search"

ckpt="${1:-}"
if [ -z "$ckpt" ]; then
    "$bin" train --steps 20 --out "$work/run" >/dev/null
    ckpt="$work/run/checkpoint.safetensors"
fi
"$bin" export-png --split train --limit 300 --to "$work/train" >/dev/null
"$bin" export-png --split test --limit 50 --to "$work/test" >/dev/null
"$app" index --checkpoint "$ckpt" --images "$work/train" --index "$work/index.safetensors"
query="$(ls "$work"/test/*/*.png | head -1)"
"$app" query --checkpoint "$ckpt" --index "$work/index.safetensors" --image "$query" --k 5 --sheet "$work/sheet.png"
[ -s "$work/sheet.png" ] || { echo "error: no contact sheet written" >&2; exit 1; }
"$app" agreement --checkpoint "$ckpt" --index "$work/index.safetensors" --queries "$work/test" --k 5
echo "example app: OK"
