#!/usr/bin/env python3
"""The full I-JEPA training step in PyTorch (fp32, CPU) as a baseline for `ijepa bench ijepa`, optionally same run.

    tools/.venv-torch/bin/python tools/ijepa_vs_pytorch.py --swift .build/release/ijepa [--threads 1,2] [--steps 10]
    tools/.venv-torch/bin/python tools/ijepa_vs_pytorch.py --masks ijepa-fmnist=masks.safetensors --filter fmnist
    tools/.venv-torch/bin/python tools/ijepa_vs_pytorch.py --filter fmnist --steps 2     # PyTorch alone, sampled masks
    tools/.venv-torch/bin/python tools/ijepa_vs_pytorch.py --swift .build/release/ijepa --busy   # one core kept busy
    tools/.venv-torch/bin/python tools/ijepa_vs_pytorch.py --swift .build/release/ijepa --rounds 3  # median of 3 ratios

What one step is (the official src/train.py loop and src/utils/schedulers.py; modules and helpers imported from
tools/make_parity_fixtures.py, the AdamW groups and schedules from tools/make_step_fixtures.py):
lr / wd schedule step; target = target_encoder(images) under no_grad over all N tokens, F.layer_norm (eps 1e-5, no
affine), apply_masks, repeat_interleave_batch; z = predictor(encoder(images, [ctx]), [ctx], targets); smooth-L1
(beta 1, mean); backward; AdamW step (the official four groups: decayed weights / biases and 1-D parameters, of
encoder and predictor); zero_grad; EMA of the target encoder (m = 0.996 ramp). As in the official code, the fixed
2-D sin-cos positional tables are not trained (buffers here, requires_grad False there) and the target encoder is
never differentiated (deepcopy of the encoder, requires_grad False, forward under no_grad). Weights get the init the
official runs actually got (trunc_normal 0.02 for every Linear / Conv2d weight and the mask token, zero biases,
LayerNorm 1 / 0). Images are one fixed N(0, 1) batch; creating them and the masks is not timed.

Configurations (same as `ijepa bench ijepa`):
  ijepa-fmnist  1x28x28, patch 4, encoder D192 depth 6 heads 3, predictor 96 x 4, batch 64, nenc 1, npred 4
  ijepa-vits16  3x224x224, patch 16, encoder D384 depth 12 heads 6, predictor 384 x 6, batch 16, nenc 1, npred 4
  ijepa-fmnist-recompute, ijepa-vits16-recompute: the same steps; the Swift side recomputes the trained blocks in
  the backward pass (activation checkpointing, `meta.recompute_blocks`), PyTorch runs its plain step

Masks: with `--swift PATH` the script asks the Swift binary for the exact masks it times
(`PATH bench ijepa --dump-masks FILE --filter NAME --steps N`); `--masks NAME=FILE` (or `--masks FILE`, matched by the
config in its metadata) uses a dump made earlier. The file holds `step{s}.context.0` [B, Kc] and `step{s}.target.{j}`
[B, Kp] (float32 indices) and metadata "config". Warm-up step k and timed step k (each counted from 0) use the masks
of step k mod S, so timed step k has the masks of the Swift bench's timed step k. Without a dump the masks are sampled
here by a re-implementation of the official multi-block rule (src/masks/multiblock.py, min_keep 4 at 28 px as the Swift
bench, 10 at 224 px) with its own RNG: same distribution, not the same masks as Swift; every line then says so.

Timing: torch.set_num_threads(T) (and OMP_NUM_THREADS=T) in a fresh process per (config, threads), so that the peak
RSS (VmHWM: the whole process, Python and torch included, not what the parent held; importRSSBytes is the peak right
after the imports, before any model) is per case; `--warmup` (2) steps, then the median of `--steps` (10) timed
steps. imagesPerSecond = batch / median step seconds. gflops = the FLOPs of the timed steps by the formula of
step_flops below (with each step's actual Kc and Kp; matmuls only, backward = 2x forward for
the trained parts) / their total time, the same aggregation as the Swift bench.
pctPeak = 100 gflops / (peak per core x threads) when a per-core peak is known: `--peak-gflops` (also passed to
Swift) or the peakGflops of the Swift header line; null otherwise.

Output: a JSON header line, then one JSON line per (config, threads, engine) with name, engine ("pytorch" / "swift"),
threads, batch, imagesPerSecond, gflops, pctPeak, peakRSSBytes, medianMs, torchVersion (+ details). With --swift the
two engines alternate per (config, threads) (Swift first: `PATH bench ijepa --json --threads T --filter NAME --exact
--steps N`), then a ratio table and a final JSON line with the ratios: speed = PyTorch median ms / Swift median ms (= Swift
images/s / PyTorch images/s with batch / median on both sides), RSS = Swift peak RSS / PyTorch peak RSS.
"""
import argparse
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

from peak_rss import peak_rss

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CASES = {
    "ijepa-fmnist": dict(image=28, channels=1, patch=4, dim=192, depth=6, heads=3, pred_dim=96, pred_depth=4,
                         batch=64, nenc=1, npred=4, min_keep=4),
    "ijepa-vits16": dict(image=224, channels=3, patch=16, dim=384, depth=12, heads=6, pred_dim=384, pred_depth=6,
                         batch=16, nenc=1, npred=4, min_keep=10),
}
# The Swift bench's `-recompute` cases run the same step with activation checkpointing of the trained blocks (the
# same numbers, less memory, a second forward pass); PyTorch runs its plain step for them, so their ratios say
# what the option buys against the PyTorch step a user would otherwise run.
CASES.update({name + "-recompute": dict(c, recompute=True) for name, c in list(CASES.items())})
# Published optimiser / schedule values (official configs/*.yaml) in make_step_fixtures.init_opt's keys; the length
# (ipe x epochs) only has to exceed the steps run. Same numbers as the Swift bench.
OPT = dict(betas=[0.9, 0.999], adam_eps=1e-8, ipe=1000, epochs=10, warmup_epochs=1, ipe_scale=1.0,
           start_lr=2e-4, ref_lr=1e-3, final_lr=1e-6, wd0=0.04, wd1=0.4, ema0=0.996, ema1=1.0)
MASK_KEYS = ("image", "channels", "patch", "dim", "depth", "heads", "pred_dim", "pred_depth", "batch", "npred")


def block_flops(n, d, r=4):
    """Forward FLOPs of one pre-norm block over n tokens of width d (matmuls only, 2 per MAC)."""
    return (6 + 2 + 4 * r) * n * d * d + 4 * n * n * d


def step_flops(c, kc, kp, nenc=1, npred=None):
    """FLOPs of one training step, matmuls only: F_tgt + 3 (F_ctx + F_pred)."""
    npred = c["npred"] if npred is None else npred
    b, d, dp = c["batch"], c["dim"], c["pred_dim"]
    n = (c["image"] // c["patch"]) ** 2
    pe = 2 * n * c["channels"] * c["patch"] ** 2 * d  # the context encoder also embeds all N patches
    f_tgt = b * (pe + c["depth"] * block_flops(n, d))
    f_ctx = b * (pe + nenc * c["depth"] * block_flops(kc, d))
    f_pred = (b * nenc * 2 * kc * d * dp  # predictor_embed, before the npred repeat
              + b * nenc * npred * (c["pred_depth"] * block_flops(kc + kp, dp) + 2 * kp * dp * d))
    return f_tgt + 3 * (f_ctx + f_pred)


def check_step_flops():
    """The formula must keep giving the known per-image GFLOP of a ViT-T/4 32 px and a ViT-S/16 step."""
    a = dict(image=32, channels=3, patch=4, dim=192, depth=6, pred_dim=96, pred_depth=4, batch=1, npred=4)
    b = dict(image=224, channels=3, patch=16, dim=384, depth=12, pred_dim=384, pred_depth=6, batch=1, npred=4)
    for c, kc, kp, want, digits in ((a, 12, 11, 0.817, 3), (b, 50, 33, 38.07, 2)):
        got = step_flops(c, kc, kp) / 1e9
        assert round(got, digits) == want, f"step_flops gives {got:.4f} GFLOP/img, expected {want}"


# ---- masks ----------------------------------------------------------------------------------------------------

def load_masks(path):
    """(config dict, [(context [B, Kc] long, [target [B, Kp] long] * npred)] per step) of a --dump-masks file."""
    import torch
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if "config" not in meta:
        raise SystemExit(f"{path}: no 'config' in the safetensors metadata")
    cfg = json.loads(meta["config"])
    steps = []
    for s in range(int(cfg["steps"])):
        ctx = [tensors.get(f"step{s}.context.{i}") for i in range(int(cfg.get("nenc", 1)))]
        tgt = [tensors.get(f"step{s}.target.{j}") for j in range(int(cfg["npred"]))]
        if any(t is None for t in ctx + tgt):
            raise SystemExit(f"{path}: step {s} lacks step{s}.context.* / step{s}.target.* tensors")
        for t in ctx + tgt:
            if not torch.equal(t, t.round()):
                raise SystemExit(f"{path}: step {s}: mask indices are not integers")
        steps.append(([t.long() for t in ctx], [t.long() for t in tgt]))
    return cfg, steps


def check_masks(name, path, cfg, steps):
    c = CASES[name]
    bad = [f"{k} {cfg.get(k)} (want {c[k]})" for k in MASK_KEYS if cfg.get(k) != c[k]]
    if cfg.get("name", name) != name:
        bad.insert(0, f"name {cfg['name']} (want {name})")
    if bad:
        raise SystemExit(f"{path}: masks are for another configuration than {name}: " + ", ".join(bad))
    n = (c["image"] // c["patch"]) ** 2
    for s, (ctx, tgt) in enumerate(steps):
        for t in ctx + tgt:
            if t.dim() != 2 or t.shape[0] != c["batch"] or t.numel() == 0 or t.min() < 0 or t.max() >= n:
                raise SystemExit(f"{path}: step {s}: a mask of shape {list(t.shape)} is not [{c['batch']}, K] "
                                 f"with indices in 0..<{n}")


def sample_block_size(gen, g, scale, aspect):
    import torch
    r = torch.rand(1, generator=gen).item()  # the same r for scale and aspect ratio, as the official code
    max_keep = int(g * g * (scale[0] + r * (scale[1] - scale[0])))
    a = aspect[0] + r * (aspect[1] - aspect[0])
    h, w = int(round(math.sqrt(max_keep * a))), int(round(math.sqrt(max_keep / a)))
    return min(h, g - 1), min(w, g - 1)  # while h >= H: h -= 1


def sample_block_mask(gen, g, size, min_keep, regions=None):
    import torch
    h, w = size
    tries, timeout = 0, 20
    while True:
        top = torch.randint(0, g - h, (1,), generator=gen).item()
        left = torch.randint(0, g - w, (1,), generator=gen).item()
        mask = torch.zeros((g, g), dtype=torch.int32)
        mask[top:top + h, left:left + w] = 1
        for region in (regions or [])[:max(len(regions or []) - tries, 0)]:
            mask *= region
        idx = torch.nonzero(mask.flatten()).flatten()
        if len(idx) > min_keep:
            break
        timeout -= 1
        if timeout == 0:
            tries, timeout = tries + 1, 20
    complement = torch.ones((g, g), dtype=torch.int32)
    complement[top:top + h, left:left + w] = 0
    return idx, complement


def sample_masks(c, step, pos_gen):
    """One batch of the official multi-block collator (src/masks/multiblock.py): enc scale (0.85, 1), pred scale
    (0.15, 0.2), aspect (0.75, 1.5), no overlap, trimmed to the batch minimum keeping the first raster indices.
    Block sizes from a generator seeded with the step (as the official _itr_counter), positions from pos_gen."""
    import torch
    g = c["image"] // c["patch"]
    size_gen = torch.Generator().manual_seed(step)
    p_size = sample_block_size(size_gen, g, (0.15, 0.2), (0.75, 1.5))
    e_size = sample_block_size(size_gen, g, (0.85, 1.0), (1.0, 1.0))
    if p_size[0] * p_size[1] <= c["min_keep"]:
        raise SystemExit(f"target block {p_size} is not larger than min_keep {c['min_keep']}: the official "
                         "sampler would loop forever (issue #68)")
    ctxs, tgts = [], []
    for _ in range(c["batch"]):
        t = [sample_block_mask(pos_gen, g, p_size, c["min_keep"]) for _ in range(c["npred"])]
        tgts.append([i for i, _ in t])
        ctxs.append([sample_block_mask(pos_gen, g, e_size, c["min_keep"], [r for _, r in t])[0]
                     for _ in range(c["nenc"])])
    kp = min(len(m) for ms in tgts for m in ms)
    kc = min(len(m) for ms in ctxs for m in ms)
    ctx = [torch.stack([ms[i][:kc] for ms in ctxs]) for i in range(c["nenc"])]
    tgt = [torch.stack([ms[j][:kp] for ms in tgts]) for j in range(c["npred"])]
    return ctx, tgt


# ---- the PyTorch worker (one process per configuration and thread count) ----------------------------------------

def official_init(*models):
    """What the official runs got after helper.init_model (src/helper.py)."""
    import torch.nn as nn
    for m in (m for model in models for m in model.modules()):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        if hasattr(m, "mask_token"):
            nn.init.trunc_normal_(m.mask_token, std=0.02)


def torch_worker(name, threads, steps, warmup, masks_path):
    import torch
    import torch.nn.functional as F
    from make_parity_fixtures import Encoder, Predictor, apply_masks, repeat_interleave_batch
    from make_step_fixtures import ema_update, init_opt
    import_rss = peak_rss()  # Python + torch before any model
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c = CASES[name]
    if masks_path:
        cfg, masks = load_masks(masks_path)
        check_masks(name, masks_path, cfg, masks)
        source = "dump (the exact masks written by ijepa bench ijepa --dump-masks)"
    else:
        gen = torch.Generator().manual_seed(0)
        masks = [sample_masks(c, s, gen) for s in range(max(steps, 1))]
        source = "sampled here (official multi-block rule, own RNG; not the Swift bench's masks)"

    enc, pred = Encoder(c), Predictor(c)
    official_init(enc, pred)
    target = copy.deepcopy(enc)
    for p in target.parameters():
        p.requires_grad = False
    opt, lr_sched, wd_sched, momentum = init_opt(enc, pred, dict(c, **OPT))
    images = torch.randn(c["batch"], c["channels"], c["image"], c["image"])
    b = c["batch"]

    def step(masks_enc, masks_pred):
        lr_sched.step()
        wd_sched.step()
        with torch.no_grad():
            h = target(images)
            h = F.layer_norm(h, (h.size(-1),))
            h = apply_masks(h, masks_pred)
            h = repeat_interleave_batch(h, b, repeat=len(masks_enc))
        z = pred(enc(images, masks_enc), masks_enc, masks_pred)
        loss = F.smooth_l1_loss(z, h)
        loss.backward()
        opt.step()
        opt.zero_grad()
        ema_update(enc, target, next(momentum))
        return loss.item()

    for k in range(warmup):
        loss = step(*masks[k % len(masks)])
        if not math.isfinite(loss):
            raise SystemExit(f"{name}: warm-up step {k} gave loss {loss}")
    times, flops, kcs, kps = [], [], [], []
    for k in range(steps):
        ctx, tgt = masks[k % len(masks)]
        t0 = time.perf_counter()
        step(ctx, tgt)
        times.append(time.perf_counter() - t0)
        kcs.append(ctx[0].shape[1])
        kps.append(tgt[0].shape[1])
        flops.append(step_flops(c, kcs[-1], kps[-1], nenc=len(ctx), npred=len(tgt)))
    med = statistics.median(times)  # the Swift bench takes sorted[n / 2]; the same for odd n
    print(json.dumps({
        "name": name, "engine": "pytorch", "threads": threads, "batch": b, "imagesPerSecond": b / med,
        "gflops": sum(flops) / sum(times) / 1e9, "pctPeak": None,
        "peakRSSBytes": peak_rss(), "medianMs": med * 1e3,
        "torchVersion": torch.__version__, "importRSSBytes": import_rss, "bestMs": min(times) * 1e3,
        "imagesPerSecondMean": b * len(times) / sum(times), "meanContextTokens": sum(kcs) / len(kcs),
        "meanTargetTokens": sum(kps) / len(kps), "steps": steps, "warmup": warmup, "masks": source}))


# ---- driver -------------------------------------------------------------------------------------------------------

def run_swift(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr.strip()}")
    return r.stdout


def resolve_masks(specs):
    """--masks NAME=FILE or FILE (matched by the 'name', else the configuration, in its metadata)."""
    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and name in CASES:
            out[name] = path
            continue
        cfg, steps = load_masks(spec)
        name = cfg.get("name") or next((n for n, c in CASES.items() if all(cfg.get(k) == c[k] for k in MASK_KEYS)),
                                       None)
        if name not in CASES:
            raise SystemExit(f"{spec}: its config matches none of {', '.join(CASES)}; use --masks NAME=FILE")
        out[name] = spec
    for name, path in out.items():
        cfg, steps = load_masks(path)
        check_masks(name, path, cfg, steps)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2", help="thread counts, comma separated (default 1,2)")
    p.add_argument("--filter", default=None, help="only the configurations whose name contains this text")
    p.add_argument("--steps", type=int, default=10, help="timed steps (median reported; default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--masks", action="append", default=[], metavar="[NAME=]FILE",
                   help="masks written by `ijepa bench ijepa --dump-masks` (repeat per configuration)")
    p.add_argument("--swift", metavar="PATH", help="the ijepa binary: dump its masks and time it in the same run")
    p.add_argument("--peak-gflops", type=float, help="per-core fp32 peak for pctPeak (also passed to --swift)")
    p.add_argument("--busy", action="store_true",
                   help="keep one CPU-bound process (a busy loop) running during every timed case, as another job "
                        "on the machine would; the table then also shows each engine's 2-thread / 1-thread ratio")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the whole comparison, alternating which engine goes first; the ratios are the median "
                        "over rounds of each round's ratio (the shared machine drifts by 10-30 %% within minutes)")
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        name, threads, steps, warmup, masks = args.worker
        return torch_worker(name, int(threads), int(steps), int(warmup), masks if masks != "-" else None)

    check_step_flops()
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        raise SystemExit("--steps and --rounds must be >= 1 and --warmup >= 0")
    try:
        threads = [int(t) for t in args.threads.split(",")]
        assert all(t >= 1 for t in threads)
    except (ValueError, AssertionError):
        raise SystemExit(f"--threads expects positive integers separated by commas, got '{args.threads}'")
    names = [n for n in CASES if not args.filter or args.filter in n]
    if not names:
        raise SystemExit(f"--filter {args.filter!r} selects none of {', '.join(CASES)}")
    masks = resolve_masks(args.masks)
    tmp = tempfile.TemporaryDirectory(prefix="ijepa-masks-")
    if args.swift:
        for name in names:
            if name not in masks:
                path = os.path.join(tmp.name, f"{name}.safetensors")
                run_swift([args.swift, "bench", "ijepa", "--dump-masks", path, "--filter", name, "--exact",
                           "--steps", str(args.steps)])
                cfg, steps = load_masks(path)
                check_masks(name, path, cfg, steps)
                masks[name] = path
    import torch
    print(json.dumps({"header": True, "torchVersion": torch.__version__, "steps": args.steps, "warmup": args.warmup,
                      "threads": threads, "rounds": args.rounds, "swift": args.swift, "peakGflops": args.peak_gflops,
                      "busyLoop": args.busy,
                      "masks": {n: masks.get(n, "sampled here, not the Swift bench's masks") for n in names}}),
          flush=True)

    peak, rows = args.peak_gflops, []
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        for r in range(args.rounds):
            peak = measure_all(args, threads, names, masks, peak, rows, torch_first=r % 2 == 1)
    finally:
        if busy:
            busy.kill()
            busy.wait()
    report(rows, threads, args.busy)
    tmp.cleanup()


def measure_all(args, threads, names, masks, peak, rows, torch_first=False):
    """Times every (threads, config), Swift then PyTorch (or the other way round), and appends (name, threads,
    ours, theirs) to rows; returns the peak."""
    for t in threads:
        for name in names:
            ours = None
            theirs = run_torch(args, name, t, masks, peak) if torch_first else None
            if args.swift:
                cmd = [args.swift, "bench", "ijepa", "--json", "--threads", str(t), "--filter", name, "--exact",
                       "--steps", str(args.steps)]
                if args.peak_gflops:
                    cmd += ["--peak-gflops", str(args.peak_gflops)]
                lines = [json.loads(l) for l in run_swift(cmd).splitlines() if l.strip().startswith("{")]
                if peak is None and lines and "peakGflops" in lines[0]:
                    peak = lines[0]["peakGflops"]
                ours = next((l for l in lines if l.get("name") == name), None)
                if ours is None:
                    raise SystemExit(f"{' '.join(cmd)} printed no line named {name}")
                ours = {"name": name, "engine": "swift", "threads": ours.get("threads", t), "batch": ours.get("batch"),
                        "imagesPerSecond": ours.get("imagesPerSecond"), "gflops": ours.get("gflops"),
                        "pctPeak": ours.get("pctPeak"), "peakRSSBytes": ours.get("peakRSSBytes"),
                        "medianMs": ours.get("medianMs"), "torchVersion": None,
                        **{k: v for k, v in ours.items() if k not in ("name", "threads")}}
                print(json.dumps(ours), flush=True)
            if theirs is None:
                theirs = run_torch(args, name, t, masks, peak)
            if ours:
                for key in ("meanContextTokens", "meanTargetTokens"):
                    if key in ours and abs(ours[key] - theirs[key]) > 1e-3:  # Swift prints 4 decimals
                        print(f"warning: {name} threads {t}: {key} Swift {ours[key]} vs PyTorch {theirs[key]}: "
                              "the timed steps did not use the same masks", file=sys.stderr)
                rows.append((name, t, ours, theirs))
    return peak


def run_torch(args, name, t, masks, peak):
    """One PyTorch worker process for (name, t threads); prints and returns its JSON line."""
    env = dict(os.environ, OMP_NUM_THREADS=str(t))
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name, str(t), str(args.steps),
                        str(args.warmup), masks.get(name, "-")], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"PyTorch worker {name} threads {t} failed ({r.returncode}):\n{r.stderr.strip()}")
    theirs = json.loads(r.stdout.splitlines()[-1])
    if peak:
        theirs["pctPeak"] = 100 * theirs["gflops"] / (peak * t)
    print(json.dumps(theirs), flush=True)
    return theirs


def report(rows, threads, busy):
    """The ratio table and its JSON line (plus 2-thread / 1-thread ratios per engine when both were timed).

    With several rounds each (config, threads) has one Swift and one PyTorch measurement per round: the speed
    ratio is the median of the per-round ratios, images/s and RSS the medians / maxima over rounds, and `best`
    compares the fastest step either engine took in any round."""
    if not rows:
        return
    groups = {}
    for name, t, ours, theirs in rows:
        groups.setdefault((name, t), []).append((ours, theirs))
    print(f"\n{'case':14}{'thr':>4}  {'swift img/s':>11} {'torch img/s':>11} {'speed':>6} {'best':>5}   "
          f"{'swift MiB':>9} {'torch MiB':>9} {'RSS':>5}")
    ratios, median = [], statistics.median
    for (name, t), pairs in groups.items():
        speed = median(th["medianMs"] / o["medianMs"] for o, th in pairs)
        best = min(th.get("bestMs", th["medianMs"]) for _, th in pairs) / min(o.get("bestMs", o["medianMs"])
                                                                              for o, _ in pairs)
        rss = max(o["peakRSSBytes"] for o, _ in pairs) / max(th["peakRSSBytes"] for _, th in pairs)
        ratios.append({"name": name, "threads": t, "imagesPerSecondRatio": speed, "bestStepRatio": best,
                       "rssRatio": rss, "rounds": len(pairs),
                       "perRound": [th["medianMs"] / o["medianMs"] for o, th in pairs]})
        mib = (max(o["peakRSSBytes"] for o, _ in pairs) / 2**20, max(th["peakRSSBytes"] for _, th in pairs) / 2**20)
        ours_ips = median(o["batch"] / o["medianMs"] * 1e3 for o, _ in pairs)
        theirs_ips = median(th["imagesPerSecond"] for _, th in pairs)
        print(f"{name:14}{t:4}  {ours_ips:11.1f} {theirs_ips:11.1f} {speed:6.2f} {best:5.2f}   "
              f"{mib[0]:9.0f} {mib[1]:9.0f} {rss:5.2f}")
    print("speed = pytorch median step time / swift median step time (median over rounds of the per-round ratio); "
          "best = the same for the fastest step of any round; RSS = swift peak RSS / pytorch peak RSS")
    scaling = []
    if 1 in threads and 2 in threads:
        for name in sorted({n for n, _ in groups}):
            if (name, 1) in groups and (name, 2) in groups:
                ms = {(t, e): median(pair[e]["medianMs"] for pair in groups[(name, t)]) for t in (1, 2) for e in (0, 1)}
                s = {"name": name, "swift2over1": ms[(1, 0)] / ms[(2, 0)], "pytorch2over1": ms[(1, 1)] / ms[(2, 1)]}
                scaling.append(s)
                print(f"{name}: 2 threads / 1 thread{' with a busy loop running' if busy else ''}: "
                      f"swift {s['swift2over1']:.2f}x, pytorch {s['pytorch2over1']:.2f}x")
    print(json.dumps({"ratios": ratios, "scaling": scaling, "busyLoop": busy,
                      "basis": "imagesPerSecondRatio = median over rounds of pytorch medianMs / swift medianMs; "
                      "bestStepRatio = pytorch min bestMs / swift min bestMs; "
                      "rssRatio = swift peakRSSBytes / pytorch peakRSSBytes (maxima over rounds)"}))


if __name__ == "__main__":
    sys.exit(main())
