#!/usr/bin/env python3
"""ViT forward and training step (forward + MSE loss + backward + AdamW) in PyTorch vs our engine, same run.

    tools/.venv-torch/bin/python tools/vit_vs_pytorch.py [--threads 1,2] [--filter tiny32] [--steps 3]

Same model as `ijepa bench vit` (the official ViT block structure, built by tools/make_parity_fixtures.py's
modules), same batch, fp32 on CPU, torch.set_num_threads(T). Each configuration runs in its own process
(ours and PyTorch alternating) so that peak RSS is per configuration. Prints images/s, GFLOP/s, peak RSS and
the ratio ours / PyTorch.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

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
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"imagesPerSecond": c["batch"] / med, "medianMs": med * 1e3, "peakRSSBytes": rss,
                      "gflops": flops_per_image(c) * c["batch"] * (3 if training else 1) / med / 1e9}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--filter", default=None)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--binary", default=".build/release/ijepa")
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        name, threads, training, steps = args.worker
        return torch_worker(name, int(threads), training == "train", int(steps))
    import torch
    print(f"PyTorch {torch.__version__}, fp32 CPU; ours: {args.binary}; median of {args.steps} steps after one warm-up")
    print(f"{'case':18}{'thr':>4}  {'ours img/s':>10} {'GFLOP/s':>8} {'RSS MiB':>8}   {'torch img/s':>11} {'GFLOP/s':>8} "
          f"{'RSS MiB':>8}   {'ratio':>6}")
    for threads in [int(t) for t in args.threads.split(",")]:
        for name in CASES:
            if args.filter and args.filter not in name:
                continue
            for mode in ("forward", "train"):
                cmd = [args.binary, "bench", "vit", "--json", "--threads", str(threads), "--filter", name, "--exact",
                       "--steps", str(args.steps)]
                lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
                ours = next(json.loads(l) for l in lines[1:] if json.loads(l)["name"] == f"{name}.{mode}")
                env = dict(os.environ, OMP_NUM_THREADS=str(threads))
                out = subprocess.run([sys.executable, __file__, "--worker", name, str(threads), mode, str(args.steps)],
                                     check=True, capture_output=True, text=True, env=env).stdout
                theirs = json.loads(out.splitlines()[-1])
                ratio = ours["imagesPerSecond"] / theirs["imagesPerSecond"]
                print(f"{name + '.' + mode:18}{threads:4}  {ours['imagesPerSecond']:10.1f} {ours['gflops']:8.1f} "
                      f"{ours['peakRSSBytes'] / 2**20:8.0f}   {theirs['imagesPerSecond']:11.1f} {theirs['gflops']:8.1f} "
                      f"{theirs['peakRSSBytes'] / 2**20:8.0f}   {ratio:6.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
