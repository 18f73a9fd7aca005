#!/usr/bin/env bash
# The library keeps no setting or shared state in a global: no stored `static var`, no top-level `var`, no
# `static let` holding an Atomic, a Mutex or a shared instance, no `@TaskLocal` (task-locals do not reach the
# Dispatch workers). Settings travel in an explicit value. Scans Sources/ except the command-line tool.
#
# Settings, pools and the profiler live in an `Engine` (TensorCore) that travels with every tape. The list below
# is of globals allowed anyway: none. A new match fails, and so does an entry that no longer matches.
set -euo pipefail
cd "$(dirname "$0")/.."

allowed=(
)

# file|text of every matching line (comments skipped; a `{` on the line marks a computed property).
found="$(
    grep -rnE --include='*.swift' \
        -e '(^|[^A-Za-z_])static var [A-Za-z_]+' \
        -e '^(@[A-Za-z_]+(\([A-Za-z_]+\))? )*(nonisolated\(unsafe\) )?((public|package|internal|private|fileprivate) )?var ' \
        -e 'static let [A-Za-z_]+ *(:[^=]*)?= *(Atomic|Mutex)<' \
        -e 'static let shared *(:[^=]*)?=' \
        -e '@TaskLocal' \
        Sources | grep -v '^Sources/ijepa/' | grep -vE '^[^:]+:[0-9]+: *//' | grep -vE '(static )?var [A-Za-z_]+[^=]*\{' || true
)"
fails=0
seen=()
while IFS= read -r line; do
    [ -n "$line" ] || continue
    file="${line%%:*}"
    text="$(echo "${line#*:*:}" | sed -E 's/^ +//')"
    key="$file|$text"
    ok=0
    for a in "${allowed[@]}"; do [ "$a" = "$key" ] && ok=1; done
    if [ "$ok" -eq 1 ]; then
        seen+=("$key")
    else
        echo "error: a global in the library (settings travel in an explicit value): ${line}" >&2
        fails=$((fails + 1))
    fi
done <<<"$found"
for a in "${allowed[@]}"; do
    hit=0
    for s in "${seen[@]}"; do [ "$s" = "$a" ] && hit=1; done
    if [ "$hit" -eq 0 ]; then
        echo "error: tools/check-globals.sh allows '${a#*|}' in ${a%%|*}, which is gone: delete the entry" >&2
        fails=$((fails + 1))
    fi
done
[ "$fails" -eq 0 ] || exit 1
echo "globals: none in the library (${#allowed[@]} allowed by tools/check-globals.sh)"
