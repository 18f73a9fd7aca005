#!/usr/bin/env python3
"""Screens named training recipes at a fixed budget and writes one table (standard library only).

    python3 tools/screen_recipes.py --variants tools/recipes.json --steps 300 --seeds 0,1
    python3 tools/screen_recipes.py --only official,patch2 --steps 937 --final   # the test split, at the end
    python3 tools/screen_recipes.py --only official --epochs 5 --curve --protocols last4 --out runs/curves

With --epochs E each variant trains E epochs of --steps-per-epoch steps (the schedules span all E), stopping
after every epoch and resuming (the same bits as one run); --curve probes the checkpoint of every epoch (kept as
OUT/NAME-sSEED-eK) instead of the last only, for learning curves (tools/plot_recipes.py draws them); --reuse
keeps an epoch whose checkpoint folder already exists.

Each variant (a name and its `--set section.key=value` overrides, from a JSON file) is trained with
`ijepa train --steps N` for every seed, then probed under every protocol with `ijepa probe`:
  pooled  the average of the output tokens (the paper's probe feature)
  last4   the pooled outputs of the last 4 blocks, concatenated (the paper's other feature)
  tokens  every output token (a linear probe that may use where things are; raw pixels are their own tokens)
I-JEPA, the random-init encoder and raw pixels are scored alike under each protocol, so each baseline can be
quoted at its best. Unless --final is given, the probes are scored on `--validation` images carved from the
training set (evaluation.validation_samples; the same images for every run) and the test split is never read.
Rows: variant, seed, epoch, steps, training time (the log's clock: steps only), mean loss of the last 50 steps,
then per protocol the probe and k-NN accuracy of the three feature sets, and the I-JEPA encoder's effective rank
and mean per-dimension std (collapse diagnostics). Written to OUT/table.md and OUT/results.jsonl (which also
keeps each run's wall time, startups included: per epoch with --epochs), with the commit and the date.
"""
import argparse
import csv
import datetime
import json
import os
import shutil
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
    ap.add_argument("--steps", type=int, default=300, help="steps per run (without --epochs)")
    ap.add_argument("--epochs", type=int, default=0, help="train this many epochs, stopping after each (0: --steps)")
    ap.add_argument("--steps-per-epoch", type=int, default=937, help="60000 images / batch 64")
    ap.add_argument("--curve", action="store_true", help="with --epochs: probe every epoch's checkpoint")
    ap.add_argument("--reuse", action="store_true", help="with --epochs: keep epoch folders that exist")
    ap.add_argument("--threads", type=int, default=0, help="--threads for train and probe (0: all cores)")
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
    split = "test split" if a.final else f"validation ({a.validation} train images)"
    log = os.path.join(a.out, "screen.log")
    rows = []
    threads = ["--threads", str(a.threads)] if a.threads else []
    for name in names:
        for seed in [int(s) for s in a.seeds.split(",")]:
            folder = os.path.join(a.out, f"{name}-s{seed}")
            train = [a.ijepa, "train", "--out", folder, "--seed", str(seed)] + threads + sets(variants[name])
            if a.epochs:
                snapshots = []  # (epoch, folder, steps, wall seconds)
                for k in range(1, a.epochs + 1):
                    steps, snap = k * a.steps_per_epoch, f"{folder}-e{k}"
                    t0 = time.time()
                    if not (a.reuse and os.path.exists(os.path.join(snap, "checkpoint.safetensors"))):
                        run(train + ["--epochs", str(a.epochs), "--steps", str(steps),
                                     "--resume" if k > 1 else "--overwrite"], log)
                        shutil.rmtree(snap, ignore_errors=True)
                        os.makedirs(snap)
                        for f in ("config.json", "checkpoint.safetensors", "checkpoint.safetensors.json", "log.csv"):
                            shutil.copy(os.path.join(folder, f), snap)
                    snapshots.append((k, snap, steps, time.time() - t0))
                if not a.curve:
                    snapshots = snapshots[-1:]
            else:
                t0 = time.time()
                run(train + ["--overwrite", "--steps", str(a.steps)], log)
                snapshots = [(0, folder, a.steps, time.time() - t0)]
            for epoch, snap, steps, wall in snapshots:
                with open(os.path.join(snap, "log.csv")) as f:
                    log_rows = list(csv.DictReader(f))
                losses = [float(r["loss"]) for r in log_rows]
                row = {"variant": name, "seed": seed, "epoch": epoch, "steps": steps, "trainSeconds": round(wall, 1),
                       "stepSeconds": float(log_rows[-1]["seconds"]),  # the log's own clock: steps only, every life
                       "loss": sum(losses[-50:]) / len(losses[-50:]), "commit": commit, "split": split}
                for p in protocols:
                    common = [f"evaluation.train_samples={a.train_samples}", f"evaluation.test_samples={a.test_samples}",
                              f"evaluation.validation_samples={0 if a.final else a.validation}"]
                    out = run([a.ijepa, "probe", "--out", snap] + threads + sets(common + PROTOCOLS[p]), log)
                    report = json.loads(out.strip().splitlines()[-1])
                    row[p] = {"probe": report["probe"], "knn": report["knn"]}
                    if report.get("features", {}).get("ijepa"):
                        row.setdefault("effectiveRank", report["features"]["ijepa"]["effectiveRank"])
                        row.setdefault("meanStd", report["features"]["ijepa"]["meanStd"])
                rows.append(row)
                with open(os.path.join(a.out, "results.jsonl"), "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{name} seed {seed} epoch {epoch}: " + ", ".join(
                    f"{p} {100 * row[p]['probe']['ijepa']:.1f}/{100 * row[p]['knn']['ijepa']:.1f}" for p in protocols),
                    flush=True)

    head = ["variant", "seed", "epoch", "steps", "train s", "loss"]
    for p in protocols:
        head += [f"{p}: I-JEPA probe / k-NN", "random init", "pixels"]
    head += ["eff. rank", "std"]
    lines = [f"Scored on the {split}; commit {commit}; "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["variant"], str(r["seed"]), str(r["epoch"] or "-"), str(r["steps"]), f"{r['stepSeconds']:.0f}",
                 f"{r['loss']:.4f}"]
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
