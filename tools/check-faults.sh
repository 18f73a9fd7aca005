#!/usr/bin/env bash
# Faults while training must never cost the last good checkpoint:
#  1. the output folder fills up (a small tmpfs filled by another file) during a resumed run;
#  2. the output folder becomes read-only (`mount -o remount,ro`: as root, chmod would not stop the writes);
#  3. the output folder is removed while the run trains;
# each must end in a one-line error and a non-zero exit (no crash, no hang), the last checkpoint must be
# unchanged, and (1, 2) once the fault is gone, `--resume` must reach the same losses as an uninterrupted run.
# Also: temporary files left by a killed run are removed when the next run starts.
# Needs root for the tmpfs mounts (checks 1-2 are skipped with a message otherwise).
# Usage: tools/check-faults.sh [path/to/ijepa]   (tools/test.sh runs it)
set -uo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:-.build/release/ijepa}")"
work="$(mktemp -d)"
mounts=()
cleanup() { for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

"$bin" export-png --split test --limit 200 --to "$work/data" >/dev/null || { echo "FAIL: export-png"; exit 1; }
common=(--set data.dataset=image-folder --set "data.image_folder=$work/data" --set data.crop_size=16 --set meta.depth=1
        --set meta.embed_dim=32 --set meta.num_heads=2 --set meta.pred_depth=1 --set meta.pred_emb_dim=16
        --set data.batch_size=4 --set mask.min_keep=2 --set mask.num_pred_masks=2 --set "mask.pred_mask_scale=[0.3,0.4]"
        --set logging.checkpoint_every=2)
losses() { cut -d, -f1-3 "$1/log.csv"; }
"$bin" train "${common[@]}" --steps 8 --out "$work/ref" >/dev/null 2>&1 || { echo "FAIL: the reference run"; exit 1; }

# A run of 4 steps in $1, then the fault ($2: a command), then a resumed run to step 8 that must fail cleanly;
# then the fault is undone ($3) and the run resumed to the end.
fault() {
    local name="$1" folder="$2" make="$3" undo="$4"
    "$bin" train "${common[@]}" --steps 4 --out "$folder" >/dev/null 2>&1 || { fail "$name: the first 4 steps"; return; }
    local before; before="$(sha256sum "$folder/checkpoint.safetensors" | cut -d' ' -f1)"
    eval "$make"
    local out rc
    out="$(timeout 120 "$bin" train "${common[@]}" --steps 8 --resume --out "$folder" 2>&1 >/dev/null)"; rc=$?
    local after; after="$(sha256sum "$folder/checkpoint.safetensors" | cut -d' ' -f1)"
    eval "$undo"
    if [ "$rc" -eq 0 ] || [ "$rc" -ge 124 ]; then fail "$name: exit $rc: $out"; return; fi
    # One error line naming the file that could not be written (a resumed run first rewrites its logs, so that
    # is where the fault shows; a run already training stops at its next checkpoint, as the removed-folder check shows).
    if [ "$(echo "$out" | grep -c '^error: ')" -ne 1 ] || ! echo "$out" | grep -q "^error: $folder/"; then
        fail "$name: not one error line naming a file of the run: $out"; return
    fi
    [ "$before" = "$after" ] || { fail "$name: the last checkpoint changed"; return; }
    "$bin" train "${common[@]}" --steps 8 --resume --out "$folder" >/dev/null 2>&1 || { fail "$name: resume after the fault"; return; }
    if [ "$(losses "$folder")" = "$(losses "$work/ref")" ]; then
        echo "ok   $name: exit $rc, $(echo "$out" | grep '^error: ' | cut -c1-150); checkpoint intact; resumed to the same losses"
    else
        fail "$name: the resumed run's losses differ from the uninterrupted run's"
    fi
}

if [ "$(id -u)" -eq 0 ] && mkdir -p "$work/full" && mount -t tmpfs -o size=4m tmpfs "$work/full" 2>/dev/null; then
    mounts+=("$work/full")
    fault "disk full" "$work/full/run" 'dd if=/dev/zero of="$work/full/filler" bs=64k 2>/dev/null' 'rm -f "$work/full/filler"'
    mkdir -p "$work/ro" && mount -t tmpfs -o size=16m tmpfs "$work/ro" && mounts+=("$work/ro")
    fault "read-only folder" "$work/ro/run" 'mount -o remount,ro "$work/ro"' 'mount -o remount,rw "$work/ro"'
else
    echo "skip disk-full and read-only checks: they need root and tmpfs mounts"
fi

# The folder removed while the run trains (a run long enough to be caught mid-way).
"$bin" train "${common[@]}" --epochs 1000 --out "$work/gone" >/dev/null 2>"$work/gone.err" &
pid=$!
for _ in $(seq 100); do [ -f "$work/gone/checkpoint.safetensors" ] && break; sleep 0.1; done
for _ in $(seq 20); do rm -rf "$work/gone" 2>/dev/null && break; done  # the run may add a file meanwhile
if ! timeout 120 tail --pid="$pid" -f /dev/null; then kill -9 "$pid"; fi
wait "$pid"; rc=$?
if [ "$rc" -ge 1 ] && [ "$rc" -lt 124 ] && [ "$(grep -c '^error: ' "$work/gone.err")" -eq 1 ]; then
    echo "ok   removed folder: exit $rc, $(grep '^error: ' "$work/gone.err" | cut -c1-150)"
else
    fail "removed folder: exit $rc: $(tail -3 "$work/gone.err")"
fi

# Temporary files of a killed run are removed at the next start.
touch "$work/ref/.checkpoint.safetensors.tmp-99999" "$work/ref/.log.csv.tmp-12345"
"$bin" train "${common[@]}" --steps 8 --resume --out "$work/ref" >"$work/stale.log" 2>&1
if ls -a "$work/ref" | grep -q '\.tmp-'; then fail "stale temporary files were left: $(ls -a "$work/ref")"
else echo "ok   stale temporary files removed at start: $(grep -o 'removed [0-9]* temporary file(s)' "$work/stale.log")"; fi

echo "fault checks: $fails failed"
[ "$fails" -eq 0 ]
