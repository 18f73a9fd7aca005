#!/usr/bin/env python3
"""Writes the torch.save fixtures for the Swift checkpoint reader (Sources/TorchImport).

    git clone https://github.com/facebookresearch/ijepa /tmp/ijepa-official   # read only, never copied
    python3 -m venv tools/.venv-torch && tools/.venv-torch/bin/pip install torch safetensors numpy
    tools/.venv-torch/bin/python tools/make_torch_fixtures.py --official /tmp/ijepa-official

The official code is imported by path (`src.models.vision_transformer`, `src.helper.init_opt`,
`src.masks.utils.apply_masks`, `src.utils.tensors.repeat_interleave_batch`); nothing of it is written out.
It builds a SMALL official encoder (VisionTransformer: img 16, patch 4, in_chans 3, embed_dim 16, depth 2,
heads 2, mlp_ratio 4, qkv_bias, LayerNorm eps 1e-6 as the official vit_* constructors) and predictor
(VisionTransformerPredictor: dim 8, depth 1), initialises them as src/helper.py init_model does, deep-copies
the target encoder, makes AdamW with the official four groups (init_opt), wraps all three networks in
DistributedDataParallel over a one-process gloo group (so the `module.` prefix is real), runs ONE official
training step (schedulers stepped first, smooth-L1 between predictor output and the layer-normed target
features, AdamW step, EMA) on random images and fixed masks, then saves exactly the official `save_dict` of
src/train.py `save_checkpoint` with torch.save. The sizes are smaller than the usual fixtures (embed_dim 16)
so that every fixture plus the expected values stays well under 1 MB.

Output, in Tests/TorchImportTests/Fixtures/:
- official.pth: {'encoder', 'predictor', 'target_encoder', 'opt', 'scaler': None, 'epoch', 'loss',
  'batch_size', 'world_size', 'lr'} as the official training loop writes it;
- encoder-f16.pth, encoder-bf16.pth: {name: v.half()} / {name: v.bfloat16()} of the encoder's state dict;
- views.pth: tensors sharing storages through views: a float32 base, its transpose, a slice with a storage
  offset, a stride-0 expand, a 0-d element, an empty tensor, and a half-precision transpose; plus float16 and
  bfloat16 special bit patterns (subnormals, infinities, quiet and signalling NaNs; torch's own float16 -> float32
  gives NaN payloads that depend on the element's position, vectorised or not, so only NaN-ness is compared);
- expected.safetensors: float32 reference values (contiguous) of every tensor of the four files under
  "<file stem>/<flattened name>" (e.g. "official/encoder.module.pos_embed", "encoder-f16/module.norm.weight"
  holding torch's own float16 -> float32 conversion), plus metadata "version", "torch", "config" (JSON) and
  "scalar.<name>" (Python's repr of epoch, loss, lr, batch_size, world_size: exact when parsed back);
- forward.safetensors: the official modules' own forward passes on three fixed images after the training step
  (torch.inference_mode, fp32): "images" (3, C, H, W), "<net>.tokens" (3, N, D) and "<net>.pooled" (3, D) for
  net = target_encoder and encoder, which the Swift `Encoder` must reproduce from official.pth.
Deterministic (fixed seeds); the zip timestamps and serialization ids inside the .pth files may differ between
runs, the tensors do not.
"""
import argparse
import json
import os
import socket
import struct
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

FIXTURE_VERSION = "torch-v1"
CONFIG = dict(image=16, patch=4, channels=3, dim=16, depth=2, heads=2, pred_dim=8, pred_depth=1, batch=2,
              ipe=2, epochs=2, warmup=1, start_lr=2e-4, ref_lr=1e-3, final_lr=1e-6, wd=0.04, final_wd=0.4,
              ema=[0.996, 1.0], ipe_scale=1.0, seed=0)


def write_safetensors(tensors, metadata, path):
    """Float32 safetensors with sorted names and metadata, so that re-running gives a byte-identical file
    (safetensors' save_file orders the metadata keys at random)."""
    header, blobs, offset = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        data = tensors[name].numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flatten(prefix, value, out):
    """Dot-joined leaves of nested dicts/lists/tuples, tensors only, in iteration order (the Swift naming)."""
    if isinstance(value, torch.Tensor):
        out[prefix] = value
    elif isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            flatten(f"{prefix}.{i}" if prefix else str(i), v, out)


def official_checkpoint(official):
    sys.path.insert(0, official)
    import src.models.vision_transformer as vit
    from functools import partial
    from src.helper import init_opt
    from src.masks.utils import apply_masks
    from src.utils.tensors import repeat_interleave_batch, trunc_normal_
    from torch.nn.parallel import DistributedDataParallel

    c = CONFIG
    torch.manual_seed(c["seed"])
    norm = partial(torch.nn.LayerNorm, eps=1e-6)
    encoder = vit.VisionTransformer(img_size=[c["image"]], patch_size=c["patch"], in_chans=c["channels"],
                                    embed_dim=c["dim"], depth=c["depth"], num_heads=c["heads"], mlp_ratio=4,
                                    qkv_bias=True, norm_layer=norm)
    predictor = vit.vit_predictor(num_patches=encoder.patch_embed.num_patches, embed_dim=c["dim"],
                                  predictor_embed_dim=c["pred_dim"], depth=c["pred_depth"], num_heads=c["heads"])

    def init_weights(m):  # src/helper.py init_model
        if isinstance(m, torch.nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                torch.nn.init.constant_(m.bias, 0)
        elif isinstance(m, torch.nn.LayerNorm):
            torch.nn.init.constant_(m.bias, 0)
            torch.nn.init.constant_(m.weight, 1.0)

    for m in list(encoder.modules()) + list(predictor.modules()):
        init_weights(m)
    import copy
    target_encoder = copy.deepcopy(encoder)
    optimizer, scaler, scheduler, wd_scheduler = init_opt(
        encoder=encoder, predictor=predictor, wd=c["wd"], final_wd=c["final_wd"], start_lr=c["start_lr"],
        ref_lr=c["ref_lr"], final_lr=c["final_lr"], iterations_per_epoch=c["ipe"], warmup=c["warmup"],
        num_epochs=c["epochs"], ipe_scale=c["ipe_scale"], use_bfloat16=False)

    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    encoder = DistributedDataParallel(encoder, static_graph=True)
    predictor = DistributedDataParallel(predictor, static_graph=True)
    target_encoder = DistributedDataParallel(target_encoder)
    for p in target_encoder.parameters():
        p.requires_grad = False
    ipe, epochs = c["ipe"], c["epochs"]
    momentum_scheduler = (c["ema"][0] + i * (c["ema"][1] - c["ema"][0]) / (ipe * epochs * c["ipe_scale"])
                          for i in range(int(ipe * epochs * c["ipe_scale"]) + 1))

    # One official step (src/train.py train_step) on random images with fixed masks.
    B = c["batch"]
    imgs = torch.randn(B, c["channels"], c["image"], c["image"])
    masks_enc = [torch.tensor([[0, 1, 2, 4, 5, 6, 8, 9], [5, 6, 7, 9, 10, 11, 13, 14]])]
    masks_pred = [torch.tensor([[10, 11, 14, 15], [0, 1, 4, 5]]), torch.tensor([[3, 7, 11, 15], [2, 3, 6, 7]])]
    new_lr = scheduler.step()
    wd_scheduler.step()
    with torch.no_grad():
        h = target_encoder(imgs)
        h = F.layer_norm(h, (h.size(-1),))
        h = apply_masks(h, masks_pred)
        h = repeat_interleave_batch(h, B, repeat=len(masks_enc))
    z = predictor(encoder(imgs, masks_enc), masks_enc, masks_pred)
    loss = F.smooth_l1_loss(z, h)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    with torch.no_grad():
        m = next(momentum_scheduler)
        for param_q, param_k in zip(encoder.parameters(), target_encoder.parameters()):
            param_k.data.mul_(m).add_((1. - m) * param_q.detach().data)

    save_dict = {  # src/train.py save_checkpoint, with loss_meter.avg of one step
        'encoder': encoder.state_dict(),
        'predictor': predictor.state_dict(),
        'target_encoder': target_encoder.state_dict(),
        'opt': optimizer.state_dict(),
        'scaler': None if scaler is None else scaler.state_dict(),
        'epoch': 0,
        'loss': float(loss.detach()),
        'batch_size': B,
        'world_size': torch.distributed.get_world_size(),
        'lr': new_lr,
    }
    # The official forward passes the Swift Encoder must reproduce from this file (inference, fp32): both
    # encoders on fixed images, every output token and the average-pooled feature.
    probe = torch.randn(3, c["channels"], c["image"], c["image"])
    with torch.inference_mode():
        forward = {"images": probe}
        for name, net in (("target_encoder", target_encoder.module), ("encoder", encoder.module)):
            tokens = net.eval()(probe)
            forward[f"{name}.tokens"] = tokens
            forward[f"{name}.pooled"] = tokens.mean(dim=1)
    torch.distributed.destroy_process_group()
    return save_dict, encoder.module.state_dict(), forward


SPECIAL_HALF = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x7C00, 0xFC00, 0x7C01, 0x7DFF, 0x7E00,
                0xFE01, 0xFFFF]
SPECIAL_BF16 = [0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x3F80, 0x7F7F, 0x7F80, 0xFF80, 0x7F81, 0x7FC0, 0xFFFF]


def bits(values):
    return torch.tensor([v - 65536 if v >= 32768 else v for v in values], dtype=torch.int16)


def views():
    torch.manual_seed(1)
    base = torch.randn(60)
    grid = base.view(5, 12)
    half = torch.randn(6, 4).half()
    return {
        'base': grid,
        'transposed': grid.t(),                       # strides (1, 12)
        'slice': base[13:33].view(4, 5),              # storage offset 13
        'column': grid[1:4, 7:10],                    # offset 19, strides (12, 1)
        'expanded': base[40:43].expand(4, 3),         # stride 0
        'scalar': base[59],                           # 0-d, offset 59
        'empty': base[10:10].view(0, 3),              # no elements
        'half_t': half.t(),                           # float16, strides (1, 4)
        'half_special': bits(SPECIAL_HALF).view(torch.float16),      # zeros, subnormals, inf, quiet and signalling NaN
        'bf16_special': bits(SPECIAL_BF16).view(torch.bfloat16),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True, help="checkout of facebookresearch/ijepa (imported by path)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests",
                                                  "TorchImportTests", "Fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    save_dict, encoder_sd, forward = official_checkpoint(os.path.abspath(args.official))
    write_safetensors({k: v.contiguous() for k, v in forward.items()}, {"version": FIXTURE_VERSION, "torch": torch.__version__},
                      os.path.join(args.out, "forward.safetensors"))
    files = {
        'official': save_dict,
        'encoder-f16': {k: v.half() for k, v in encoder_sd.items()},
        'encoder-bf16': {k: v.bfloat16() for k, v in encoder_sd.items()},
        'views': views(),
    }
    expected = {}
    for stem, obj in files.items():
        torch.save(obj, os.path.join(args.out, stem + ".pth"))
        flat = {}
        flatten("", obj, flat)
        for name, t in flat.items():
            expected[f"{stem}/{name}"] = t.detach().float().contiguous().clone()
    scalars = {k: save_dict[k] for k in ('epoch', 'loss', 'lr', 'batch_size', 'world_size')}
    metadata = {"version": FIXTURE_VERSION, "torch": torch.__version__, "config": json.dumps(CONFIG, sort_keys=True)}
    metadata.update({f"scalar.{k}": repr(v) for k, v in scalars.items()})
    write_safetensors(expected, metadata, os.path.join(args.out, "expected.safetensors"))
    check = load_file(os.path.join(args.out, "expected.safetensors"))
    assert len(check) == len(expected)
    for k, v in expected.items():
        torch.testing.assert_close(check[k], v, rtol=0, atol=0, equal_nan=True)
    total = 0
    for f in sorted(os.listdir(args.out)):
        size = os.path.getsize(os.path.join(args.out, f))
        total += size
        print(f"{f}: {size} bytes")
    print(f"total {total} bytes, {len(expected)} expected tensors, scalars {scalars}")


if __name__ == "__main__":
    main()
