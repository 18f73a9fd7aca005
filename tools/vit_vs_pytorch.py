#!/usr/bin/env python3
"""ViT forward and training step (forward + MSE loss + backward + AdamW) in PyTorch vs our engine, same run.

    tools/.venv-torch/bin/python tools/vit_vs_pytorch.py [--threads 1,2] [--filter tiny32] [--steps 3] [--rounds 3]

Same model as `ijepa bench vit` (the official ViT block structure, built by tools/make_parity_fixtures.py's
modules), same batch, fp32 on CPU, torch.set_num_threads(T). Each configuration runs in its own process
(ours and PyTorch alternating, and with --rounds R the order alternating too) so that peak RSS is per
configuration. Prints images/s, GFLOP/s and peak RSS (medians and maxima over rounds), the ratio ours / PyTorch
(the median of the per-round ratios, and their range), then the thread scaling of both.
"""
import argparse
import json
import os
import subprocess
import sys
import time

from peak_rss import peak_rss

CASES = {
    "tiny32": dict(image=32, patch=4, channels=3, dim=192, depth=12, heads=3, batch=64),
    "vit-s16": dict(image=224, patch=16, channels=3, dim=384, depth=12, heads=6, batch=16),
}


def flops_per_image(c):
    n, d = (c["image"] // c["patch"]) ** 2, c["dim"]
    per_token = c["channels"] * c["patch"] ** 2 * d + c["depth"] * 12 * d * d
    return 2 * per_token * n + c["depth"] * 4 * n * n * d


def torch_worker(name, threads, training, steps):
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.dirname(__file__))
    from make_parity_fixtures import Encoder
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c = CASES[name]
    model = Encoder(c)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.04)
    x = torch.randn(c["batch"], c["channels"], c["image"], c["image"])

    def step():
        if training:
            y = model(x)
            loss = F.mse_loss(y, torch.zeros_like(y))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=False)
        else:
            with torch.no_grad():
                model(x)

    step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    rss = peak_rss()  # VmHWM: ru_maxrss would include what the parent held
    print(json.dumps({"imagesPerSecond": c["batch"] / med, "medianMs": med * 1e3, "peakRSSBytes": rss,
                      "gflops": flops_per_image(c) * c["batch"] * (3 if training else 1) / med / 1e9}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--filter", default=None)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1,
                   help="alternating rounds per configuration (ours first, then PyTorch first, ...); the ratio "
                        "printed is the median of the per-round ratios")
    p.add_argument("--binary", default=".build/release/ijepa")
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        name, threads, training, steps = args.worker
        return torch_worker(name, int(threads), training == "train", int(steps))
    if args.rounds < 1 or args.steps < 1:
        p.error("--rounds and --steps must be >= 1")
    import torch
    print(f"PyTorch {torch.__version__}, fp32 CPU; ours: {args.binary}; median of {args.steps} steps after one warm-up; "
          f"{args.rounds} alternating round(s)")
    print(f"{'case':18}{'thr':>4}  {'ours img/s':>10} {'GFLOP/s':>8} {'RSS MiB':>8}   {'torch img/s':>11} {'GFLOP/s':>8} "
          f"{'RSS MiB':>8}   {'ratio':>6}  {'rounds':>12}")
    median = lambda xs: sorted(xs)[len(xs) // 2]
    rates = {}  # (case.mode, threads) -> (ours img/s, torch img/s), medians over rounds
    for threads in [int(t) for t in args.threads.split(",")]:
        for name in CASES:
            if args.filter and args.filter not in name:
                continue
            runs = {mode: ([], []) for mode in ("forward", "train")}  # per mode: our results, theirs
            for r in range(args.rounds):
                def ours():
                    # One process runs both modes (`bench vit` times forward, then train), each with its own peak RSS.
                    cmd = [args.binary, "bench", "vit", "--json", "--threads", str(threads), "--filter", name,
                           "--exact", "--steps", str(args.steps)]
                    lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
                    for mode in runs:
                        runs[mode][0].append(next(json.loads(l) for l in lines[1:] if json.loads(l)["name"] == f"{name}.{mode}"))

                def theirs():
                    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
                    for mode in runs:
                        out = subprocess.run([sys.executable, __file__, "--worker", name, str(threads), mode, str(args.steps)],
                                             check=True, capture_output=True, text=True, env=env).stdout
                        runs[mode][1].append(json.loads(out.splitlines()[-1]))

                for side in ((ours, theirs) if r % 2 == 0 else (theirs, ours)):
                    side()
            for mode, (o, t) in runs.items():
                ratios = [a["imagesPerSecond"] / b["imagesPerSecond"] for a, b in zip(o, t)]
                oi, ti = median([a["imagesPerSecond"] for a in o]), median([b["imagesPerSecond"] for b in t])
                rates[(f"{name}.{mode}", threads)] = (oi, ti)
                spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
                print(f"{name + '.' + mode:18}{threads:4}  {oi:10.1f} {median([a['gflops'] for a in o]):8.1f} "
                      f"{max(a['peakRSSBytes'] for a in o) / 2**20:8.0f}   {ti:11.1f} {median([b['gflops'] for b in t]):8.1f} "
                      f"{max(b['peakRSSBytes'] for b in t) / 2**20:8.0f}   {median(ratios):6.2f}  {spread:>12}", flush=True)
    threads = sorted({t for _, t in rates})
    for case in sorted({c for c, _ in rates}):
        if (case, 1) in rates and len(threads) > 1 and (case, threads[-1]) in rates:
            (o1, t1), (on, tn) = rates[(case, 1)], rates[(case, threads[-1])]
            print(f"{case}: {threads[-1]} threads / 1 thread (medians): ours {on / o1:.2f}x, pytorch {tn / t1:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
