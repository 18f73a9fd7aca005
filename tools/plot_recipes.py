#!/usr/bin/env python3
"""Draws the learning curves of recipes from tools/screen_recipes.py --epochs E --curve into one PNG.

    tools/.venv-torch/bin/pip install matplotlib
    tools/.venv-torch/bin/python tools/plot_recipes.py runs/curves/results.jsonl docs/images/recipes.png --protocol last4

Per variant and seed: the I-JEPA probe and k-NN accuracy after each epoch under one protocol, with the raw
pixels' and the random-init encoder's scores (their best over the protocols in the file) as flat lines. Prints
the same numbers as a markdown table.
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="results.jsonl files")
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("--protocol", default="last4")
    a = ap.parse_args()
    rows = []
    for path in a.results:
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r.get("epoch") and a.protocol in r]
    if not rows:
        raise SystemExit(f"no per-epoch rows with protocol {a.protocol} in {a.results}")
    protocols = [p for p in ("pooled", "last4", "tokens") if p in rows[0]]
    best = {k: max(max(r[p]["probe"][k] for p in protocols if p in r) for r in rows) for k in ("rawPixels", "randomInit")}
    curves = {}
    for r in rows:
        curves.setdefault((r["variant"], r["seed"]), {})[r["epoch"]] = r

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110, sharex=True)
    for ax, metric, title in zip(axes, ("probe", "knn"), ("linear probe", "20-NN")):
        for i, ((variant, seed), by_epoch) in enumerate(sorted(curves.items())):
            epochs = sorted(by_epoch)
            ax.plot(epochs, [100 * by_epoch[e][a.protocol][metric]["ijepa"] for e in epochs], marker="o",
                    color=f"C{sorted({v for v, _ in curves}).index(variant)}", linestyle="-" if seed == 0 else "--",
                    label=f"{variant}, seed {seed}")
        pixels = max(r[p][metric]["rawPixels"] for r in rows for p in protocols if p in r)
        ax.axhline(100 * pixels, color="gray", linestyle=":", label="raw pixels (best protocol)")
        ax.set_title(f"{title} ({a.protocol}), % on {rows[0]['split'].split(' ')[0]}")
        ax.set_xlabel("epoch")
        ax.set_xticks(sorted({e for c in curves.values() for e in c}))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(a.out)

    print(f"| variant | seed | epoch | {a.protocol} probe | 20-NN | loss | eff. rank |")
    print("|---|---|---|---|---|---|---|")
    for (variant, seed), by_epoch in sorted(curves.items()):
        for e in sorted(by_epoch):
            r = by_epoch[e]
            print(f"| {variant} | {seed} | {e} | {100 * r[a.protocol]['probe']['ijepa']:.1f} | "
                  f"{100 * r[a.protocol]['knn']['ijepa']:.1f} | {r['loss']:.4f} | {r.get('effectiveRank', float('nan')):.1f} |")
    print(f"\nraw pixels (best protocol): probe {100 * best['rawPixels']:.1f}; random init: probe {100 * best['randomInit']:.1f}")


if __name__ == "__main__":
    main()
