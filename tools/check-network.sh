#!/usr/bin/env bash
# Data-parallel training across an emulated network, on this one machine (docs/distributed.md).
# Two network namespaces joined by a veth pair stand for two hosts. mpirun starts inside the first: its PMIx
# server listens on the link (PMIx reaches its clients over TCP, and the second namespace cannot see the
# first's loopback), and the second rank is started through `ip netns exec`. Open MPI is held to TCP over the
# link (pml ob1, btl tcp,self): the namespaces share /dev/shm, where vader would otherwise carry the messages.
# Checks:
#  1. the link carries the traffic: MPI ping-pong bandwidth and the veth byte counters, unshaped and shaped by
#     tc tbf to 10 and 1 Gbit/s (this kernel has no netem);
#  2. 20 steps on 2 ranks across the link (1 Gbit/s) give the bits of 1 process;
#  3. the link taken down mid-run: the job ends within the wait limit (10 s here, 60 by default), naming the
#     rank, and its last checkpoint resumes on 1 and on 4 processes (shared memory) to the same bits.
# With --measure, instead: the scaling table (images/s of 2 ranks x 1 thread over shared memory and over the
# link at 10 and 1 Gbit/s, at 1 Gbit/s also without overlap and with MPI_Allreduce, against 1 process x 2
# threads) for the default model and ViT-S/16 at 224 px.
# Needs root (namespaces, tc; CI runs as root). Where namespaces cannot be made it says so and exits 0.
# Usage: tools/check-network.sh [--measure [default|vit-s16 [BATCH]]]
source "$(dirname "$0")/setup.sh"
mode="${1:-check}"
models="${2:-default vit-s16}"
batch_override="${3:-}"
if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
    echo "installing iproute2 (ip, tc)"
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
fi
# What the checks need, tried first: a namespace, a veth pair in it, a tbf qdisc on the pair.
probe_network() {
    ip netns add ijepa-probe-ns &&
        ip -n ijepa-probe-ns link add ijepa-pa type veth peer name ijepa-pb &&
        tc -n ijepa-probe-ns qdisc add dev ijepa-pa root tbf rate 1gbit burst 256kb latency 20ms
}
if ! probe_network 2>/dev/null; then
    ip netns del ijepa-probe-ns 2>/dev/null || true
    echo "skipped: cannot create network namespaces, veth pairs or tbf qdiscs here (needs root with CAP_SYS_ADMIN"
    echo "and CAP_NET_ADMIN, and the veth and sch_tbf kernel modules)"
    exit 0
fi
ip netns del ijepa-probe-ns
source "$(dirname "$0")/mpi-common.sh"

work="$(mktemp -d)"
subnet=10.77.0.0/24
cleanup() {
    ip netns del ijepa-a 2>/dev/null || true
    ip netns del ijepa-b 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cleanup
mkdir -p "$work"
ip netns add ijepa-a
ip netns add ijepa-b
ip link add ijepa-va type veth peer name ijepa-vb
ip link set ijepa-va netns ijepa-a
ip link set ijepa-vb netns ijepa-b
ip -n ijepa-a addr add 10.77.0.1/24 dev ijepa-va
ip -n ijepa-b addr add 10.77.0.2/24 dev ijepa-vb
for ns in a b; do
    ip -n "ijepa-$ns" link set "ijepa-v$ns" up
    ip -n "ijepa-$ns" link set lo up
done

# shape RATE: tc tbf on both ends (egress), or none. The bucket holds 2 ms at the rate (at least what one
# timer tick releases), so that a message's first megabytes do not pass at the link's raw speed.
shape() {
    local ns
    for ns in a b; do
        if [ "$1" = none ]; then
            tc -n "ijepa-$ns" qdisc del dev "ijepa-v$ns" root 2>/dev/null || true
        else
            local bits=${1%gbit}
            tc -n "ijepa-$ns" qdisc replace dev "ijepa-v$ns" root tbf rate "$1" burst "$((bits * 256))kb" latency 20ms
        fi
    done
}
tx_bytes() { ip netns exec ijepa-a cat /sys/class/net/ijepa-va/statistics/tx_bytes; }
# across PROGRAM ARGS...: rank 0 in namespace a, rank 1 in namespace b, TCP over the veth only.
across() {
    ip netns exec ijepa-a env PMIX_MCA_ptl_tcp_remote_connections=1 PMIX_MCA_ptl_tcp_if_include=$subnet \
        mpirun --allow-run-as-root --oversubscribe --mca pml ob1 --mca btl tcp,self \
        --mca btl_tcp_if_include $subnet --mca oob_tcp_if_include $subnet \
        -np 1 "$@" : -np 1 ip netns exec ijepa-b "$@"
}
shm=(mpirun --allow-run-as-root --oversubscribe --mca pml ob1 --mca btl self,vader)

# images_per_second LOG_CSV BATCH: the mean rate over the steps after the first 3 (warm-up): images over the
# sum of the step times (each step's time is its batch over its logged images_per_second).
images_per_second() {
    awk -F, -v b="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "images_per_second") c = i; next }
        $1 > 3 { s += b / $c; n++ } END { printf "%.1f", b * n / s }' "$1"
}

if [ "$mode" = "--measure" ]; then
    echo "MPI ping-pong, 16 MiB messages, ranks 0 and 1 in two namespaces:"
    for rate in none 10gbit 1gbit; do
        shape "$rate"
        echo "  link ${rate/none/unshaped}: $(across "$bin" mpi-check --ping-pong 16 2>&1 | tail -1)"
    done
    echo
    echo "| model | batch, shards | 1 process x 2 threads | 2 x 1, shared memory | 2 x 1, link 10 Gbit/s | 2 x 1, link 1 Gbit/s | same, no overlap | same, MPI_Allreduce | link 1 Gbit/s / shared memory |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for model in $models; do
        if [ "$model" = default ]; then
            set_=(--set optimization.gradient_shards=2) batch=64 steps=30
        else
            set_=(--set meta.model_name=vit_small --set data.crop_size=224 --set mask.patch_size=16
                  --set mask.min_keep=10 --set optimization.gradient_shards=8) batch=64 steps=8
        fi
        batch="${batch_override:-$batch}"
        args=(--steps "$steps" --batch-size "$batch" "${set_[@]}" --set logging.checkpoint_every=0 --set logging.log_every=1)
        # rate RUN...: images/s of one run, and its last combine share
        rate() {
            rm -rf "$work/m"
            "$@" >"$work/m.log" 2>&1 || { tail "$work/m.log"; exit 1; }
            local c
            c="$(tr '\r' '\n' <"$work/m.log" | grep -oE 'combine [0-9]+ %' | tail -1)"
            echo "$(images_per_second "$work/m/log.csv" "$batch")${c:+ ($c)}"
        }
        one=$(rate "$bin" train --out "$work/m" --threads 2 "${args[@]}")
        two=$(rate "${shm[@]}" -np 2 "$bin" train --out "$work/m" --threads 1 "${args[@]}")
        shape 10gbit
        ten=$(rate across "$bin" train --out "$work/m" --threads 1 "${args[@]}")
        shape 1gbit
        gig=$(rate across "$bin" train --out "$work/m" --threads 1 "${args[@]}")
        plain=$(rate across "$bin" train --out "$work/m" --threads 1 "${args[@]}" --set engine.gradient_bucket_kib=0)
        allreduce=$(rate across "$bin" train --out "$work/m" --threads 1 "${args[@]}" --set optimization.gradient_reduction=allreduce)
        ratio=$(awk -v a="${gig%% *}" -v b="${two%% *}" 'BEGIN { printf "%.2f", a / b }')
        echo "| $model | $batch, ${set_[-1]##*=} | $one | $two | $ten | $gig | $plain | $allreduce | $ratio |"
    done
    echo "(images/s over the steps after the third, and the last progress line's combine share; emulated link,"
    echo " one 2-core VM: both ranks share its two cores; 'no overlap': engine.gradient_bucket_kib=0)"
    exit 0
fi

# 1. The link carries the messages, at the shaped rates.
for rate in none 1gbit; do
    shape "$rate"
    before=$(tx_bytes)
    line="$(across "$bin" mpi-check --ping-pong 16 2>&1 | tail -1)"
    sent=$(( $(tx_bytes) - before ))
    echo "  link ${rate/none/unshaped}: $line; veth sent $((sent / 1048576)) MiB"
    echo "$line" | grep -q "Gbit/s" || { echo "FAIL: no ping-pong across the namespaces"; exit 1; }
    [ "$sent" -ge $((21 * 16 * 1048576)) ] || { echo "FAIL: the messages did not cross the veth link ($sent bytes)"; exit 1; }
done
gbits=$(echo "$line" | grep -oE '[0-9.]+ Gbit/s' | cut -d' ' -f1)
awk -v g="$gbits" 'BEGIN { exit !(g > 0.8 && g < 1.1) }' || { echo "FAIL: shaped to 1 Gbit/s, MPI measured $gbits Gbit/s"; exit 1; }
echo "ok: MPI messages cross the emulated link (veth counters), $gbits Gbit/s when shaped to 1"

# 2. The same bits across the link as on one process.
args=(--steps 20 --threads 1 --set optimization.gradient_shards=2 --set logging.log_every=1)
"$bin" train --out "$work/run" "${args[@]}" >"$work/n1.log" 2>&1 || { tail "$work/n1.log"; exit 1; }
mv "$work/run" "$work/n1"
before=$(tx_bytes)
across "$bin" train --out "$work/run" "${args[@]}" >"$work/n2.log" 2>&1 || { tail -20 "$work/n2.log"; exit 1; }
sent=$(( $(tx_bytes) - before ))
a="$(tensors_hash "$work/n1/checkpoint.safetensors")" b="$(tensors_hash "$work/run/checkpoint.safetensors")"
[ "$a" = "$b" ] || { echo "FAIL: 2 ranks across the link gave other tensors than 1 process"; exit 1; }
echo "ok: 20 steps on 2 ranks across the 1 Gbit/s link: the tensors of 1 process (sha256 ${a:0:16}); veth sent $((sent / 1048576)) MiB"

# 3. The link goes down mid-run.
shape none
across "$bin" train --out "$work/down" --steps 2000 --threads 1 --rank-timeout 10 \
    --set optimization.gradient_shards=4 --set logging.checkpoint_every=5 >"$work/down.log" 2>&1 &
job=$!
for _ in $(seq 1 300); do [ -f "$work/down/checkpoint.safetensors" ] && break; sleep 0.2; done
[ -f "$work/down/checkpoint.safetensors" ] || { echo "FAIL: no checkpoint after 60 s"; tail "$work/down.log"; exit 1; }
ip -n ijepa-b link set ijepa-vb down
job_fails "$job" "with its link down"
named="$(tr '\r' '\n' <"$work/down.log" | grep -oE "waited 10 s for [^:]*: rank [0-9] is hung, stopped or unreachable" | head -1)"
[ -n "$named" ] || { echo "FAIL: the unreachable rank was not named"; tail -5 "$work/down.log"; exit 1; }
[ "$waited" -le 60 ] || { echo "FAIL: the job took $waited s to end after the link went down"; exit 1; }
cp -r "$work/down" "$work/down4"
"$bin" train --resume --out "$work/down" --steps 30 --threads 1 --set optimization.gradient_shards=4 >/dev/null 2>&1
"${shm[@]}" -np 4 "$bin" train --resume --out "$work/down4" --steps 30 --threads 1 \
    --set optimization.gradient_shards=4 >/dev/null 2>&1
[ "$(tensors_hash "$work/down/checkpoint.safetensors")" = "$(tensors_hash "$work/down4/checkpoint.safetensors")" ] ||
    { echo "FAIL: after the link went down, resuming on 1 and on 4 processes gave different tensors"; exit 1; }
echo "ok: link down: the job ended after $waited s ('$named'); resumed on 1 and on 4 processes to the same bits"
