#!/usr/bin/env python3
"""Writes the PyTorch fixtures for the Swift I-JEPA training step: AdamW groups, schedules and the EMA target.

    python3 -m venv tools/.venv-torch && tools/.venv-torch/bin/pip install torch safetensors numpy
    tools/.venv-torch/bin/python tools/make_step_fixtures.py

Runs STEPS official training steps (facebookresearch/ijepa src/train.py, src/helper.py init_opt,
src/utils/schedulers.py) in fp32 on the CPU, with
the encoder, predictor, masking helpers and fixture init imported from make_parity_fixtures.py:
- target_encoder = deepcopy(encoder), requires_grad False;
- torch.optim.AdamW (betas 0.9/0.999, eps 1e-8) with the four official groups: encoder / predictor parameters
  whose name has no 'bias' and ndim != 1 (decayed, mask_token included), then the biases and 1-D parameters of
  each (WD_exclude, weight_decay 0); the fixed sin-cos tables are buffers and never change;
- WarmupCosineSchedule / CosineWDSchedule stepping BEFORE the forward pass (first step uses k = 1), the lr
  written to every group, the wd only to the decayed groups; momentum m_i = ema0 + i (ema1 - ema0) / (ipe epochs
  ipe_scale), i = 0 used after the first step;
- per step: fresh N(0, 1) images and masks, target = layer_norm(target_encoder(imgs)) (eps 1e-5, no affine),
  apply_masks, repeat_interleave_batch; z = predictor(encoder(imgs, [ctx]), [ctx], tgts); smooth-L1 (beta 1,
  mean); backward; optimizer.step; zero_grad; EMA target <- m target + (1 - m) encoder.
The lrs are the published ones (2e-4 -> 1e-3 -> 1e-6) scaled by LR_SCALE = 10 so the AdamW changes are visible.
With ipe 2, epochs 2, warmup 1: W = 2, T = 4, so step 1 is in the warmup, step 2 is its end and step 3 is cosine.

Output: Tests/JEPATests/Fixtures/step.safetensors, float32 throughout (mask indices stored as float32 like
parity.safetensors):
- init.encoder.<name>, init.predictor.<name>: the state dicts (official names, pos tables included);
- step{k}.images [B,C,H,W], step{k}.mask.context.0 [B,Kc], step{k}.mask.target.{j} [B,Kp], step{k}.loss,
  step{k}.lr, step{k}.wd, step{k}.momentum (each [1]; momentum = the m used for the EMA after step k);
- step1.grad.encoder.<name>, step1.grad.predictor.<name>: gradients of every trainable parameter at step 1;
- step{1,3}.after.encoder.<name>, .after.predictor.<name>, .after.target.<name>: state dicts after the step
  (after the EMA for the target).
Metadata: "version" (FIXTURE_VERSION, must match the Swift test's; bump both when the content changes), "config"
(JSON, every number used), "schedule" (JSON, the exact float64 lr/wd/momentum per step), "torch".
The file is written by a small deterministic writer (sorted names, fixed metadata order) so that re-running
gives a byte-identical file (safetensors' own save_file orders the metadata keys at random).
"""
import copy
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_parity_fixtures import apply_masks, build_models, repeat_interleave_batch  # noqa: E402

FIXTURE_VERSION = "step-v1"
LR_SCALE = 10.0
CONFIG = dict(image=16, patch=4, channels=3, dim=32, depth=2, heads=2, pred_dim=16, pred_depth=2, batch=2,
              steps=3, ipe=2, epochs=2, warmup_epochs=1, lr_scale=LR_SCALE,
              start_lr=2e-3, ref_lr=1e-2, final_lr=1e-5,  # published 2e-4, 1e-3, 1e-6 times LR_SCALE
              wd0=0.04, wd1=0.4, ema0=0.996, ema1=1.0, ipe_scale=1.0, nenc=1, npred=2, kc=6, kp=3,
              betas=[0.9, 0.999], adam_eps=1e-8, target_ln_eps=1e-5, smooth_l1_beta=1.0, seed=0, mask_seed=1)


class WarmupCosine:
    """lr schedule of src/utils/schedulers.py: the counter is incremented before the value is computed."""

    def __init__(self, opt, warmup_steps, start_lr, ref_lr, total_steps, final_lr):
        self.opt, self.w, self.t_max = opt, warmup_steps, total_steps - warmup_steps
        self.start, self.ref, self.final, self.k = start_lr, ref_lr, final_lr, 0

    def step(self):
        self.k += 1
        if self.k < self.w:
            lr = self.start + (self.k / max(1, self.w)) * (self.ref - self.start)
        else:
            progress = (self.k - self.w) / max(1, self.t_max)
            lr = max(self.final, self.final + (self.ref - self.final) * 0.5 * (1.0 + math.cos(math.pi * progress)))
        for g in self.opt.param_groups:
            g["lr"] = lr
        return lr


class CosineWD:
    """wd schedule of src/utils/schedulers.py: cosine from ref_wd to final_wd, clamped at final_wd."""

    def __init__(self, opt, ref_wd, total_steps, final_wd):
        self.opt, self.ref, self.final, self.t, self.k = opt, ref_wd, final_wd, total_steps, 0

    def step(self):
        self.k += 1
        wd = self.final + (self.ref - self.final) * 0.5 * (1.0 + math.cos(math.pi * self.k / self.t))
        wd = max(self.final, wd) if self.final <= self.ref else min(self.final, wd)
        for g in self.opt.param_groups:
            if not g.get("WD_exclude", False):
                g["weight_decay"] = wd
        return wd


@torch.no_grad()
def ema_update(enc, target, m):
    """train.py L333-336: target <- m * target + (1 - m) * encoder, parameter by parameter."""
    for pq, pk in zip(enc.parameters(), target.parameters()):
        pk.mul_(m).add_((1.0 - m) * pq.detach())


def init_opt(enc, pred, c):
    decayed = lambda n, p: "bias" not in n and p.ndim != 1  # noqa: E731
    groups = [
        {"params": [p for n, p in enc.named_parameters() if decayed(n, p)]},
        {"params": [p for n, p in pred.named_parameters() if decayed(n, p)]},
        {"params": [p for n, p in enc.named_parameters() if not decayed(n, p)], "WD_exclude": True, "weight_decay": 0},
        {"params": [p for n, p in pred.named_parameters() if not decayed(n, p)], "WD_exclude": True,
         "weight_decay": 0},
    ]
    opt = torch.optim.AdamW(groups, betas=tuple(c["betas"]), eps=c["adam_eps"])
    total = int(c["ipe_scale"] * c["epochs"] * c["ipe"])
    lr = WarmupCosine(opt, int(c["warmup_epochs"] * c["ipe"]), c["start_lr"], c["ref_lr"], total, c["final_lr"])
    wd = CosineWD(opt, c["wd0"], total, c["wd1"])
    ipe_total = c["ipe"] * c["epochs"] * c["ipe_scale"]
    momentum = (c["ema0"] + i * (c["ema1"] - c["ema0"]) / ipe_total for i in range(int(ipe_total) + 1))
    return opt, lr, wd, momentum


def write_safetensors(path, tensors, metadata):
    """safetensors layout (u64 header size, JSON header padded with spaces to 8 bytes, raw little-endian data),
    names sorted and metadata in the given order so the bytes are reproducible."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].detach().cpu().to(torch.float32).numpy()).astype("<f4")
        blob = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    torch.set_num_threads(1)  # fixed reduction order: the same bytes on every run
    torch.manual_seed(CONFIG["seed"])
    c = CONFIG
    enc, pred = build_models(c)
    target = copy.deepcopy(enc)
    for p in target.parameters():
        p.requires_grad = False
    opt, lr_sched, wd_sched, momentum = init_opt(enc, pred, c)

    out = {}
    for prefix, model in (("init.encoder.", enc), ("init.predictor.", pred)):
        out.update({prefix + n: t.clone() for n, t in model.state_dict().items()})

    b, n, d = c["batch"], (c["image"] // c["patch"]) ** 2, c["dim"]
    gen = torch.Generator().manual_seed(c["mask_seed"])
    schedule = []
    for k in range(1, c["steps"] + 1):
        images = torch.randn(b, c["channels"], c["image"], c["image"])
        perms = [torch.randperm(n, generator=gen) for _ in range(b)]  # context and targets disjoint, ascending
        ctx = torch.stack([torch.sort(p[:c["kc"]]).values for p in perms])
        tgts = [torch.stack([torch.sort(p[c["kc"] + j * c["kp"]:c["kc"] + (j + 1) * c["kp"]]).values for p in perms])
                for j in range(c["npred"])]
        masks_enc = [ctx]

        lr = lr_sched.step()
        wd = wd_sched.step()
        with torch.no_grad():
            h = target(images)
            h = F.layer_norm(h, (d,), eps=c["target_ln_eps"])
            h = apply_masks(h, tgts)
            h = repeat_interleave_batch(h, b, repeat=len(masks_enc))
        z = pred(enc(images, masks_enc), masks_enc, tgts)
        loss = F.smooth_l1_loss(z, h, beta=c["smooth_l1_beta"])
        loss.backward()
        if k == 1:
            for prefix, model in (("step1.grad.encoder.", enc), ("step1.grad.predictor.", pred)):
                out.update({prefix + nm: p.grad.clone() for nm, p in model.named_parameters()})
        opt.step()
        opt.zero_grad()
        m = next(momentum)
        ema_update(enc, target, m)

        out[f"step{k}.images"] = images
        out[f"step{k}.mask.context.0"] = ctx.float()
        for j, t in enumerate(tgts):
            out[f"step{k}.mask.target.{j}"] = t.float()
        out[f"step{k}.loss"] = loss.detach().reshape(1)
        for key, v in (("lr", lr), ("wd", wd), ("momentum", m)):
            out[f"step{k}.{key}"] = torch.tensor([v], dtype=torch.float32)
        if k in (1, c["steps"]):
            for part, model in (("encoder", enc), ("predictor", pred), ("target", target)):
                out.update({f"step{k}.after.{part}.{nm}": t.clone() for nm, t in model.state_dict().items()})
        schedule.append(dict(step=k, lr=lr, wd=wd, momentum=m, loss=loss.item()))
        print(f"step {k}: loss {loss.item():.6f}  lr {lr:.6g}  wd {wd:.6g}  m {m:.6g}")

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "JEPATests", "Fixtures",
                        "step.safetensors")
    path = os.path.normpath(path)
    meta = {"version": FIXTURE_VERSION, "config": json.dumps(c),
            "schedule": json.dumps([{k: v for k, v in s.items() if k != "loss"} for s in schedule]),
            "torch": torch.__version__}
    write_safetensors(path, out, meta)
    back = load_file(path)  # round-trip check through the reference reader
    assert set(back) == set(out) and all(torch.equal(back[k], out[k].float()) for k in out)
    print(f"wrote {path}: {len(out)} tensors, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    sys.exit(main())
