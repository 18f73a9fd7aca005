#!/usr/bin/env python3
"""Two builds of ijepa, interleaved on the same benchmark: the speed of a refactor or a change, as a ratio.

    python3 tools/ab_binaries.py BEFORE AFTER [--rounds 5] [--case ijepa-fmnist] [--threads 2]
    python3 tools/ab_binaries.py BEFORE AFTER --embed 1 --case vit-s16 [--threads 2]   # inference, batch 1

BEFORE and AFTER are ijepa executables (e.g. a build of the previous main in its own scratch path:
`git worktree add /tmp/before <commit> && swift build -c release -Xcc -mavx2 -Xcc -mfma --package-path
/tmp/before --product ijepa`). Each round runs `ijepa bench ijepa --filter CASE --exact --json` with both, in
alternating order (AB, BA, AB, ...), so drifting load on a shared machine falls on both alike. With
`--embed BATCH` the benchmark is `ijepa bench embed --filter CASE --batches BATCH` (the encoder's inference). Prints each
round's images/s, the medians, and AFTER / BEFORE of the medians with the range of the per-round ratios.
Standard library only.
"""
import argparse
import json
import statistics
import subprocess
import sys


def images_per_second(binary, case, threads, steps, peak, embed=None):
    if embed:
        cmd = [binary, "bench", "embed", "--filter", case, "--json", "--threads", str(threads),
               "--peak-gflops", str(peak), "--batches", str(embed)]
    else:
        cmd = [binary, "bench", "ijepa", "--filter", case, "--exact", "--json", "--threads", str(threads),
               "--peak-gflops", str(peak), "--steps", str(steps)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stdout[-2000:]}")
    rows = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{") and '"name"' in l]
    if not rows:
        sys.exit(f"no result from: {' '.join(cmd)}\n{out.stdout[-2000:]}")
    return rows[0]["imagesPerSecond"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--case", default="ijepa-fmnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per run (each with its own masks)")
    ap.add_argument("--peak-gflops", type=float, default=1, help="only labels %% of peak; not measured")
    ap.add_argument("--embed", type=int, metavar="BATCH", help="time `bench embed` at this batch (CASE e.g. vit-s16)")
    a = ap.parse_args()
    before, after, ratios = [], [], []
    for r in range(a.rounds):
        order = [("before", a.before), ("after", a.after)]
        if r % 2:
            order.reverse()
        got = {}
        for name, binary in order:
            got[name] = images_per_second(binary, a.case, a.threads, a.steps, a.peak_gflops, a.embed)
        before.append(got["before"])
        after.append(got["after"])
        ratios.append(got["after"] / got["before"])
        print(f"round {r + 1} ({order[0][0]} first): before {got['before']:.1f}, after {got['after']:.1f} images/s, "
              f"ratio {ratios[-1]:.3f}", flush=True)
    mb, ma = statistics.median(before), statistics.median(after)
    print(f"{a.case}, {a.threads} threads, {a.rounds} rounds: median before {mb:.1f}, after {ma:.1f} images/s; "
          f"after / before {ma / mb:.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
