# tensors_hash CHECKPOINT: sha256 of a safetensors file's data section, the bytes after its 8-byte header length
# and JSON header (the header's metadata holds wall times and folders, which differ between runs). Sourced by
# the checks that compare checkpoints: check-kill-resume.sh, check-versioned-dependency.sh, mpi-common.sh.
tensors_hash() {
    local n
    n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
    tail -c +$((9 + n)) "$1" | sha256sum | cut -d' ' -f1
}
