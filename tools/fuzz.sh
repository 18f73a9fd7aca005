#!/usr/bin/env bash
# libFuzzer over the parsers of files users receive (docs/fuzzing.md). Targets: the products of Fuzz/Package.swift.
#   tools/fuzz.sh build                    build every target (AddressSanitizer + libFuzzer, .build-fuzz)
#   tools/fuzz.sh run TARGET SECONDS       open-ended fuzzing; inputs that add coverage are merged into
#                                          Fuzz/corpus/<target>, libFuzzer's final stats appended to Fuzz/runs.tsv
#   tools/fuzz.sh minimize                 each committed corpus cut to a smallest set with the same coverage
#   tools/fuzz.sh totals                   per target, the guided runs of Fuzz/runs.tsv added up (docs/fuzzing.md)
#   tools/fuzz.sh replay                   what CI runs: every corpus and regression input once (-runs=0), then a
#                                          short run of each target with a fixed seed and number of runs
# A crash, leak, timeout or out-of-memory stops the run and leaves the input in .fuzz/<target>/; it becomes a
# regression input in Tests/FuzzRegressions/<target>/ once its cause is fixed.
source "$(dirname "$0")/setup.sh"
targets=(FuzzPNG FuzzIDX FuzzSafeTensors FuzzConfig FuzzCheckpoint FuzzTorch)
# Limits: 10 s per input, 2 GiB of RSS, 1 GiB in one allocation (the largest a valid input may ask for is a PNG at
# the decoder's pixel limit, which FuzzPNG lowers: docs/fuzzing.md).
limits=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024)
bin=.build-fuzz/release

dict() {
    case "$1" in
        FuzzPNG) echo Fuzz/dicts/png.dict ;;
        FuzzIDX) echo Fuzz/dicts/idx.dict ;;
        FuzzSafeTensors | FuzzCheckpoint) echo Fuzz/dicts/safetensors.dict ;;
        FuzzConfig) echo Fuzz/dicts/config.dict ;;
        FuzzTorch) echo Fuzz/dicts/torch.dict ;;
        *) echo "unknown target $1 (${targets[*]})" >&2; exit 2 ;;
    esac
}
corpus() { local t="${1#Fuzz}"; echo "Fuzz/corpus/$(echo "$t" | tr '[:upper:]' '[:lower:]')"; }
regressions() { echo "Tests/FuzzRegressions/$1"; }

build() {
    # One -sanitize=fuzzer,address for swiftc: SwiftPM's --sanitize=fuzzer --sanitize=address become two
    # -sanitize= options, of which swiftc keeps only the last (the code was built without coverage
    # instrumentation, and libFuzzer ran unguided: "no interesting inputs were found"). lld: gold warns about
    # an ASan symbol it cannot export.
    swift build -c release "${SWIFT_FLAGS[@]}" --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address \
        -Xswiftc -use-ld=lld \
        --package-path Fuzz --scratch-path .build-fuzz 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
    for t in "${targets[@]}"; do [ -x "$bin/$t" ] || { echo "error: $bin/$t was not built" >&2; exit 1; }; done
}

case "${1:-}" in
build) build ;;
run)
    t="${2:?target}"; secs="${3:?seconds}"
    dict "$t" >/dev/null
    [ -x "$bin/$t" ] || build
    work=".fuzz/$t"; mkdir -p "$work/new" "$work/artifacts"
    log="$work/run-$(date +%Y%m%d-%H%M%S).log"
    commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Fuzz || echo +changes)"  # what was built
    started=$(date +%s)
    set +e
    ASAN_OPTIONS=detect_leaks=1 "$bin/$t" "${limits[@]}" -dict="$(dict "$t")" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/new" "$(corpus "$t")" $( [ -d "$(regressions "$t")" ] && regressions "$t") \
        >"$log" 2>&1
    rc=$?
    set -e
    secs=$(( $(date +%s) - started ))  # what ran: a finding stops the run early
    grep -E '^(stat::|#[0-9]+ +DONE)|ERROR|SUMMARY' "$log" | tail -12
    execs="$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)"
    cov="$(grep -E '#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)"
    # Keep only the inputs that add coverage: merged into the committed corpus.
    "$bin/$t" "${limits[@]}" -merge=1 "$(corpus "$t")" "$work/new" >"$work/merge.log" 2>&1 || true
    rm -rf "$work/new"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$commit" "$t" "$secs" "$execs" \
        "${cov:-?}" "$(case $rc in 0) echo none ;; 72) echo "none (interrupted)" ;; *) echo "rc $rc, see $log" ;; esac)" >>Fuzz/runs.tsv
    echo "$t: ${secs}s, $execs executions, ${cov:-?}, exit $rc"
    [ "$rc" = 72 ] && exit 0  # libFuzzer's exit code after SIGINT (-interrupted_exitcode): stopped, no finding
    exit $rc
    ;;
totals)
    printf '| Target | Runs | Seconds | Executions | Last coverage | Findings |\n|---|---|---|---|---|---|\n'
    for t in "${targets[@]}"; do
        awk -F'\t' -v t="$t" '$3 == t && $7 !~ /^not counted/ { n++; s += $4; e += $5; c = $6; if ($7 !~ /^none/) f++ }
            END { printf "| %s | %d | %d | %d | %s | %d |\n", t, n, s, e, c, f }' Fuzz/runs.tsv
    done
    ;;
minimize)
    build
    for t in "${targets[@]}"; do
        c="$(corpus "$t")"; fresh="$(mktemp -d)"
        "$bin/$t" "${limits[@]}" -merge=1 "$fresh" "$c" >/dev/null 2>&1
        echo "$t: $(find "$c" -type f | wc -l) inputs -> $(find "$fresh" -type f | wc -l) ($(du -sk "$fresh" | cut -f1) KiB)"
        rm -rf "$c"; mkdir -p "$c"; cp "$fresh"/* "$c"/; rm -rf "$fresh"
    done
    ;;
replay)
    build
    logs="$(mktemp -d)"; trap 'rm -rf "$logs"' EXIT
    for t in "${targets[@]}"; do
        dirs=("$(corpus "$t")")
        [ -d "$(regressions "$t")" ] && dirs+=("$(regressions "$t")")
        n=$(find "${dirs[@]}" -type f | wc -l)
        "$bin/$t" "${limits[@]}" -runs=0 "${dirs[@]}" >"$logs/$t.log" 2>&1 ||
            { tail -30 "$logs/$t.log" >&2; echo "error: $t failed replaying its $n inputs" >&2; exit 1; }
        # A short seeded run from the corpus, new inputs into a scratch folder (the committed corpus stays as is).
        scratch="$(mktemp -d)"
        "$bin/$t" "${limits[@]}" -dict="$(dict "$t")" -seed=1 -runs=20000 "$scratch" "${dirs[@]}" >"$logs/$t.log" 2>&1 ||
            { tail -30 "$logs/$t.log" >&2; echo "error: $t failed its seeded run (-seed=1 -runs=20000)" >&2; exit 1; }
        rm -rf "$scratch"
        echo "$t: $n inputs replayed, 20000 seeded runs: no finding"
    done
    ;;
*) sed -n 2,9p "$0"; exit 2 ;;
esac
