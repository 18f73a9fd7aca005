#!/usr/bin/env python3
"""Memory over a long run: fits the resident memory logged by `ijepa train` (log.csv, column rss_mib) against
the step, from step FROM (default 1000) to the end, prints the fitted drift as a fraction of the mean, and draws
the curve (one point per 100 steps) when an output PNG is named (needs matplotlib).

    ijepa train --out runs/rss-20k --epochs 22 --steps 20000     # the default model, batch 64: about 70 minutes
                                                                 # (built as tools/run.sh builds it: AVX2 + FMA)
    python3 tools/rss_drift.py runs/rss-20k [docs/images/rss-20k.png] [--from 1000] [--limit 0.01]

Drift = slope of the least-squares line x (last step - FROM) / mean RSS over the same steps. Exits 1 when its
magnitude exceeds --limit (default 1 %).
"""
import argparse
import csv


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("png", nargs="?")
    ap.add_argument("--from", dest="start", type=int, default=1000)
    ap.add_argument("--limit", type=float, default=0.01)
    a = ap.parse_args()
    with open(f"{a.run}/log.csv") as f:
        rows = [(int(r["step"]), float(r["rss_mib"])) for r in csv.DictReader(f)]
    fit = [(s, m) for s, m in rows if s >= a.start]
    if len(fit) < 2:
        raise SystemExit(f"{a.run}/log.csv: fewer than 2 steps from step {a.start} (it has {len(rows)})")
    n = len(fit)
    mx = sum(s for s, _ in fit) / n
    my = sum(m for _, m in fit) / n
    slope = sum((s - mx) * (m - my) for s, m in fit) / sum((s - mx) ** 2 for s, _ in fit)
    span = fit[-1][0] - fit[0][0]
    drift = slope * span / my
    lo, hi = min(m for _, m in fit), max(m for _, m in fit)
    print(f"steps {fit[0][0]}-{fit[-1][0]}: mean RSS {my:.1f} MiB (min {lo:.1f}, max {hi:.1f}), "
          f"slope {slope * 1000:.4f} MiB per 1000 steps, fitted drift {slope * span:+.2f} MiB = {100 * drift:+.3f} % of the mean "
          f"(limit {100 * a.limit:.1f} %)")
    if a.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        pts = [(s, m) for s, m in rows if s % 100 == 0]
        fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
        ax.plot([s for s, _ in pts], [m for _, m in pts], color="#1f4e89", linewidth=1.2, label="resident memory (every 100 steps)")
        ax.plot([fit[0][0], fit[-1][0]], [my + slope * (fit[0][0] - mx), my + slope * (fit[-1][0] - mx)],
                color="#d98c2b", linewidth=1.0, linestyle="--", label=f"least squares from step {a.start}: {100 * drift:+.2f} %")
        ax.set_xlabel("step")
        ax.set_ylabel("RSS (MiB)")
        ax.set_ylim(0, hi * 1.15)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(a.png)
        print(f"wrote {a.png}")
    raise SystemExit(0 if abs(drift) <= a.limit else 1)


if __name__ == "__main__":
    main()
