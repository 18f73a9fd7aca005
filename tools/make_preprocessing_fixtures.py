#!/usr/bin/env python3
"""Writes fixtures for the ImageNet evaluation preprocessing of official checkpoints (Swift:
`Augmentation.applyCentreCrop`, used by `Encoder` for `torch.save` checkpoints).

    python3 -m venv tools/.venv-torch && tools/.venv-torch/bin/pip install torch torchvision pillow safetensors numpy
    tools/.venv-torch/bin/python tools/make_preprocessing_fixtures.py

Draws a few small deterministic PNGs of different sizes and colour types (RGB landscape, gray portrait, RGBA
square, a palette image), and runs torchvision's standard evaluation transform on each, exactly as a PyTorch user
would: `Image.open(f).convert("RGB")`, `transforms.Resize(RESIZE)` (bilinear, antialiased: PIL's resize),
`transforms.CenterCrop(SIZE)`, `ToTensor()`, `Normalize(ImageNet mean, std)`.

Output: Tests/IJEPATests/Fixtures/preprocessing/<name>.png and expected.safetensors with one (3, SIZE,
SIZE) float32 tensor per PNG (named by the file) and metadata "size", "resize", "torchvision".
"""
import json
import os

import numpy as np
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file
from torchvision import transforms

SIZE, RESIZE = 24, 28  # the 224 / 256 ratio, scaled down so the fixtures stay small
OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "IJEPATests", "Fixtures", "preprocessing")


def images():
    rng = np.random.RandomState(7)
    y, x = np.mgrid[0:45, 0:61]
    rgb = np.stack([(x * 4) % 256, (y * 5) % 256, rng.randint(0, 256, x.shape)], axis=-1).astype(np.uint8)
    yield "rgb-61x45", Image.fromarray(rgb, "RGB")
    y, x = np.mgrid[0:53, 0:31]
    gray = ((np.sin(x / 3.0) + np.cos(y / 5.0)) * 60 + 128).astype(np.uint8)
    yield "gray-31x53", Image.fromarray(gray, "L")
    rgba = rng.randint(0, 256, (30, 30, 4)).astype(np.uint8)
    yield "rgba-30x30", Image.fromarray(rgba, "RGBA")
    pal = Image.fromarray(rng.randint(0, 256, (40, 50, 3)).astype(np.uint8), "RGB").quantize(colors=16)
    yield "palette-50x40", pal


def main():
    os.makedirs(OUT, exist_ok=True)
    tf = transforms.Compose([transforms.Resize(RESIZE), transforms.CenterCrop(SIZE), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    expected = {}
    for name, img in images():
        path = os.path.join(OUT, name + ".png")
        img.save(path)
        with Image.open(path) as f:
            expected[name] = tf(f.convert("RGB")).contiguous()
    save_file(expected, os.path.join(OUT, "expected.safetensors"),
              metadata={"size": str(SIZE), "resize": str(RESIZE), "torchvision": torchvision.__version__})
    print(f"wrote {len(expected)} PNGs and expected.safetensors to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
