#!/usr/bin/env bash
# Proves that an app can depend on this package *by version* (SwiftPM refuses versioned dependencies whose
# manifest has unsafeFlags) and turn the fast path on from its own command line or a toolset file.
# Builds a throwaway consumer against a tagged clone of HEAD three times: plain (portable), with
# -Xcc -mavx2 -Xcc -mfma, and with --toolset tools/avx2-fma-toolset.json (on an AVX-512 CPU twice more: with
# -Xcc -mavx512f added, and with tools/avx512-toolset.json); each run checks a GEMM against the reference and
# prints the compiled SIMD path, which must match the flags.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

git clone -q "$root" "$work/lib"
git -C "$work/lib" -c user.name=ci -c user.email=ci@localhost tag -a 0.1.0 -m "versioned-dependency check"

mkdir -p "$work/app/Sources/App"
cat > "$work/app/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "App",
    dependencies: [.package(url: "file://$work/lib", from: "0.1.0")],
    targets: [.executableTarget(name: "App", dependencies: [.product(name: "CPUKernels", package: "lib")]),
              .executableTarget(name: "Embed", dependencies: [.product(name: "IJEPA", package: "lib")]),
              .executableTarget(name: "Train", dependencies: [.product(name: "IJEPA", package: "lib")])]
)
SWIFT
# The README's Encoder snippet, as an app writes it (paths from the command line), printing the features' bits.
mkdir -p "$work/app/Sources/Embed"
cat > "$work/app/Sources/Embed/main.swift" <<'SWIFT'
import IJEPA
let encoder = try Encoder(checkpoint: CommandLine.arguments[1])
let features = try encoder.embed([try Image(contentsOfFile: CommandLine.arguments[2])])
print(features.scalars.map { String($0.bitPattern, radix: 16) }.joined(separator: " "))
SWIFT
# The training entry point as the DocC article "Training a model" shows it, from the public API alone: a tiny
# model on a folder of PNGs (arguments: the folder, the run folder), two steps, then the encoder of its checkpoint.
mkdir -p "$work/app/Sources/Train"
cat > "$work/app/Sources/Train/main.swift" <<'SWIFT'
import IJEPA
var config = try TrainingConfig.load(path: nil, overrides: [
    "data.dataset=image-folder", "data.image_folder=\(CommandLine.arguments[1])", "data.crop_size=16", "data.batch_size=2",
    "meta.depth=1", "meta.embed_dim=32", "meta.num_heads=2", "meta.pred_depth=1", "meta.pred_emb_dim=16",
    "mask.min_keep=2", "mask.num_pred_masks=2", "mask.pred_mask_scale=[0.3,0.4]", "optimization.max_steps=2"])
config.logging.folder = CommandLine.arguments[2]
let run = try TrainingRun(config: config, engine: Engine(threads: 2))
run.stop.installSignalHandlers()
let summary = try run.run()
precondition(summary.stepsDone == 2 && summary.lastLoss.isFinite, "the run did not train: \(summary)")
let features = try Encoder(checkpoint: run.checkpointPath).embed([try Image(contentsOfFile: CommandLine.arguments[3])])
print("trained \(summary.stepsDone) steps, loss \(summary.lastLoss); features \(features.shape)")
SWIFT
cat > "$work/app/Sources/App/main.swift" <<'SWIFT'
import CPUKernels
let (m, n, k) = (37, 53, 300)
let a = (0..<m * k).map { Float($0 % 13) - 6 }, b = (0..<k * n).map { Float($0 % 7) - 3 }
var c = [Float](repeating: 0, count: m * n), ref = c
sgemm(c: &c, ldc: n, a: a, lda: k, transA: false, b: b, ldb: n, transB: false, m: m, n: n, k: k, context: KernelContext())
sgemmReference(c: &ref, ldc: n, a: a, lda: k, transA: false, b: b, ldb: n, transB: false, m: m, n: n, k: k)
precondition(c == ref, "GEMM mismatch in the consumer app")  // small integers: exact in Float
print("SIMD path: \(SIMDPath.name)")
SWIFT

check() {
    local expect="$1"; shift
    local out
    out="$(cd "$work/app" && swift build -c release "$@" >/dev/null && "$(swift build -c release "$@" --show-bin-path)/App")"
    echo "  $* -> $out"
    case "$out" in *"$expect"*) ;; *) echo "error: expected '$expect' with flags '$*'" >&2; exit 1 ;; esac
}
echo "consumer depends on CPUKernels from: 0.1.0"
if [ "$(uname -m)" = "x86_64" ]; then
    check "no-fma"
    check "avx2+fma" -Xcc -mavx2 -Xcc -mfma
    check "avx2+fma" --toolset "$root/tools/avx2-fma-toolset.json"
    if grep -qw avx512f /proc/cpuinfo; then  # the 6x32 tile through a versioned dependency too
        check "avx512f+fma" -Xcc -mavx2 -Xcc -mfma -Xcc -mavx512f
        check "avx512f+fma" --toolset "$root/tools/avx512-toolset.json"
    fi
else
    check "SIMD path"
fi
# The app's Encoder against `ijepa embed --images` of this checkout, on a checkpoint of a tiny run: same bits
# in the fast build (which the CLI uses); the portable build must load and embed too.
(cd "$root" && swift build -c release ${FAST_FLAGS:-} --product ijepa >/dev/null)
bin="$root/.build/release/ijepa"
"$bin" export-png --split test --limit 20 --to "$work/pngs" >/dev/null
"$bin" train --set data.dataset=image-folder --set "data.image_folder=$work/pngs" --set data.crop_size=16 \
    --set meta.depth=1 --set meta.embed_dim=32 --set meta.num_heads=2 --set meta.pred_depth=1 --set meta.pred_emb_dim=16 \
    --set data.batch_size=2 --set mask.min_keep=2 --set mask.num_pred_masks=2 --set "mask.pred_mask_scale=[0.3,0.4]" \
    --steps 2 --out "$work/run" >/dev/null
png="$(ls "$work"/pngs/*/*.png | head -1)"
"$bin" embed --out "$work/run" --images "$png" --output "$work/cli.safetensors" >/dev/null
cli="$(tail -c $((4 * 32)) "$work/cli.safetensors" | od -An -v -tx4 | xargs -n1 | sed 's/^0*\([0-9a-f]\)/\1/' | paste -sd' ')"
# embed_with CHECKPOINT PNG [build flags]: the app's Embed (the README's snippet) built with those flags.
embed_with() {
    local ckpt="$1" image="$2"; shift 2
    (cd "$work/app" && swift build -c release "$@" --product Embed >/dev/null &&
        "$(swift build -c release "$@" --show-bin-path)/Embed" "$ckpt" "$image")
}
embed() { embed_with "$work/run/checkpoint.safetensors" "$png" "$@"; }
portable="$(embed)"
[ "$(echo "$portable" | wc -w)" -eq 32 ] || { echo "error: the portable app printed no 32 features: $portable" >&2; exit 1; }
if [ -n "${FAST_FLAGS:-}" ]; then
    fast="$(embed $FAST_FLAGS)"
    [ "$fast" = "$cli" ] || { echo "error: the app's Encoder features differ from ijepa embed's:" >&2; echo "app $fast" >&2; echo "cli $cli" >&2; exit 1; }
    echo "  the README's Encoder snippet in the app: the same 32 features as ijepa embed, bit for bit"
else
    echo "  the README's Encoder snippet in the app (portable build): 32 features"
fi
# The front door's acceptance: the README's snippet, on the main job's model (its configuration, 20 steps), gives
# test image 0 the features `ijepa embed --split test` wrote for it at 45238e9, the commit before the IJEPA
# product (tools/fixtures/embed-45238e9-test0.txt; training has kept its bits since, so this is that
# checkpoint), and loading the encoder peaks at most 50 MB above its weights' bytes.
"$bin" train --steps 20 --out "$work/main20" >/dev/null
"$bin" export-png --split test --limit 100 --to "$work/test100" >/dev/null  # every class must have an image
test0="$(ls "$work"/test100/*/00000.png)"  # files are named by their index in the split
expected="$(grep -v '^#' "$root/tools/fixtures/embed-45238e9-test0.txt")"
if [ -n "${FAST_FLAGS:-}" ]; then
    got="$(embed_with "$work/main20/checkpoint.safetensors" "$test0" $FAST_FLAGS)"
    [ "$got" = "$expected" ] || { echo "error: the app's features of test image 0 differ from ijepa embed's at 45238e9" >&2; exit 1; }
    echo "  the README's snippet on the main job's model: test image 0's 192 features equal ijepa embed's at 45238e9"
fi
app_bin="$(cd "$work/app" && swift build -c release ${FAST_FLAGS:-} --show-bin-path)/Embed"
python3 - "$work/main20/checkpoint.safetensors" "$app_bin" "$test0" <<'PY'
import json, resource, struct, subprocess, sys
ckpt = sys.argv[1]
with open(ckpt, "rb") as f:
    header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
weights = sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items() if k.startswith("target_encoder."))
subprocess.run([sys.argv[2], ckpt, sys.argv[3]], check=True, stdout=subprocess.DEVNULL)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(f"  Encoder(checkpoint:) + embed: peak RSS {peak / 2**20:.1f} MiB, weights {weights / 2**20:.1f} MiB "
      f"(+{(peak - weights) / 1e6:.1f} MB, limit +50 MB)")
sys.exit(0 if peak <= weights + 50e6 else "error: the app's peak RSS exceeds its weights + 50 MB")
PY

# The article's training snippet in the app: a run from the public API alone, whose checkpoint holds the same
# tensors as the CLI's run of the same config (fast build; the header differs: folder, wall times).
train_app() { (cd "$work/app" && swift build -c release "$@" --product Train >/dev/null && "$(swift build -c release "$@" --show-bin-path)/Train" "$work/pngs" "$work/run-app" "$png"); }
train_app ${FAST_FLAGS:-}
source "$root/tools/tensors-hash.sh"
if [ -n "${FAST_FLAGS:-}" ]; then
    [ "$(tensors_hash "$work/run-app/checkpoint.safetensors")" = "$(tensors_hash "$work/run/checkpoint.safetensors")" ] ||
        { echo "error: the app's TrainingRun wrote other tensors than ijepa train" >&2; exit 1; }
    echo "  the article's TrainingRun snippet in the app: the same checkpoint tensors as ijepa train"
fi
echo "versioned dependency: OK"
