#!/usr/bin/env bash
# SIGKILL a training run mid-way, resume it, and check that the losses after resuming equal those of an
# uninterrupted run with the same seed (and that the checkpoint left behind was complete).
# Usage: tools/check-kill-resume.sh [path/to/ijepa] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-.build/release/ijepa}"
steps="${2:-60}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
args=(--steps "$steps" --batch-size 16 --set logging.checkpoint_every=7 --set logging.log_every=1000)

"$bin" train --out "$work/straight" "${args[@]}" >/dev/null

"$bin" train --out "$work/killed" "${args[@]}" >/dev/null 2>&1 &
pid=$!
kill_at=$((steps * 2 / 3))
while :; do
    n="$(tail -n 1 "$work/killed/log.csv" 2>/dev/null | cut -d, -f1 || true)"
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge "$kill_at" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "FAIL: the run ended before it could be killed"; exit 1; }
    sleep 0.05
done
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
echo "killed at step $n; checkpoint says: $(cat "$work/killed/checkpoint.safetensors.json")"
"$bin" train --resume --out "$work/killed" "${args[@]}" | grep -E "resumed|trained"

if diff <(cut -d, -f1-8 "$work/straight/log.csv") <(cut -d, -f1-8 "$work/killed/log.csv") >/dev/null; then
    echo "ok: $steps steps, killed at $n, resumed: step, epoch, loss, lr, wd, momentum and mask sizes equal the uninterrupted run"
else
    echo "FAIL: the resumed run differs:"; diff <(cut -d, -f1-8 "$work/straight/log.csv") <(cut -d, -f1-8 "$work/killed/log.csv") | head
    exit 1
fi
