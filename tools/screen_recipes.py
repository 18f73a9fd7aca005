#!/usr/bin/env python3
"""Screens named training recipes at a fixed budget and writes one table (standard library only).

    python3 tools/screen_recipes.py --variants tools/recipes.json --steps 300 --seeds 0,1
    python3 tools/screen_recipes.py --only official,patch2 --steps 937 --final   # the test split, at the end

Each variant (a name and its `--set section.key=value` overrides, from a JSON file) is trained with
`ijepa train --steps N` for every seed, then probed under every protocol with `ijepa probe`:
  pooled  the average of the output tokens (the paper's probe feature)
  last4   the pooled outputs of the last 4 blocks, concatenated (the paper's other feature)
  tokens  every output token (a linear probe that may use where things are; raw pixels are their own tokens)
I-JEPA, the random-init encoder and raw pixels are scored alike under each protocol, so each baseline can be
quoted at its best. Unless --final is given, the probes are scored on `--validation` images carved from the
training set (evaluation.validation_samples; the same images for every run) and the test split is never read.
Rows: variant, seed, training wall time, mean loss of the last 50 steps, then per protocol the probe and k-NN
accuracy of the three feature sets, and the I-JEPA encoder's effective rank and mean per-dimension std
(collapse diagnostics). Written to OUT/table.md and OUT/results.jsonl, with the commit and the date.
"""
import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
import time

PROTOCOLS = {
    "pooled": [],
    "last4": ["evaluation.layers=4"],
    "tokens": ["evaluation.pooling=\"none\""],
}


def run(cmd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        f.write(p.stdout)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-2000:]}")
    return p.stdout


def sets(pairs):
    out = []
    for s in pairs:
        out += ["--set", s]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ijepa", default=".build/release/ijepa")
    ap.add_argument("--variants", default="tools/recipes.json")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--protocols", default="pooled,last4,tokens")
    ap.add_argument("--validation", type=int, default=10000)
    ap.add_argument("--train-samples", type=int, default=20000)
    ap.add_argument("--test-samples", type=int, default=0, help="probe evaluation subset (0 = all)")
    ap.add_argument("--final", action="store_true", help="score on the test split (the final table only)")
    ap.add_argument("--out", default="runs/screen")
    a = ap.parse_args()

    with open(a.variants) as f:
        variants = json.load(f)
    names = [n for n in variants if not a.only or n in a.only.split(",")]
    if not names:
        sys.exit(f"no variant of {a.variants} matches --only {a.only}")
    protocols = a.protocols.split(",")
    for p in protocols:
        if p not in PROTOCOLS:
            sys.exit(f"unknown protocol {p} ({', '.join(PROTOCOLS)})")
    os.makedirs(a.out, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE, text=True).stdout.strip()
    split = "test" if a.final else f"validation ({a.validation} train images)"
    log = os.path.join(a.out, "screen.log")
    rows = []
    for name in names:
        for seed in [int(s) for s in a.seeds.split(",")]:
            folder = os.path.join(a.out, f"{name}-s{seed}")
            t0 = time.time()
            run([a.ijepa, "train", "--out", folder, "--overwrite", "--steps", str(a.steps)]
                + sets(variants[name] + [f"meta.seed={seed}"]), log)
            wall = time.time() - t0
            with open(os.path.join(folder, "log.csv")) as f:
                losses = [float(r["loss"]) for r in csv.DictReader(f)]
            row = {"variant": name, "seed": seed, "steps": a.steps, "trainSeconds": round(wall, 1),
                   "loss": sum(losses[-50:]) / len(losses[-50:]), "commit": commit, "split": split}
            for p in protocols:
                common = [f"evaluation.train_samples={a.train_samples}", f"evaluation.test_samples={a.test_samples}",
                          f"evaluation.validation_samples={0 if a.final else a.validation}"]
                out = run([a.ijepa, "probe", "--out", folder] + sets(common + PROTOCOLS[p]), log)
                report = json.loads(out.strip().splitlines()[-1])
                row[p] = {"probe": report["probe"], "knn": report["knn"]}
                if report.get("features", {}).get("ijepa"):
                    row.setdefault("effectiveRank", report["features"]["ijepa"]["effectiveRank"])
                    row.setdefault("meanStd", report["features"]["ijepa"]["meanStd"])
            rows.append(row)
            with open(os.path.join(a.out, "results.jsonl"), "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{name} seed {seed}: " + ", ".join(
                f"{p} {100 * row[p]['probe']['ijepa']:.1f}/{100 * row[p]['knn']['ijepa']:.1f}" for p in protocols), flush=True)

    head = ["variant", "seed", "train s", "loss"]
    for p in protocols:
        head += [f"{p}: I-JEPA probe / k-NN", "random init", "pixels"]
    head += ["eff. rank", "std"]
    lines = [f"Scored on the {split}; {a.steps} steps; commit {commit}; "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["variant"], str(r["seed"]), f"{r['trainSeconds']:.0f}", f"{r['loss']:.4f}"]
        for p in protocols:
            cells += [f"{100 * r[p]['probe'][k]:.1f} / {100 * r[p]['knn'][k]:.1f}" for k in ("ijepa", "randomInit", "rawPixels")]
        cells += [f"{r.get('effectiveRank', float('nan')):.1f}", f"{r.get('meanStd', float('nan')):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(table)
    print("\n" + table)


if __name__ == "__main__":
    main()
