#!/usr/bin/env python3
"""Writes a small real second data set as an IDX folder, for transfer evaluation (`ijepa probe --data-root`).

    python3 -m venv tools/.venv-torch && tools/.venv-torch/bin/pip install scikit-learn numpy
    tools/.venv-torch/bin/python tools/make_digits_idx.py data/digits-idx
    .build/release/ijepa probe --out runs/fashion-mnist --data-root data/digits-idx

The images are the handwritten digits that scikit-learn ships inside its package (`sklearn.datasets.load_digits`:
the test part of the UCI "Optical Recognition of Handwritten Digits" data set, Alpaydin and Kaynak 1998; 1797
images of 8 x 8 pixels with 17 grey levels, 10 classes), so no download is needed. Grey levels 0..16 become
round(v * 255 / 16). A fixed shuffle (numpy seed 0) puts 1347 images in the train split and 450 in the test
split. Written: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
t10k-labels-idx1-ubyte.gz (the MNIST layout) and classes.txt. The model's evaluation transform resizes the
8 x 8 images to its own input size.
"""
import gzip
import os
import struct
import sys

import numpy as np
from sklearn.datasets import load_digits


def write_idx(path, array):
    dims = array.shape
    header = struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # mtime 0: the same bytes on every run
        f.write(header + array.astype(np.uint8).tobytes())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "data/digits-idx"
    digits = load_digits()
    images = np.rint(digits.images * 255.0 / 16.0).astype(np.uint8)  # (1797, 8, 8)
    labels = digits.target.astype(np.uint8)
    order = np.random.RandomState(0).permutation(len(images))
    cut = 1347
    os.makedirs(out, exist_ok=True)
    for prefix, idx in (("train", order[:cut]), ("t10k", order[cut:])):
        write_idx(os.path.join(out, f"{prefix}-images-idx3-ubyte.gz"), images[idx])
        write_idx(os.path.join(out, f"{prefix}-labels-idx1-ubyte.gz"), labels[idx])
    with open(os.path.join(out, "classes.txt"), "w") as f:
        f.write("".join(f"{d}\n" for d in range(10)))
    print(f"wrote {out}: {cut} train and {len(images) - cut} test images of 8x8, 10 classes")


if __name__ == "__main__":
    main()
