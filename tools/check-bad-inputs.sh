#!/usr/bin/env bash
# Feeds the CLI bad inputs and checks that each one gets a clear one-line error naming the problem, a non-zero
# exit that is not a crash (no signal), no hang (timeout), and that nothing that existed is overwritten.
# Usage: tools/check-bad-inputs.sh [path/to/ijepa]   (default .build/release/ijepa; tools/test.sh runs it)
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${1:-.build/release/ijepa}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fails=0

# expect NAME PATTERN -- command...: exit status 1..127 (an error, not a signal), within 60 s, stderr matches.
expect() {
    local name="$1" pattern="$2"; shift 3
    local out rc
    out="$(timeout 60 "$@" 2>&1 >/dev/null)"; rc=$?
    if [ "$rc" -eq 124 ]; then echo "FAIL $name: hung (killed after 60 s)"; fails=$((fails + 1)); return; fi
    if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then echo "FAIL $name: exit $rc"; echo "$out" | tail -3; fails=$((fails + 1)); return; fi
    if ! echo "$out" | grep -qE "$pattern"; then echo "FAIL $name: message does not match /$pattern/: $out"; fails=$((fails + 1)); return; fi
    echo "ok   $name: exit $rc: $(echo "$out" | grep -E "$pattern" | head -1 | cut -c1-160)"
}

tiny=(--set data.crop_size=16 --set meta.depth=1 --set meta.embed_dim=32 --set meta.num_heads=2
      --set meta.pred_depth=1 --set meta.pred_emb_dim=16 --set data.batch_size=2 --set mask.min_keep=2
      --set mask.num_pred_masks=2 --set "mask.pred_mask_scale=[0.3,0.4]" --steps 1)

# An ImageFolder with two classes of valid PNGs, then variants with one defect each.
"$bin" export-png --split test --limit 200 --to "$work/good" >/dev/null || { echo "FAIL: export-png"; exit 1; }
variant() { rm -rf "$work/$1"; cp -r "$work/good" "$work/$1"; }
folder() { echo "data.image_folder=$work/$1"; }

variant truncated; f="$(ls "$work"/truncated/*/*.png | head -1)"; head -c 100 "$work/good/$(basename "$(dirname "$f")")/$(basename "$f")" > "$f"
expect "truncated PNG" "$(basename "$f")" -- "$bin" train --set data.dataset=image-folder --set "$(folder truncated)" --out "$work/run-truncated" "${tiny[@]}"
variant garbage; f="$(ls "$work"/garbage/*/*.png | head -1)"; head -c 3000 /dev/urandom > "$f"
expect "corrupt PNG" "$(basename "$f")" -- "$bin" train --set data.dataset=image-folder --set "$(folder garbage)" --out "$work/run-garbage" "${tiny[@]}"
variant emptyclass; mkdir "$work/emptyclass/9_Empty"
expect "empty class folder" "9_Empty" -- "$bin" train --set data.dataset=image-folder --set "$(folder emptyclass)" --out "$work/run-emptyclass" "${tiny[@]}"
variant textfile; echo "not an image" > "$(ls -d "$work"/textfile/*/ | head -1)/notes.txt"
expect "non-image file" "notes.txt" -- "$bin" train --set data.dataset=image-folder --set "$(folder textfile)" --out "$work/run-textfile" "${tiny[@]}"

# IDX files: truncated and corrupt (as gzip and as plain), in a copy of the data set folder.
mkdir -p "$work/idx"
cp /usr/share/datasets/fashion-mnist/*.gz "$work/idx/"
head -c 5000 /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz > "$work/idx/train-images-idx3-ubyte.gz"
expect "truncated IDX" "train-images-idx3-ubyte.gz" -- "$bin" train --set "data.root_path=$work/idx" --out "$work/run-idx" --steps 1
printf 'garbage' | gzip > "$work/idx/train-images-idx3-ubyte.gz"
expect "corrupt IDX" "train-images-idx3-ubyte.gz" -- "$bin" train --set "data.root_path=$work/idx" --out "$work/run-idx" --steps 1

# A gzip bomb: a header that declares the 47 MB of Fashion-MNIST's training images, then 1 GiB of zeros (4.7 MB
# compressed). Refused after the declared size plus one byte, in well under 100 MB (the header is read first).
python3 -c "
import gzip, struct, sys
with gzip.open(sys.argv[1], 'wb', compresslevel=1) as f:
    f.write(struct.pack('>IIII', 0x803, 60000, 28, 28))
    for _ in range(64): f.write(bytes(1 << 24))
" "$work/idx/train-images-idx3-ubyte.gz"
rss_kb="$(python3 -c "
import resource, subprocess, sys
subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=open(sys.argv[1], 'w'))
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
" "$work/bomb.err" "$bin" train --set "data.root_path=$work/idx" --out "$work/run-idx" --steps 1)"
if grep -q "declares 60000 images of 28x28 (47040000 bytes) but extra bytes follow" "$work/bomb.err" && [ "${rss_kb:-999999}" -lt 102400 ]; then
    echo "ok   gzip bomb IDX: refused at its declared size, peak RSS $((rss_kb / 1024)) MiB"
else
    echo "FAIL gzip bomb IDX: rss ${rss_kb:-?} KiB: $(cat "$work/bomb.err")"; fails=$((fails + 1))
fi

# Configs.
echo '{"optimization": {"epochs": 2,}' > "$work/bad.json"
expect "malformed config" "bad.json.*malformed JSON" -- "$bin" train --config "$work/bad.json" --out "$work/run-c"
echo '{"mask": {"min_kep": 3}}' > "$work/typo.json"
expect "unknown config key" "typo.json.*mask.min_kep" -- "$bin" train --config "$work/typo.json" --out "$work/run-c"
expect "impossible masks (official sampler would hang)" "min_keep" -- "$bin" train --set mask.min_keep=10 --out "$work/run-c"
expect "missing config" "nope.json" -- "$bin" train --config "$work/nope.json" --out "$work/run-c"

# Checkpoints: a finished tiny run, then a corrupt checkpoint; and a run folder is never overwritten.
"$bin" train --set data.dataset=image-folder --set "data.image_folder=$work/good" --out "$work/run-ok" "${tiny[@]}" >/dev/null 2>&1 \
    || { echo "FAIL: the tiny reference run did not train"; fails=$((fails + 1)); }
before="$(sha256sum "$work/run-ok/checkpoint.safetensors" | cut -d' ' -f1)"
expect "existing run not overwritten" "already lives here" -- "$bin" train --set data.dataset=image-folder --set "data.image_folder=$work/good" --out "$work/run-ok" "${tiny[@]}"
after="$(sha256sum "$work/run-ok/checkpoint.safetensors" | cut -d' ' -f1)"
[ "$before" = "$after" ] && echo "ok   existing checkpoint unchanged" || { echo "FAIL: checkpoint changed"; fails=$((fails + 1)); }
cp -r "$work/run-ok" "$work/run-bad"
head -c 2000 "$work/run-ok/checkpoint.safetensors" > "$work/run-bad/checkpoint.safetensors"
expect "truncated checkpoint" "checkpoint.safetensors" -- "$bin" train --resume --set data.dataset=image-folder --set "data.image_folder=$work/good" --out "$work/run-bad" "${tiny[@]}"
expect "checkpoint of another config" "another training configuration" -- "$bin" train --resume --set data.dataset=image-folder --set "data.image_folder=$work/good" --out "$work/run-ok" "${tiny[@]}" --set optimization.lr=0.5
# A checkpoint of format v1 (the random streams before v2): refused by --resume, still evaluated.
cp -r "$work/run-ok" "$work/run-v1"
perl -0777 -pi -e 's/ijepa-checkpoint-v2/ijepa-checkpoint-v1/g' "$work/run-v1/checkpoint.safetensors"
expect "resume of a format v1 checkpoint" "ijepa-checkpoint-v1 cannot be resumed.*random streams" -- "$bin" train --resume --set data.dataset=image-folder --set "data.image_folder=$work/good" --out "$work/run-v1" "${tiny[@]}"
if "$bin" probe --out "$work/run-v1" --set evaluation.probe_iterations=5 >"$work/probe-v1.log" 2>&1 && grep -q "format ijepa-checkpoint-v1" "$work/probe-v1.log"; then
    echo "ok   a format v1 checkpoint is still probed"
else
    echo "FAIL: probe of a format v1 checkpoint"; tail -3 "$work/probe-v1.log"; fails=$((fails + 1))
fi
# Evaluating on another data set, and checkpoints that are not ours.
expect "probe on a missing IDX folder" "$work/no-such-idx: no such folder" -- "$bin" probe --out "$work/run-ok" --data-root "$work/no-such-idx"
expect "two data sets at once" "not both" -- "$bin" probe --out "$work/run-ok" --data-root "$work/idx" --image-folder "$work/good"
"$bin" embed --out "$work/run-ok" --output "$work/features.safetensors" >/dev/null 2>&1 || { echo "FAIL: embed"; fails=$((fails + 1)); }
expect "a safetensors file without training state" "features.safetensors.*--config" -- "$bin" probe --checkpoint "$work/features.safetensors"
expect "a state dict without the networks" "features.safetensors.*(missing tensor 'encoder\.|would need at least [0-9]+ bytes of weights)" -- "$bin" probe --checkpoint "$work/features.safetensors" --config "$work/run-ok/config.json"
# Official (torch.save) checkpoints that are hostile or broken: each refused by the Swift reader, nothing run.
python3 tools/make_hostile_checkpoints.py "$work/torch" >/dev/null || { echo "FAIL: make_hostile_checkpoints.py"; fails=$((fails + 1)); }
imp() { echo "$bin" import "$work/torch/$1" --output "$work/torch/out.safetensors"; }
expect "checkpoint pickle naming os.system" "global.pth: data.pkl: global 'os.system' is not allowed" -- $(imp global.pth)
expect "storage larger than its record" "storage.pth: .*declares 1000 x FloatStorage.*holds 16 bytes" -- $(imp storage.pth)
expect "view past its storage" "view.pth: .*reaches element 11 of a storage of 4" -- $(imp view.pth)
expect "deflated record inflating past its size" "bomb.pth: .*inflates past its declared size" -- $(imp bomb.pth)
expect "10^5-deep nesting" "nesting.pth: .*nested deeper than" -- $(imp nesting.pth)
expect "memo-index bomb" "memo.pth: .*memo index 4294967295" -- $(imp memo.pth)
expect "duplicate state-dict keys" "duplicate.pth: .*duplicate dict key" -- $(imp duplicate.pth)
expect "central directory disagreeing with a local header" "mismatch.pth: zip: the local header" -- $(imp mismatch.pth)
expect "truncated archive" "truncated.pth: .*(truncated|end-of-central-directory)" -- $(imp truncated.pth)
expect "legacy torch.save file" "legacy.pth: legacy torch.save format" -- $(imp legacy.pth)
expect "a sound archive without the networks" "ok.pth: no encoder" -- $(imp ok.pth)
[ ! -e "$work/torch/out.safetensors" ] && echo "ok   nothing written by the refused imports" \
    || { echo "FAIL: a refused import wrote its output"; fails=$((fails + 1)); }
expect "export into a non-empty folder" "not empty" -- "$bin" export-png --split test --limit 200 --to "$work/good"
expect "unknown GEMM blocking key" "unknown key 'XC'" -- "$bin" bench gemm --quick --ab XC=3
expect "unknown step variant" "unknown variant 'fused'.*separate-inputs" -- "$bin" bench ijepa --quick --ab fused
expect "step variant changing the bits" "KC changes the results' bits" -- "$bin" bench ijepa --quick --ab gemm:KC=256
expect "GEMM shape with a bad operation suffix" "optional :NN.*P: B packed ahead.*4x4x4:NQP" -- "$bin" bench gemm --shape 4x4x4:NQP
expect "GEMM shape with a packed-copies count of 0" "a count 1-1000.*4x4x4:NTP0" -- "$bin" bench gemm --shape 4x4x4:NTP0
expect "GEMM shape with a packed-copies count that is not a number" "a count 1-1000.*4x4x4:NTPx" -- "$bin" bench gemm --shape 4x4x4:NTPx
expect "embed --serve over several cases" "needs one case" -- "$bin" bench embed --serve --threads 1
expect "embed --serve asked for a batch it did not prepare" "expected one of the batches \[1\] on stdin, got '3'" -- \
    bash -c 'printf "1\n3\n" | "$0" bench embed --serve --filter vit-tiny4-28 --exact --threads 1 --batches 1' "$bin"

echo "bad inputs: $fails failed"
[ "$fails" -eq 0 ]
