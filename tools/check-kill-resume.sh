#!/usr/bin/env bash
# SIGKILL a training run again and again at seeded random moments, resuming it each time, and check that it ends
# with the same bits as an uninterrupted run: the final checkpoint's tensors (byte for byte) and every logged
# number. Every fourth kill waits until the run is writing its temporary checkpoint, so a kill mid-write is
# certain to happen (the rename must leave the previous checkpoint intact, and the next start must remove the
# temporary file). The other kills come after a random number of this life's steps (1-10) plus a random
# fraction of a second: counted in steps, not seconds, so the run progresses between kills however long this
# machine takes to start a run or to write a checkpoint (48 MB, ~1 s on a slow disk).
# Usage: tools/check-kill-resume.sh [path/to/ijepa] [kills (default 20)] [seed (default 1)]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-.build/release/ijepa}"
kills="${2:-20}"
RANDOM="${3:-1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
steps=150
args=(--steps "$steps" --batch-size 16 --threads 1 --set logging.checkpoint_every=5 --set logging.log_every=1)

source tools/tensors-hash.sh

"$bin" train --out "$work/straight" "${args[@]}" >/dev/null

tmp_glob="$work/killed/.checkpoint.safetensors.tmp-*"
done_kills=0 mid_write=0 lives=0
while [ "$done_kills" -lt "$kills" ]; do
    resume=()
    [ -f "$work/killed/checkpoint.safetensors" ] && resume=(--resume)
    logged="$(grep -c '^step' "$work/lives.log" 2>/dev/null || true)"
    "$bin" train "${resume[@]}" --out "$work/killed" "${args[@]}" >>"$work/lives.log" 2>&1 &
    pid=$!
    lives=$((lives + 1))
    if [ $((done_kills % 4)) -eq 3 ]; then
        # Wait for a temporary checkpoint of this life (the start removes a stale one first).
        sleep 0.3
        while ! compgen -G "$tmp_glob" >/dev/null; do
            kill -0 "$pid" 2>/dev/null || break
        done
    else
        wanted=$((${logged:-0} + 1 + RANDOM % 10))
        while [ "$(grep -c '^step' "$work/lives.log" || true)" -lt "$wanted" ]; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.01
        done
        sleep "0.$(printf '%03d' $((RANDOM % 300)))"
    fi
    if ! kill -9 "$pid" 2>/dev/null; then
        wait "$pid" || { echo "FAIL: life $lives exited with an error:"; tail -5 "$work/lives.log"; exit 1; }
        echo "FAIL: the run finished after $done_kills kills; raise steps in $0"
        exit 1
    fi
    wait "$pid" 2>/dev/null || true
    done_kills=$((done_kills + 1))
    if compgen -G "$tmp_glob" >/dev/null; then mid_write=$((mid_write + 1)); fi
    at="$(tail -n 1 "$work/killed/log.csv" 2>/dev/null | cut -d, -f1 || true)"
    echo "kill $done_kills at logged step ${at:-none}$(compgen -G "$tmp_glob" >/dev/null && echo ', while writing the temporary checkpoint')"
done
resume=()
[ -f "$work/killed/checkpoint.safetensors" ] && resume=(--resume)
"$bin" train "${resume[@]}" --out "$work/killed" "${args[@]}" >>"$work/lives.log" 2>&1 ||
    { echo "FAIL: the last resume failed:"; tail -5 "$work/lives.log"; exit 1; }
if compgen -G "$tmp_glob" >/dev/null; then echo "FAIL: a temporary checkpoint was left behind"; exit 1; fi
if [ "$mid_write" -lt $((kills / 4)) ]; then echo "FAIL: only $mid_write kills hit a temporary checkpoint"; exit 1; fi

a="$(tensors_hash "$work/straight/checkpoint.safetensors")" b="$(tensors_hash "$work/killed/checkpoint.safetensors")"
[ "$a" = "$b" ] || { echo "FAIL: the final tensors differ from the uninterrupted run's ($a vs $b)"; exit 1; }
if ! diff <(cut -d, -f1-8 "$work/straight/log.csv") <(cut -d, -f1-8 "$work/killed/log.csv") >/dev/null; then
    echo "FAIL: the logged numbers differ:"; diff <(cut -d, -f1-8 "$work/straight/log.csv") <(cut -d, -f1-8 "$work/killed/log.csv") | head
    exit 1
fi
echo "ok: $done_kills kills ($mid_write while writing the temporary checkpoint) over $lives lives of a $steps-step run; final tensors (sha256 ${a:0:16}) and the log's step, epoch, loss, lr, wd, momentum and mask sizes equal the uninterrupted run's"
