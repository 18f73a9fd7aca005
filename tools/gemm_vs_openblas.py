#!/usr/bin/env python3
"""Runs the GEMM suite through our engine and through numpy/OpenBLAS in the same run, and prints the ratios.

    python3 tools/gemm_vs_openblas.py [--threads 1,2] [--rounds 3] [--filter vit-tiny] [--binary PATH] [--json]

The machine is shared and its speed drifts by 10-20 % over minutes, so the two engines alternate shape by
shape (ours, OpenBLAS, ours, OpenBLAS, ... for each shape and round), and the ratio printed is the median over
rounds of ours/OpenBLAS for that shape. Shapes and transposes come from `ijepa bench gemm --json`, so both
sides run the same list. numpy runs in one long-lived subprocess with OPENBLAS_NUM_THREADS set (and
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed: they slow a current OpenBLAS).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

NUMPY_WORKER = r"""
import json, sys, time
import numpy as np
rng = np.random.default_rng(1)
cache = {}
for line in sys.stdin:
    s = json.loads(line)
    m, n, k, ta, tb = s["m"], s["n"], s["k"], s["transA"], s["transB"]
    key = (m, n, k, ta, tb)
    if key not in cache:
        A = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
        B = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
        cache.clear()
        cache[key] = (A.T if ta else A, B.T if tb else B, np.empty((m, n), dtype=np.float32))
    a, b, C = cache[key]
    np.matmul(a, b, out=C)
    ts = []
    while len(ts) < 5 or sum(ts) < s["minSeconds"]:
        t = time.perf_counter(); np.matmul(a, b, out=C); ts.append(time.perf_counter() - t)
    ts.sort()
    print(json.dumps({"gflops": 2 * m * n * k / ts[len(ts) // 2] / 1e9}), flush=True)
"""


def ours(binary, threads, name, peak, min_seconds):
    cmd = [binary, "bench", "gemm", "--json", "--threads", str(threads), "--filter", name, "--exact",
           "--peak-gflops", str(peak), "--min-seconds", str(min_seconds)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")][1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--filter", default=None)
    p.add_argument("--min-seconds", type=float, default=0.2)
    p.add_argument("--binary", default=".build/release/ijepa")
    p.add_argument("--json", action="store_true", help="one JSON object per shape and thread count")
    args = p.parse_args()

    import numpy
    blas = "OpenBLAS"
    try:
        cfg = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = " ".join(cfg.get("openblas configuration", blas).split()[:2])
    except Exception:
        pass
    cmd = [args.binary, "bench", "peak", "--json"] + (["--filter", args.filter] if args.filter else [])
    header = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[0])
    listing = [args.binary, "bench", "gemm", "--list"] + (["--filter", args.filter] if args.filter else [])
    out = subprocess.run(listing, check=True, capture_output=True, text=True).stdout
    shapes = [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    for threads in [int(t) for t in args.threads.split(",")]:
        env = dict(os.environ)
        for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            env.pop(var, None)
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
        worker = subprocess.Popen([sys.executable, "-c", NUMPY_WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env=env)
        peak = header["peakGflops"] * threads
        if not args.json:
            print(f"\n{threads} thread(s); our SIMD path {header['simd']}; measured peak {peak:.1f} GFLOP/s; "
                  f"numpy {numpy.__version__} with {blas}; medians of {args.rounds} alternating rounds per shape")
            print(f"{'name':24}{'m':>6}{'n':>6}{'k':>6} op  {'ours':>7} {'%pk':>5}  {'OpenBLAS':>8} {'%pk':>5}  {'ratio':>6}")
        ratios = []
        for s in shapes:
            o_runs, t_runs = [], []
            for _ in range(args.rounds):
                if threads > 1:
                    # OpenBLAS's workers spin for a while after each call (THREAD_TIMEOUT, ~0.1 s): started at
                    # once, our run shared its second core with them (vit-tiny.proj.wgrad at 2 threads read 102
                    # GFLOP/s here, 183-188 alone, 2026-11-30). Let them go to sleep first.
                    time.sleep(0.3)
                o_runs.append(ours(args.binary, threads, s["name"], header["peakGflops"], args.min_seconds)["gflops"])
                worker.stdin.write(json.dumps(dict(s, minSeconds=args.min_seconds)) + "\n")
                worker.stdin.flush()
                t_runs.append(json.loads(worker.stdout.readline())["gflops"])
            ratio = statistics.median(o / t for o, t in zip(o_runs, t_runs))
            o_g, t_g = statistics.median(o_runs), statistics.median(t_runs)
            ratios.append(ratio)
            op = ("T" if s["transA"] else "N") + ("T" if s["transB"] else "N")
            if args.json:
                print(json.dumps({"name": s["name"], "threads": threads, "ours": o_g, "openblas": t_g, "ratio": ratio,
                                  "oursPctPeak": 100 * o_g / peak, "openblasPctPeak": 100 * t_g / peak}), flush=True)
            else:
                print(f"{s['name']:24}{s['m']:6}{s['n']:6}{s['k']:6} {op}  {o_g:7.1f} {100*o_g/peak:5.1f}  "
                      f"{t_g:8.1f} {100*t_g/peak:5.1f}  {ratio:6.2f}", flush=True)
        worker.stdin.close()
        worker.wait()
        if not args.json:
            print(f"geometric-mean ratio ours/OpenBLAS at {threads} thread(s): "
                  f"{statistics.geometric_mean(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
