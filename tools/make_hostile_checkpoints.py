#!/usr/bin/env python3
"""Writes hostile and broken `torch.save`-style checkpoints for tools/check-bad-inputs.sh (standard library only).

    python3 tools/make_hostile_checkpoints.py OUT_FOLDER

Each file is a small zip archive in torch's layout (`archive/data.pkl`, `archive/byteorder`, `archive/data/0`)
whose pickle is written opcode by opcode (protocol 2, as torch writes it), with one defect each: a pickle that
names `os.system`; a storage larger than its record; a view past its storage; a deflated record that inflates
past its declared size; 10^5-deep nesting; a memo-index bomb; duplicate keys; a central directory that
disagrees with the local header; a truncated archive; a legacy (pre-zip) file. `ok.pth` is the same layout
without a defect (a one-tensor encoder state dict), so the defects, not the layout, are what is refused.
"""
import os
import struct
import sys
import zipfile
import zlib


def uni(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def ints(*values):
    return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"


def tensor(key, numel, offset, size, stride, storage=("torch", "FloatStorage")):
    pid = b"(" + uni("storage") + glob(*storage) + uni(key) + uni("cpu") + b"J" + struct.pack("<i", numel) + b"t"
    return (glob("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"Q" + b"J" + struct.pack("<i", offset)
            + ints(*size) + ints(*stride) + b"\x89" + glob("collections", "OrderedDict") + b")R" + b"t" + b"R")


def state(entries):
    """{'encoder': OrderedDict(entries)} where entries are (name, pickled value)."""
    body = glob("collections", "OrderedDict") + b")R" + b"".join(uni(k) + v + b"s" for k, v in entries)
    return b"\x80\x02}" + uni("encoder") + body + b"s."


def archive(path, pickle, storage=struct.pack("<4f", 1, 2, 3, 4), deflate_pickle=False):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle, zipfile.ZIP_DEFLATED if deflate_pickle else zipfile.ZIP_STORED)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", storage)
        z.writestr("archive/version", "3\n")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731
    weight = ("patch_embed.proj.weight", tensor("0", 4, 0, [4], [1]))
    archive(p("ok.pth"), state([weight]))
    archive(p("global.pth"), state([weight]).replace(glob("collections", "OrderedDict"), glob("os", "system"), 1))
    archive(p("storage.pth"), state([("w", tensor("0", 1000, 0, [1000], [1]))]))
    archive(p("view.pth"), state([("w", tensor("0", 4, 2, [10], [1]))]))
    archive(p("nesting.pth"), b"\x80\x02" + b"(" * 100_000 + b".")
    archive(p("memo.pth"), b"\x80\x02N" + b"r" + struct.pack("<I", 0xFFFFFFFF) + b".")
    archive(p("duplicate.pth"), state([weight, weight]))
    # A deflated data.pkl that inflates to more than its declared size: patch both size fields down to 8.
    archive(p("bomb.pth"), state([weight]) + b"N0" * 50_000 + b".", deflate_pickle=True)
    data = bytearray(open(p("bomb.pth"), "rb").read())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 8)
    struct.pack_into("<I", data, central + 24, 8)
    open(p("bomb.pth"), "wb").write(bytes(data))
    # The central directory names another file than the local header.
    data = bytearray(open(p("ok.pth"), "rb").read())
    local = data.find(b"archive/data.pkl")
    data[local + len("archive/data.p")] = ord("X")
    open(p("mismatch.pth"), "wb").write(bytes(data))
    ok = open(p("ok.pth"), "rb").read()
    open(p("truncated.pth"), "wb").write(ok[: len(ok) // 2])
    # Legacy torch.save: pickle protocol 2 and the magic number 0x1950a86a20f9469cfc6c as a LONG1.
    open(p("legacy.pth"), "wb").write(b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b".")
    print(f"wrote 11 checkpoints to {out}")


if __name__ == "__main__":
    main()
