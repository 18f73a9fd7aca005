#!/usr/bin/env python3
"""Checks that our checkpoints and the official I-JEPA modules read each other's state dicts.

    python3 -m venv tools/.venv-torch && tools/.venv-torch/bin/pip install torch safetensors numpy
    git clone <facebookresearch/ijepa> /tmp/ijepa-official        # any checkout; never committed here
    tools/.venv-torch/bin/python tools/check_official_checkpoint.py --official /tmp/ijepa-official \
        --run runs/fashion-mnist --ijepa .build/release/ijepa

1. Builds the official `VisionTransformer` (encoder and target encoder) and `VisionTransformerPredictor` from
   `src/models/vision_transformer.py` of that checkout, with the architecture of the run's configuration (the
   one stored in the checkpoint), LayerNorm eps 1e-6 and qkv bias as the official `vit_*` / `vit_predictor`
   constructors set them.
2. Splits our checkpoint by its `encoder.`, `predictor.` and `target_encoder.` prefixes only (no reshape, no
   rename) and loads each part with `load_state_dict(strict=True)`.
3. Runs the official target encoder on the test split of the run's data set (Fashion-MNIST IDX files,
   normalised with the configuration's mean / std: the evaluation transform, which at 28 px is the identity
   resize) and compares its average-pooled output with `ijepa embed` of the same checkpoint:
   max |diff| / max |ref|.
4. Saves the official modules' own state dicts (prefixed, as a bare safetensors state dict) and embeds with
   them through `ijepa embed --checkpoint ... --config ...`: the features must equal step 3's bit for bit.
Exits non-zero if any step fails.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from functools import partial

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file, save_file

PRESETS = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12),
           "vit_large": (1024, 24, 16), "vit_huge": (1280, 32, 16)}


def architecture(cfg):
    dim, depth, heads = PRESETS[cfg["meta"]["model_name"]]
    m = cfg["meta"]
    return dict(img=cfg["data"]["crop_size"], patch=cfg["mask"]["patch_size"], chans=cfg["data"]["channels"],
                dim=m["embed_dim"] or dim, depth=m["depth"] or depth, heads=m["num_heads"] or heads,
                pred_dim=m["pred_emb_dim"], pred_depth=m["pred_depth"])


def official_modules(vt, a):
    norm = partial(nn.LayerNorm, eps=1e-6)

    def encoder():
        return vt.VisionTransformer(img_size=[a["img"]], patch_size=a["patch"], in_chans=a["chans"],
                                    embed_dim=a["dim"], depth=a["depth"], num_heads=a["heads"], mlp_ratio=4,
                                    qkv_bias=True, norm_layer=norm)
    enc = encoder()
    pred = vt.VisionTransformerPredictor(num_patches=enc.patch_embed.num_patches, embed_dim=a["dim"],
                                         predictor_embed_dim=a["pred_dim"], depth=a["pred_depth"],
                                         num_heads=a["heads"], mlp_ratio=4, qkv_bias=True, norm_layer=norm)
    return {"encoder": enc, "predictor": pred, "target_encoder": encoder()}


def read_idx_images(path):
    with (gzip.open(path) if path.endswith(".gz") else open(path, "rb")) as f:
        data = f.read()
    n, h, w = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, h, w)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True, help="checkout of facebookresearch/ijepa")
    ap.add_argument("--run", default="runs/fashion-mnist", help="run folder written by `ijepa train`")
    ap.add_argument("--ijepa", default=".build/release/ijepa")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.official))
    import src.models.vision_transformer as vt  # the official module

    ckpt = os.path.join(args.run, "checkpoint.safetensors")
    with safe_open(ckpt, "pt") as f:
        state = json.loads(f.metadata()["ijepa.state"])
    cfg = json.loads(state["config"])
    a = architecture(cfg)
    tensors = load_file(ckpt)
    modules = official_modules(vt, a)
    failures = 0
    print(f"{ckpt}: format {state['version']}, step {state['stepsDone']}, architecture {a}")
    for prefix, module in modules.items():
        part = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        result = module.load_state_dict(part, strict=True)  # raises on any missing, unexpected or reshaped key
        print(f"  official {type(module).__name__} <- '{prefix}.*': {len(part)} tensors, strict=True: {result}")

    # 3. The official target encoder against `ijepa embed` on the test split.
    if cfg["data"]["dataset"] not in ("fashion-mnist", "idx"):
        sys.exit("this check reads IDX data sets only")
    root = cfg["data"]["root_path"]
    images = next(read_idx_images(os.path.join(root, n)) for n in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")
                  if os.path.exists(os.path.join(root, n)))
    if images.shape[1] != a["img"] or images.shape[2] != a["img"]:
        sys.exit("this check needs images of the model's input size (no resize in Python)")
    mean = (cfg["data"]["mean"] or [0.2860])[0]
    std = (cfg["data"]["std"] or [0.3530])[0]
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - mean) / std
    x = x.unsqueeze(1)
    enc = modules["encoder" if cfg["evaluation"]["encoder"] == "context" else "target_encoder"].eval()
    with torch.inference_mode():
        ref = torch.cat([enc(x[i:i + 500]).mean(dim=1) for i in range(0, len(x), 500)]).numpy()

    with tempfile.TemporaryDirectory() as tmp:
        ours = os.path.join(tmp, "ours.safetensors")
        subprocess.run([args.ijepa, "embed", "--out", args.run, "--split", "test", "--output", ours], check=True)
        swift = load_file(ours)["features"].numpy()
        rel = float(np.abs(swift - ref).max() / np.abs(ref).max())
        ok = swift.shape == ref.shape and rel <= 1e-5
        failures += not ok
        print(f"  official target encoder vs `ijepa embed` on {len(x)} test images: features {swift.shape}, "
              f"max|diff|/max|ref| = {rel:.2e} ({'ok' if ok else 'FAILED'}, limit 1e-5)")

        # 4. The official modules' own state dicts, loaded by us.
        bare = os.path.join(tmp, "official-state-dict.safetensors")
        save_file({f"{p}.{k}": v.contiguous() for p, m in modules.items() for k, v in m.state_dict().items()}, bare)
        config = os.path.join(tmp, "config.json")
        with open(config, "w") as f:
            f.write(state["config"])
        again = os.path.join(tmp, "again.safetensors")
        subprocess.run([args.ijepa, "embed", "--checkpoint", bare, "--config", config, "--split", "test",
                        "--output", again], check=True)
        same = np.array_equal(load_file(again)["features"].numpy(), swift)
        failures += not same
        print(f"  official modules' state_dict() -> `ijepa embed --checkpoint`: features "
              f"{'identical' if same else 'DIFFERENT'} to the checkpoint's")
    print("all checks passed" if failures == 0 else f"{failures} check(s) FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
