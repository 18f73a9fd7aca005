#!/usr/bin/env bash
# Data-parallel training over Open MPI gives the same bits for any number of processes (docs/distributed.md):
#  1. the default build has no MPI in it (ldd of the ijepa binary);
#  2. the MPI build (`--traits MPI`, scratch path .build-mpi; installs libopenmpi-dev and openmpi-bin when
#     missing) trains 50 steps of the default configuration with 8 gradient shards on 1 process, and on 2, 4
#     and 8 under mpirun (oversubscribed): the final tensors, the training state (wall time aside) and the
#     logged numbers must be identical, also with buckets of 16 KiB and with no overlap (4 processes);
#  3. a run stopped after 25 steps on 1 process resumes to the same bits on 4;
#  4. the fixed tree against plain MPI_Allreduce on adversarial sums (ijepa mpi-check);
#  5. SIGTERM to one rank stops every rank with a checkpoint; a rank stopped by SIGSTOP ends the job within
#     the wait limit, naming it, and the run resumes on 1 and on 4 processes to the same bits;
#  6. ranks whose configurations differ are refused at start, naming the rank.
# Usage: tools/check-distributed.sh [steps (default 50)]
source "$(dirname "$0")/setup.sh"
steps="${1:-50}"
swift build -c release "${SWIFT_FLAGS[@]}" --product ijepa 2>&1 | grep -E "error|warning" || true
if ldd .build/release/ijepa | grep -i mpi >/dev/null; then
    echo "FAIL: the default build links MPI:"; ldd .build/release/ijepa | grep -i mpi; exit 1
fi
echo "ok: the default build has no MPI (ldd)"
source "$(dirname "$0")/mpi-common.sh"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
args=(--steps "$steps" --threads 1 --set optimization.gradient_shards=8 --set logging.log_every=1)
# Shared memory between the ranks of this machine; root is allowed (CI runs as root).
mpi=(mpirun --allow-run-as-root --oversubscribe --mca pml ob1 --mca btl self,vader)

state() { sed -E 's/"wallSeconds":[^,}]*//' "$1/checkpoint.safetensors.json"; }
same() {  # folder A, folder B, label
    local a b
    a="$(tensors_hash "$1/checkpoint.safetensors")" b="$(tensors_hash "$2/checkpoint.safetensors")"
    [ "$a" = "$b" ] || { echo "FAIL: $3: tensors differ ($a vs $b)"; exit 1; }
    [ "$(state "$1")" = "$(state "$2")" ] || { echo "FAIL: $3: training states differ"; diff <(state "$1") <(state "$2"); exit 1; }
    diff -q <(cut -d, -f1-8 "$1/log.csv") <(cut -d, -f1-8 "$2/log.csv") >/dev/null ||
        { echo "FAIL: $3: logged numbers differ"; diff <(cut -d, -f1-8 "$1/log.csv") <(cut -d, -f1-8 "$2/log.csv") | head; exit 1; }
    echo "ok: $3: identical tensors (sha256 ${a:0:16}), training state and log"
}

# Every run trains in the same folder (its path is part of the stored configuration), then is moved aside.
t0=$(date +%s)
"$bin" train --out "$work/run" "${args[@]}" >"$work/n1.log" 2>&1 || { tail "$work/n1.log"; exit 1; }
t1=$(date +%s)
mv "$work/run" "$work/n1"
for n in 2 4 8; do
    "${mpi[@]}" -np "$n" "$bin" train --out "$work/run" "${args[@]}" >"$work/n$n.log" 2>&1 || { tail -20 "$work/n$n.log"; exit 1; }
    mv "$work/run" "$work/n$n"
    same "$work/n1" "$work/n$n" "$steps steps, 8 shards, 1 process vs $n"
done
# The gradients travel in buckets during the backward pass (engine.gradient_bucket_kib, 2048 above): many small
# buckets, and none (all after the backward pass), give the same bits.
for kib in 16 0; do
    "${mpi[@]}" -np 4 "$bin" train --out "$work/run" "${args[@]}" --set engine.gradient_bucket_kib=$kib >"$work/b$kib.log" 2>&1 ||
        { tail -20 "$work/b$kib.log"; exit 1; }
    mv "$work/run" "$work/b$kib"
    # (The stored configuration names the bucket size, so only the tensors and the logged numbers are compared.)
    [ "$(tensors_hash "$work/n1/checkpoint.safetensors")" = "$(tensors_hash "$work/b$kib/checkpoint.safetensors")" ] &&
        diff -q <(cut -d, -f1-8 "$work/n1/log.csv") <(cut -d, -f1-8 "$work/b$kib/log.csv") >/dev/null ||
        { echo "FAIL: 4 processes with gradient buckets of $kib KiB differ from 1 process"; exit 1; }
    echo "ok: $steps steps, 8 shards, 4 processes, gradient buckets of $kib KiB: the tensors and log of 1 process"
done
"$bin" train --out "$work/run" "${args[@]/$steps/$((steps / 2))}" >/dev/null 2>&1
"${mpi[@]}" -np 4 "$bin" train --resume --out "$work/run" "${args[@]}" >"$work/r.log" 2>&1 || { tail -20 "$work/r.log"; exit 1; }
grep -q "resumed from" "$work/r.log" || { echo "FAIL: the 4-process run did not resume"; exit 1; }
same "$work/n1" "$work/run" "stopped at step $((steps / 2)) on 1 process, resumed on 4"
# The fixed tree against plain MPI_(I)allreduce on sums whose order shows in Float rounding. Open MPI picks its
# algorithm by message size and rank count (here one that pairs ranks as the tree does); forced to its ring, as
# it may pick elsewhere, MPI_Iallreduce gets sums wrong and the tree does not.
for opts in "" "--mca coll_libnbc_iallreduce_algorithm 1"; do
    # shellcheck disable=SC2086
    line="$("${mpi[@]}" $opts -np 4 "$bin" mpi-check 2>&1 | tail -1)"
    echo "  ${opts:-default algorithms}: $line"
    echo "$line" | grep -q "the fixed tree got 0 wrong" || { echo "FAIL: the fixed tree's sums differ from one process's"; exit 1; }
done
echo "$line" | grep -qE "MPI_Allreduce [1-9]" || { echo "FAIL: the ring MPI_Allreduce matched the tree: the adversarial test proves nothing"; exit 1; }
echo "ok: adversarial sums at 4 ranks: the tree exact, MPI_Allreduce (ring) not"

# Faults.
# start_job FOLDER LOG: 2 ranks, 4 shards, a checkpoint every 5 steps; waits for the first checkpoint.
start_job() {
    "${mpi[@]}" -np 2 "$bin" train --out "$1" --steps 2000 --threads 1 --rank-timeout 10 \
        --set optimization.gradient_shards=4 --set logging.checkpoint_every=5 >"$2" 2>&1 &
    job=$!
    for _ in $(seq 1 300); do [ -f "$1/checkpoint.safetensors" ] && return; sleep 0.2; done
    echo "FAIL: no checkpoint after 60 s"; tail "$2"; exit 1
}
# A stop request (SIGTERM) to rank 1 alone: every rank stops at the same step, rank 0 writes the checkpoint.
start_job "$work/term" "$work/term.log"
kill -TERM "$(rank_pid "$work/term" 1)"
wait "$job" && { echo "FAIL: the job ended normally after SIGTERM"; exit 1; }
grep -q "stopped at step" "$work/term.log" || { echo "FAIL: rank 0 did not stop with a checkpoint after rank 1's SIGTERM"; tail "$work/term.log"; exit 1; }
echo "ok: SIGTERM to rank 1 alone: $(tr '\r' '\n' <"$work/term.log" | grep -o 'stopped at step [0-9]*')"
# A hung rank (SIGSTOP): rank 0 names it and the job ends within the limit (10 s here, 60 by default); the
# last checkpoint resumes on 1 process and on 4, to the same bits.
start_job "$work/hang" "$work/hang.log"
kill -STOP "$(rank_pid "$work/hang" 1)"
job_fails "$job" "with a stopped rank"
tr '\r' '\n' <"$work/hang.log" | grep "waited 10 s for rank 1's gradients: rank 1 is hung" >/dev/null ||
    { echo "FAIL: the stopped rank was not named"; tail -5 "$work/hang.log"; exit 1; }
[ "$waited" -le 40 ] || { echo "FAIL: the job took $waited s to end after a rank stopped"; exit 1; }
cp -r "$work/hang" "$work/hang4"
"$bin" train --resume --out "$work/hang" --steps 30 --threads 1 --set optimization.gradient_shards=4 >/dev/null 2>&1
"${mpi[@]}" -np 4 "$bin" train --resume --out "$work/hang4" --steps 30 --threads 1 --set optimization.gradient_shards=4 >/dev/null 2>&1
[ "$(tensors_hash "$work/hang/checkpoint.safetensors")" = "$(tensors_hash "$work/hang4/checkpoint.safetensors")" ] ||
    { echo "FAIL: after the hang, resuming on 1 and on 4 processes gave different tensors"; exit 1; }
echo "ok: SIGSTOP of rank 1: the job ended after $waited s naming rank 1; resumed on 1 and on 4 processes to the same bits"

# Ranks that disagree (here rank 1 runs another learning rate) are refused at start, naming the rank.
set +e
out="$(timeout 120 "${mpi[@]}" -np 1 "$bin" train --out "$work/bad" --steps 2 --set optimization.gradient_shards=2 : \
    -np 1 "$bin" train --out "$work/bad" --steps 2 --set optimization.gradient_shards=2 --set optimization.lr=1e-3 2>&1)"
rc=$?
set -e
if [ "$rc" -eq 0 ] || ! echo "$out" | grep -q "rank 1's training configuration (hash) differs from rank 0's"; then
    echo "FAIL: ranks with different configurations were not refused (exit $rc):"; echo "$out" | tail -5; exit 1
fi
echo "ok: ranks with different configurations refused at start, naming rank 1"
echo "distributed: same bits for 1, 2, 4 and 8 processes ($((t1 - t0)) s for the 1-process run)"
