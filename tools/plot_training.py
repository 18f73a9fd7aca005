#!/usr/bin/env python3
"""Plots a training run's loss curve (and learning rate) from <run>/log.csv into a PNG for docs/.

    tools/.venv-torch/bin/pip install matplotlib
    tools/.venv-torch/bin/python tools/plot_training.py runs/fashion-mnist docs/images/loss.png

Columns of log.csv are described in docs/training.md. The raw per-step loss is drawn faintly, a moving
average (window 25 steps) on top.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run, out = sys.argv[1], sys.argv[2]
    with open(f"{run}/log.csv") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{run}/log.csv has no steps")
    step = [int(r["step"]) for r in rows]
    loss = [float(r["loss"]) for r in rows]
    lr = [float(r["lr"]) for r in rows]
    w = 25
    smooth = [sum(loss[max(0, i - w + 1): i + 1]) / len(loss[max(0, i - w + 1): i + 1]) for i in range(len(loss))]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    ax.plot(step, loss, color="#9bb7d4", linewidth=0.6, label="loss (per step)")
    ax.plot(step, smooth, color="#1f4e89", linewidth=1.6, label=f"loss ({w}-step mean)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("smooth-L1 loss")
    ax.grid(alpha=0.3, which="both")
    ax2 = ax.twinx()
    ax2.plot(step, lr, color="#d98c2b", linewidth=1.0, label="learning rate")
    ax2.set_ylabel("learning rate")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [l.get_label() for l in lines], loc="upper right", fontsize=8)
    ax.set_title(f"I-JEPA training, {run}")
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out} ({len(rows)} steps)")


if __name__ == "__main__":
    main()
