#!/usr/bin/env python3
"""Runs the GEMM suite through our engine and through numpy/OpenBLAS in the same run, and prints the ratios.

    python3 tools/gemm_vs_openblas.py [--threads 1,2] [--rounds 2] [--filter vit-tiny] [--binary PATH]

The two engines alternate (ours, OpenBLAS, ours, OpenBLAS, ...) so that a drift of the shared machine's speed
hits both; the ratio printed is the median over rounds of ours/OpenBLAS per shape. Shapes and transposes come
from `ijepa bench gemm --json`, so the two sides always run the same list. numpy runs in a subprocess with
OPENBLAS_NUM_THREADS set (and OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed, which slow a current OpenBLAS).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

NUMPY_RUNNER = r"""
import json, sys, time
import numpy as np
shapes = json.loads(sys.argv[1])
min_seconds = float(sys.argv[2])
rng = np.random.default_rng(1)
for s in shapes:
    m, n, k, ta, tb = s["m"], s["n"], s["k"], s["transA"], s["transB"]
    A = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
    B = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
    a = A.T if ta else A
    b = B.T if tb else B
    C = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=C)
    ts = []
    while len(ts) < 5 or sum(ts) < min_seconds:
        t = time.perf_counter(); np.matmul(a, b, out=C); ts.append(time.perf_counter() - t)
    ts.sort()
    med = ts[len(ts) // 2]
    print(json.dumps({"name": s["name"], "gflops": 2 * m * n * k / med / 1e9, "medianMs": med * 1e3}), flush=True)
"""


def run_ours(binary, threads, flt, min_seconds):
    cmd = [binary, "bench", "gemm", "--json", "--threads", str(threads), "--min-seconds", str(min_seconds)]
    if flt:
        cmd += ["--filter", flt]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return lines[0], {l["name"]: l for l in lines[1:]}


def run_openblas(shapes, threads, min_seconds):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", NUMPY_RUNNER, json.dumps(shapes), str(min_seconds)],
                         check=True, capture_output=True, text=True, env=env).stdout
    return {l["name"]: l for l in map(json.loads, out.splitlines())}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--filter", default=None)
    p.add_argument("--min-seconds", type=float, default=0.3)
    p.add_argument("--binary", default=".build/release/ijepa")
    p.add_argument("--json", action="store_true", help="one JSON object per shape and thread count")
    args = p.parse_args()
    import numpy
    blas = "OpenBLAS"
    try:
        cfg = numpy.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"].get("openblas configuration", blas).split()[0:2]
        blas = " ".join(blas)
    except Exception:
        pass
    for threads in [int(t) for t in args.threads.split(",")]:
        ours_rounds, theirs_rounds, header = [], [], None
        for _ in range(args.rounds):
            header, ours = run_ours(args.binary, threads, args.filter, args.min_seconds)
            shapes = [{k: v[k] for k in ("name", "m", "n", "k", "transA", "transB")} for v in ours.values()]
            theirs = run_openblas(shapes, threads, args.min_seconds)
            ours_rounds.append(ours)
            theirs_rounds.append(theirs)
        peak = header["peakGflops"] * threads
        if not args.json:
            print(f"\n{threads} thread(s); our SIMD path {header['simd']}; measured peak {peak:.1f} GFLOP/s; "
                  f"numpy {numpy.__version__} with {blas}; median of {args.rounds} alternating rounds")
            print(f"{'name':24}{'m':>6}{'n':>6}{'k':>6} op  {'ours':>7} {'%pk':>5}  {'OpenBLAS':>8} {'%pk':>5}  {'ratio':>6}")
        ratios = []
        for name, o in ours_rounds[0].items():
            ours_g = statistics.median(r[name]["gflops"] for r in ours_rounds)
            theirs_g = statistics.median(r[name]["gflops"] for r in theirs_rounds)
            ratio = statistics.median(o2[name]["gflops"] / t2[name]["gflops"] for o2, t2 in zip(ours_rounds, theirs_rounds))
            ratios.append(ratio)
            op = ("T" if o["transA"] else "N") + ("T" if o["transB"] else "N")
            if args.json:
                print(json.dumps({"name": name, "threads": threads, "ours": ours_g, "openblas": theirs_g, "ratio": ratio,
                                  "oursPctPeak": 100 * ours_g / peak, "openblasPctPeak": 100 * theirs_g / peak}))
            else:
                print(f"{name:24}{o['m']:6}{o['n']:6}{o['k']:6} {op}  {ours_g:7.1f} {100*ours_g/peak:5.1f}  "
                      f"{theirs_g:8.1f} {100*theirs_g/peak:5.1f}  {ratio:6.2f}")
        if not args.json:
            print(f"geometric-mean ratio ours/OpenBLAS at {threads} thread(s): "
                  f"{statistics.geometric_mean(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
