#!/usr/bin/env python3
"""Checks the Swift reader and encoder on the real ViT-H/14 architecture: a > 4 GiB official-layout checkpoint.

    tools/.venv-torch/bin/python tools/check_official_vit_h.py --official /tmp/ijepa-official \
        --ijepa .build/release/ijepa --work /tmp/vith

1. Builds the official ViT-H/14 at 224 px (`vit_huge(patch_size=14)` of `src/models/vision_transformer.py`,
   1280 wide, 32 blocks, 16 heads, its own random init) as encoder and target encoder, and the official
   predictor (384 wide, 12 blocks, as `init_model` builds it), and saves them with `torch.save` in the layout of
   the official `train.py` (`encoder`, `predictor`, `target_encoder`, names prefixed `module.` as
   DistributedDataParallel saves them, plus `epoch`, `loss`, `batch_size`, `world_size`, `lr`; no optimizer
   state, to save disk). Two encoders of 2.5 GB make the archive larger than 4 GiB, so it is written as ZIP64.
2. Runs the official target encoder on two random preprocessed images (torch.inference_mode, fp32) and
   average-pools its output.
3. `ijepa embed --checkpoint <file.pth> --tensors <the same images>`: the Swift reader and encoder, measured by
   /usr/bin/time (peak RSS); max |diff| / max |ref| must be <= 1e-4.
4. `ijepa import` of the same file (peak RSS), then `ijepa embed` of the imported safetensors: the same bits
   as step 3.
Prints the numbers; exits non-zero when a check fails. The files (about 10 GB) are removed at the end.
"""
import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file


def timed(cmd):
    """Runs cmd under /usr/bin/time -v; returns (seconds, peak RSS bytes)."""
    t0 = time.time()
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) * 1024
    print("   ", r.stdout.strip().splitlines()[-1])
    return time.time() - t0, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True, help="checkout of facebookresearch/ijepa")
    ap.add_argument("--ijepa", default=".build/release/ijepa")
    ap.add_argument("--work", default="/tmp/ijepa-vith")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the files in --work")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.official))
    import src.models.vision_transformer as vt  # the official module

    os.makedirs(args.work, exist_ok=True)
    pth = os.path.join(args.work, "vith14.pth.tar")
    inputs = os.path.join(args.work, "inputs.safetensors")
    torch.manual_seed(0)
    t0 = time.time()
    encoder = vt.vit_huge(patch_size=14, img_size=[224])
    predictor = vt.vit_predictor(num_patches=encoder.patch_embed.num_patches, embed_dim=encoder.embed_dim,
                                 predictor_embed_dim=384, depth=12, num_heads=encoder.num_heads)
    target = vt.vit_huge(patch_size=14, img_size=[224])
    target.load_state_dict(encoder.state_dict())
    with torch.no_grad():  # an EMA target differs from its encoder: nudge its trained weights (not the fixed table)
        for p in target.parameters():
            if p.requires_grad:
                p.mul_(1.001)
    x = torch.randn(args.images, 3, 224, 224)
    with torch.inference_mode():
        ref = target.eval()(x).mean(dim=1).numpy()
        # The same forward in float64: how far fp32 PyTorch itself is from the exact result.
        exact = copy.deepcopy(target).double()(x.double()).mean(dim=1).numpy()
    torch_rel = float(np.abs(ref - exact).max() / np.abs(exact).max())
    print(f"PyTorch fp32 against its own float64 forward: max|diff|/max|ref| = {torch_rel:.2e}")
    encoder_bytes = sum(p.numel() for p in target.parameters()) * 4
    save_file({"images": x.contiguous()}, inputs)
    ddp = lambda m: {"module." + k: v for k, v in m.state_dict().items()}  # noqa: E731
    torch.save({"encoder": ddp(encoder), "predictor": ddp(predictor), "target_encoder": ddp(target), "opt": None,
                "scaler": None, "epoch": 300, "loss": 0.123, "batch_size": 2048, "world_size": 16, "lr": 0.001}, pth)
    del encoder, predictor, target
    size = os.path.getsize(pth)
    print(f"official ViT-H/14 checkpoint: {size / 2**30:.2f} GiB (ZIP64: {size > 2**32}), target encoder "
          f"{encoder_bytes / 2**30:.2f} GiB of fp32; built and saved in {time.time() - t0:.0f} s")

    failures = 0
    ours = os.path.join(args.work, "ours.safetensors")
    secs, rss = timed([args.ijepa, "embed", "--checkpoint", pth, "--tensors", inputs, "--output", ours])
    feats = load_file(ours)["features"].numpy()
    rel = float(np.abs(feats - ref).max() / np.abs(ref).max())
    rel64 = float(np.abs(feats - exact).max() / np.abs(exact).max())
    ok = feats.shape == ref.shape and rel <= 1e-4
    failures += not ok
    print(f"  ijepa embed --checkpoint (Swift reader + encoder): {secs:.0f} s, peak RSS {rss / 2**30:.2f} GiB = "
          f"{rss / encoder_bytes:.2f} x the target encoder; features {feats.shape}, max|diff|/max|ref| = {rel:.2e} "
          f"against PyTorch fp32 ({'ok' if ok else 'FAILED'}, limit 1e-4), {rel64:.2e} against float64")
    ok_rss = rss <= 1.2 * encoder_bytes
    failures += not ok_rss
    print(f"  peak RSS <= 1.2 x the target encoder's bytes: {'ok' if ok_rss else 'FAILED'}")

    imported = os.path.join(args.work, "vith14.safetensors")
    secs, rss = timed([args.ijepa, "import", pth, "--output", imported])
    print(f"  ijepa import: {secs:.0f} s, peak RSS {rss / 2**30:.2f} GiB, wrote {os.path.getsize(imported) / 2**30:.2f} GiB")
    again = os.path.join(args.work, "again.safetensors")
    timed([args.ijepa, "embed", "--checkpoint", imported, "--tensors", inputs, "--output", again])
    same = np.array_equal(load_file(again)["features"].numpy(), feats)
    failures += not same
    print(f"  embed of the imported safetensors: features {'identical' if same else 'DIFFERENT'} to the .pth's")
    if not args.keep:
        shutil.rmtree(args.work)
    print("all checks passed" if failures == 0 else f"{failures} check(s) FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
