#!/usr/bin/env bash
# Quick start, command 1: the main job. Trains the default small I-JEPA (ViT-Tiny/4 on Fashion-MNIST from the
# Debian package dataset-fashion-mnist) with a live progress line, then prints the probe table (I-JEPA vs random
# init vs raw pixels) and, as its last line, one JSON object with the accuracies and the wall time.
# The run lives in runs/fashion-mnist (replaced each time); extra arguments go to `ijepa train`.
source "$(dirname "$0")/setup.sh"
swift build -c release "${SWIFT_FLAGS[@]}" --product ijepa
exec .build/release/ijepa train --probe --out runs/fashion-mnist --overwrite "$@"
