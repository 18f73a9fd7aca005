# Shared by tools/check-distributed.sh and tools/check-network.sh (sourced after setup.sh, not run):
# installs Open MPI when missing (libopenmpi-dev, openmpi-bin), builds ijepa with the MPI trait into
# .build-mpi and sets $bin, and defines helpers on run folders.
source "$(dirname "${BASH_SOURCE[0]}")/install-mpi.sh"
swift build -c release "${SWIFT_FLAGS[@]}" --traits MPI --scratch-path .build-mpi --product ijepa 2>&1 | grep -E "error|warning" || true
bin=.build-mpi/release/ijepa
ldd "$bin" | grep libmpi >/dev/null || { echo "FAIL: the MPI build does not link libmpi"; exit 1; }

source "$(dirname "${BASH_SOURCE[0]}")/tensors-hash.sh"
# rank_pid FOLDER RANK: the pid of that rank of the job training into FOLDER.
rank_pid() {
    local p
    for p in $(pgrep -f "ijepa train --out $1"); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
    done
}
# job_fails JOB WHY: waits for the background job JOB (killed after 90 s), which must end with an error ("the job
# ended normally WHY" otherwise); sets $waited to the seconds the wait took.
job_fails() {
    local t0 watchdog
    t0=$(date +%s)
    ( sleep 90; kill -9 "$1" 2>/dev/null ) &
    watchdog=$!
    if wait "$1"; then echo "FAIL: the job ended normally $2"; exit 1; fi
    waited=$(( $(date +%s) - t0 ))
    kill "$watchdog" 2>/dev/null || true
}
