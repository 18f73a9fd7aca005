#!/usr/bin/env python3
"""Writes the generated part of the fuzzers' seed corpora (Fuzz/corpus/<target>/), standard library only.

    python3 tools/make_fuzz_seeds.py Fuzz/corpus

PNG: every colour type and bit depth libpng reads (gray 1/2/4/8/16, gray + alpha, RGB, RGBA, palette with and
without tRNS), plain and Adam7-interlaced, odd sizes. IDX: image and label files, plain and gzip. safetensors:
F32 / F16 / BF16 / I64 tensors, metadata, a scalar and an empty tensor. Config: small JSON configurations.
The other seeds are real files: a checkpoint and config of a tiny run (`ijepa train`, see docs/fuzzing.md), the
torch.save fixtures of the tests and the files of tools/make_hostile_checkpoints.py. Deterministic output.
"""
import gzip
import json
import os
import random
import struct
import sys
import zlib

rng = random.Random(0)


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png(width, height, color, depth, interlace=False, palette=None, trns=None):
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    bits = channels * depth

    def rows(w, h):
        stride = (w * bits + 7) // 8
        return b"".join(bytes([rng.randrange(5)]) + bytes(rng.randrange(256) for _ in range(stride)) for _ in range(h))

    if interlace:  # Adam7: seven passes of sub-images (starts and steps per pass)
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        raw = b""
        for x0, y0, dx, dy in passes:
            w, h = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
            if w > 0 and h > 0:
                raw += rows(w, h)
    else:
        raw = rows(width, height)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, int(interlace)))
    if palette is not None:
        out += chunk(b"PLTE", bytes(rng.randrange(256) for _ in range(3 * palette)))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    out += chunk(b"gAMA", struct.pack(">I", 45455))
    return out + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def idx(dims, data):
    return struct.pack(">BBBB", 0, 0, 8, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def safetensors(tensors, metadata=None):
    header, body = {}, b""
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main(out):
    d = os.path.join(out, "png")
    for depth in (1, 2, 4, 8, 16):
        write(d, f"gray{depth}-5x3.png", png(5, 3, 0, depth))
    write(d, "gray16-interlaced-9x7.png", png(9, 7, 0, 16, interlace=True))
    write(d, "gray-alpha8-4x4.png", png(4, 4, 4, 8))
    write(d, "rgb8-3x2.png", png(3, 2, 2, 8))
    write(d, "rgb16-interlaced-10x9.png", png(10, 9, 2, 16, interlace=True))
    write(d, "rgb8-interlaced-11x5.png", png(11, 5, 2, 8, interlace=True))
    write(d, "rgba8-2x2.png", png(2, 2, 6, 8))
    write(d, "rgba16-3x3.png", png(3, 3, 6, 16))
    write(d, "palette4-6x4.png", png(6, 4, 3, 4, palette=16))
    write(d, "palette8-trns-5x5.png", png(5, 5, 3, 8, palette=8, trns=bytes([0, 128, 255])))
    write(d, "gray8-trns-4x3.png", png(4, 3, 0, 8, trns=struct.pack(">H", 7)))

    d = os.path.join(out, "idx")
    images = [rng.randrange(256) for _ in range(2 * 3 * 4)]
    write(d, "images-2x3x4", idx([2, 3, 4], images))
    write(d, "images-2x3x4.gz", gzip.compress(idx([2, 3, 4], images), mtime=0))
    write(d, "labels-5", idx([5], [0, 1, 2, 3, 9]))
    write(d, "labels-5.gz", gzip.compress(idx([5], [0, 1, 2, 3, 9]), mtime=0))
    write(d, "images-1x28x28.gz", gzip.compress(idx([1, 28, 28], [rng.randrange(256) for _ in range(784)]), mtime=0))

    d = os.path.join(out, "safetensors")
    f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)
    write(d, "f32.safetensors", safetensors([("a", "F32", [2, 3], f32(*range(6))), ("b", "F32", [], f32(1.5))]))
    write(d, "f16-bf16.safetensors", safetensors([("h", "F16", [2], struct.pack("<2e", 0.5, -2)),
                                                  ("g", "BF16", [3], b"\x80\x3f\x00\x40\x00\xc0")]))
    write(d, "i64-empty-meta.safetensors", safetensors([("n", "I64", [2], struct.pack("<2q", 3, -4)), ("z", "F32", [0, 4], b"")],
                                                       metadata={"format": "pt", "ijepa.config": "{}"}))

    d = os.path.join(out, "config")
    write(d, "empty.json", b"{}")
    write(d, "sections.json", json.dumps({"data": {"batch_size": 32, "crop_scale": [0.5, 1.0]}, "mask": {"num_pred_masks": 2},
                                          "meta": {"model_name": "vit_small", "depth": 2}, "optimization": {"ema": [0.99, 1.0]},
                                          "evaluation": {"layers": 4, "encoder": "context"}}).encode())
    write(d, "image-folder.json", json.dumps({"data": {"dataset": "image-folder", "image_folder": "/data/train", "channels": 3,
                                                       "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2], "crop_size": 32}}).encode())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Fuzz/corpus")
