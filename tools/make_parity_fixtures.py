#!/usr/bin/env python3
"""Writes the PyTorch parity fixtures for the Swift encoder, predictor and I-JEPA loss.

    python3 -m venv tools/.venv-torch && tools/.venv-torch/bin/pip install torch safetensors numpy
    tools/.venv-torch/bin/python tools/make_parity_fixtures.py

The model is written here in plain PyTorch from the facts in the official code (facebookresearch/ijepa,
src/models/vision_transformer.py, src/masks/utils.py, train.py):
Conv2d patch embedding, fixed 2-D sin-cos positions (column half first, sin before cos, float64), pre-norm
blocks with LayerNorm eps 1e-6, qkv Linear with bias, softmax(q k^T (D/h)^-0.5) v, exact-erf GELU, final norm;
the predictor with predictor_embed, context positions, mask token + target positions, one sequence per
target block (context first), predictor_norm, predictor_proj on the target tokens; the loss: target encoder
under no_grad, F.layer_norm (eps 1e-5), apply_masks, smooth-L1 (beta 1, mean).

Output: Tests/JEPATests/Fixtures/parity.safetensors (weights under encoder./predictor. with the official names,
inputs, masks, intermediate outputs, the loss and every parameter's gradient). FIXTURE_VERSION must match the
Swift test's; bump both when the content changes.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

FIXTURE_VERSION = "parity-v1"
CONFIG = dict(image=16, patch=4, channels=3, dim=32, depth=2, heads=2, pred_dim=16, pred_depth=2, batch=2)


def sincos_2d(grid, dim):
    # token k = i * grid + j: [sin(j w), cos(j w), sin(i w), cos(i w)], w_m = 10000^(-m / (dim / 4))
    q = dim // 4
    w = 1.0 / 10000 ** (np.arange(q, dtype=np.float64) / q)
    i, j = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    i, j = i.reshape(-1, 1) * w, j.reshape(-1, 1) * w
    return torch.from_numpy(np.concatenate([np.sin(j), np.cos(j), np.sin(i), np.cos(i)], axis=1)).float()


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), MLP(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def apply_masks(x, masks):
    return torch.cat([torch.gather(x, 1, m.unsqueeze(-1).repeat(1, 1, x.size(-1))) for m in masks], dim=0)


def repeat_interleave_batch(x, b, repeat):
    n = len(x) // b
    return torch.cat([torch.cat([x[i * b:(i + 1) * b] for _ in range(repeat)], dim=0) for i in range(n)], dim=0)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        g = c["image"] // c["patch"]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(c["channels"], c["dim"], c["patch"], c["patch"])
        self.register_buffer("pos_embed", sincos_2d(g, c["dim"]).unsqueeze(0))
        self.blocks = nn.ModuleList([Block(c["dim"], c["heads"]) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(c["dim"], eps=1e-6)

    def forward(self, x, masks=None):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2) + self.pos_embed
        if masks is not None:
            x = apply_masks(x, masks)
        for b in self.blocks:
            x = b(x)
        return self.norm(x)


class Predictor(nn.Module):
    def __init__(self, c):
        super().__init__()
        g = c["image"] // c["patch"]
        self.predictor_embed = nn.Linear(c["dim"], c["pred_dim"])
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c["pred_dim"]))
        self.register_buffer("predictor_pos_embed", sincos_2d(g, c["pred_dim"]).unsqueeze(0))
        self.predictor_blocks = nn.ModuleList([Block(c["pred_dim"], c["heads"]) for _ in range(c["pred_depth"])])
        self.predictor_norm = nn.LayerNorm(c["pred_dim"], eps=1e-6)
        self.predictor_proj = nn.Linear(c["pred_dim"], c["dim"])

    def forward(self, x, masks_x, masks):
        b = len(x) // len(masks_x)
        x = self.predictor_embed(x)
        pos = self.predictor_pos_embed.repeat(b, 1, 1)
        x = x + apply_masks(pos, masks_x)
        _, kc, _ = x.shape
        pos_embs = repeat_interleave_batch(apply_masks(pos, masks), b, repeat=len(masks_x))
        pred_tokens = self.mask_token.repeat(pos_embs.size(0), pos_embs.size(1), 1) + pos_embs
        x = torch.cat([x.repeat(len(masks), 1, 1), pred_tokens], dim=1)
        for blk in self.predictor_blocks:
            x = blk(x)
        return self.predictor_proj(self.predictor_norm(x)[:, kc:])


def build_models(c):
    """Encoder and predictor with the fixture init; draws from the global torch RNG (seed it first)."""
    enc, pred = Encoder(c), Predictor(c)
    with torch.no_grad():  # official init: trunc_normal(0.02) weights, zero biases, LN 1/0; then perturb norms
        for m in list(enc.modules()) + list(pred.modules()):
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.normal_(m.bias, std=0.02)  # non-zero biases so their gradients are exercised
            if isinstance(m, nn.LayerNorm):
                nn.init.normal_(m.weight, mean=1.0, std=0.1)
                nn.init.normal_(m.bias, std=0.1)
        nn.init.trunc_normal_(pred.mask_token, std=0.02)
        for p in list(enc.parameters()) + list(pred.parameters()):  # std 0.02 gives tiny signals; scale up
            p.mul_(5.0)
    return enc, pred


def main():
    torch.manual_seed(0)
    c = CONFIG
    enc, pred = build_models(c)
    target = Encoder(c)
    target.load_state_dict(enc.state_dict())
    b, n = c["batch"], (c["image"] // c["patch"]) ** 2
    images = torch.randn(b, c["channels"], c["image"], c["image"])
    gen = torch.Generator().manual_seed(1)
    ctx = torch.stack([torch.sort(torch.randperm(n, generator=gen)[:6]).values for _ in range(b)])
    tgts = [torch.stack([torch.sort(torch.randperm(n, generator=gen)[:3]).values for _ in range(b)]) for _ in range(2)]

    with torch.no_grad():
        h = target(images)
        h_norm = F.layer_norm(h, (h.size(-1),))
        tgt = repeat_interleave_batch(apply_masks(h_norm, tgts), b, repeat=1)
    z_ctx = enc(images, [ctx])
    z_ctx.retain_grad()
    z = pred(z_ctx, [ctx], tgts)
    loss = F.smooth_l1_loss(z, tgt)
    loss.backward()

    out = {"input.images": images, "mask.context.0": ctx.float(), "mask.target.0": tgts[0].float(),
           "mask.target.1": tgts[1].float(), "output.target_full": h, "output.target": tgt,
           "output.context": z_ctx.detach(), "output.prediction": z.detach(), "output.loss": loss.detach().reshape(1),
           "grad.context": z_ctx.grad}
    for name, t in enc.state_dict().items():
        out["encoder." + name] = t
    for name, t in pred.state_dict().items():
        out["predictor." + name] = t
    for name, p in enc.named_parameters():
        out["grad.encoder." + name] = p.grad
    for name, p in pred.named_parameters():
        out["grad.predictor." + name] = p.grad
    out = {k: v.detach().float().contiguous() for k, v in out.items()}
    path = os.path.join(os.path.dirname(__file__), "..", "Tests", "JEPATests", "Fixtures", "parity.safetensors")
    save_file(out, path, metadata={"version": FIXTURE_VERSION, "config": json.dumps(c), "torch": torch.__version__})
    print(f"wrote {os.path.normpath(path)}: {len(out)} tensors, {os.path.getsize(path)} bytes, loss {loss.item():.6f}")


if __name__ == "__main__":
    sys.exit(main())
