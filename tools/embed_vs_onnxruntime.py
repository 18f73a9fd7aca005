#!/usr/bin/env python3
"""Encoder inference in Swift, PyTorch and ONNX Runtime on the same CPU, in one run: latency, throughput, RSS.

    tools/.venv-torch/bin/pip install onnxruntime onnx onnxscript
    tools/.venv-torch/bin/python tools/embed_vs_onnxruntime.py --official /tmp/ijepa-official \
        --swift .build/release/ijepa --threads 1,2 [--cases vit-tiny4-28,vit-s16,vit-h14]

For each case (the architectures of `ijepa bench embed`: vit-tiny4-28 = the main job's encoder, 28 px gray,
patch 4, 6 blocks; vit-s16 and vit-h14 at 224 px) the official `VisionTransformer` (src/models/vision_transformer.py
of the checkout given) is built with its random init and wrapped to return the average-pooled output (the
app's feature). Each engine runs in a persistent worker process of its own (its peak RSS is its own: VmHWM, the
process's largest resident set since its start, weights and runtime included):
- Swift: `ijepa bench embed --serve` (random weights of the same architecture);
- PyTorch: torch.inference_mode, torch.set_num_threads(N);
- ONNX Runtime: the same module exported with torch.onnx.export (dynamic batch; external data for ViT-H),
  graph optimisation ORT_ENABLE_ALL, intra-op threads N, inter-op threads 1, sequential execution (numpy only:
  its worker does not import torch).
Each worker warms up every batch, then the harness alternates the engines call by call: a round is one call of
each engine on the same batch size, in rotating order, so that the shared machine's drift (its speed moves
20-40 % within minutes) hits all three alike; each call starts after `--gap` idle seconds, so that the previous
engine's spinning pool threads do not take a core from it. `--rounds R` rounds per batch size. Latency: the
median of the batch-1 calls; throughput: images/s at the best of the batches {8, 16, 32} (ViT-H: {8}) by median
call time. The ratios are medians of the per-round ratios (each round's calls ran within seconds of each
other), with their range, and beside them the ratios of the engines' median times (% of peak for both: the forward
FLOPs over the probe's peak, `bench peak`, run before and after each thread count).
Agreement: the PyTorch weights saved as an official checkpoint, embedded by `ijepa embed --checkpoint
--tensors` on the same inputs, against PyTorch's and ONNX Runtime's outputs (max |diff| / max |ref|).
Prints a table of ratios (Swift / other: > 1 means Swift is faster or, for RSS, larger).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial

from peak_rss import peak_rss

CASES = {"vit-tiny4-28": dict(img=28, patch=4, chans=1, dim=192, depth=6, heads=3, batches=[8, 16, 32]),
         "vit-s16": dict(img=224, patch=16, chans=3, dim=384, depth=12, heads=6, batches=[8, 16, 32]),
         "vit-h14": dict(img=224, patch=14, chans=3, dim=1280, depth=32, heads=16, batches=[8])}


def model(official, c):
    import torch
    sys.path.insert(0, os.path.abspath(official))
    import src.models.vision_transformer as vt

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = vt.VisionTransformer(img_size=[c["img"]], patch_size=c["patch"], in_chans=c["chans"],
                                                embed_dim=c["dim"], depth=c["depth"], num_heads=c["heads"],
                                                mlp_ratio=4, qkv_bias=True,
                                                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))

        def forward(self, x):
            return self.encoder(x).mean(dim=1)

    torch.manual_seed(0)
    return Pooled().eval()


def emit(obj):
    print(json.dumps(obj), flush=True)


def serve(call, inputs):
    """Warm up each batch, say ready, then time one call per batch size read from stdin (the Swift worker's
    protocol: `ijepa bench embed --serve`)."""
    for x in inputs.values():
        call(x)
    emit({"ready": True, "peakRSSBytes": peak_rss()})
    for line in sys.stdin:
        if not line.strip():
            continue
        b = int(line)
        t0 = time.perf_counter()
        call(inputs[b])
        emit({"batch": b, "seconds": time.perf_counter() - t0, "peakRSSBytes": peak_rss()})


def worker(args):
    """One engine, one case, one thread count, in this process, serving timed calls."""
    import numpy as np
    c = CASES[args.case]
    n = args.worker_threads
    shape = lambda b: (b, c["chans"], c["img"], c["img"])  # noqa: E731
    batches = [1] + c["batches"]
    if args.engine == "pytorch":
        import torch
        torch.set_num_threads(n)
        m = model(args.official, c)

        def call(x):
            with torch.inference_mode():
                return m(x)
        torch.manual_seed(1)
        serve(call, {b: torch.randn(*shape(b)) for b in batches})
    else:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = n
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(1)
        serve(lambda x: sess.run(None, {"images": x}),
              {b: rng.standard_normal(shape(b), dtype=np.float32) for b in batches})


class Worker:
    """A serving engine process: `call(b)` times one call at batch b inside it (seconds), `rss` its peak RSS."""

    def __init__(self, name, cmd):
        self.name, self.cmd = name, cmd
        # stderr into a file, not a pipe: a worker's warnings could fill a pipe nobody reads until it fails.
        self.err = tempfile.TemporaryFile(mode="w+")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                  text=True, bufsize=1)

    def stderr(self):
        self.err.seek(0)
        return self.err.read()[-3000:]

    def reply(self):
        while True:
            line = self.p.stdout.readline()
            if not line:
                self.p.wait()
                sys.exit(f"{self.name} worker stopped ({self.p.returncode}): {' '.join(self.cmd)}\n"
                         f"{self.stderr()}")
            if line.startswith("{"):
                r = json.loads(line)
                self.rss = r["peakRSSBytes"]
                return r

    def call(self, b):
        self.p.stdin.write(f"{b}\n")
        self.p.stdin.flush()
        r = self.reply()
        assert r["batch"] == b, (self.name, r)
        return r["seconds"]

    def close(self):
        self.p.stdin.close()
        if self.p.wait() != 0:
            sys.exit(f"{self.name} worker failed ({self.p.returncode}):\n{self.stderr()}")


def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True, help="checkout of facebookresearch/ijepa")
    ap.add_argument("--swift", default=".build/release/ijepa")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--cases", default="vit-tiny4-28,vit-s16")
    ap.add_argument("--rounds", type=int, default=7, help="rounds per batch size (one call of each engine)")
    ap.add_argument("--gap", type=float, default=0.5,
                    help="idle seconds before each call: ONNX Runtime's and OpenMP's pool threads spin after a call, "
                         "and without a pause they took a core from the next engine (Swift at 2 threads, batch 1: "
                         "93.5 ms in the harness, 59.7 ms alone)")
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--onnx", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine:
        return worker(args)

    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file
    threads = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            c = CASES[name]
            m = model(args.official, c)
            # ONNX export of the same module (external data: ViT-H is over protobuf's 2 GB).
            onnx_path = os.path.join(tmp, f"{name}.onnx")
            x = torch.randn(2, c["chans"], c["img"], c["img"])
            torch.onnx.export(m, (x,), onnx_path, input_names=["images"], output_names=["features"],
                              dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}}, opset_version=17,
                              external_data=c["dim"] >= 1024, dynamo=False)
            # Agreement on the same inputs and weights: PyTorch, ONNX Runtime and Swift (official checkpoint layout).
            with torch.inference_mode():
                ref = m(x).numpy()
            import onnxruntime as ort
            onnx_out = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
            pth = os.path.join(tmp, f"{name}.pth")
            torch.save({"target_encoder": {"module." + k: v for k, v in m.encoder.state_dict().items()}}, pth)
            save_file({"images": x.contiguous()}, os.path.join(tmp, "in.safetensors"))
            subprocess.run([args.swift, "embed", "--checkpoint", pth, "--heads", str(c["heads"]), "--tensors",
                            os.path.join(tmp, "in.safetensors"), "--output", os.path.join(tmp, "out.safetensors")],
                           check=True, capture_output=True)
            swift_out = load_file(os.path.join(tmp, "out.safetensors"))["features"].numpy()
            rel = lambda a, b: float(np.abs(a - b).max() / np.abs(b).max())  # noqa: E731
            agree = (rel(swift_out, ref), rel(swift_out, onnx_out), rel(onnx_out, ref))
            print(f"{name}: max|diff|/max|ref| Swift-PyTorch {agree[0]:.1e}, Swift-ORT {agree[1]:.1e}, ORT-PyTorch {agree[2]:.1e}")
            del m, ref, onnx_out
            import gc
            gc.collect()
            for t in threads:
                peaks = [run_json([args.swift, "bench", "peak", "--json", "--threads", str(t)])[0]["peakGflops"]]
                batches = [1] + c["batches"]
                workers = {"swift": Worker("swift", [args.swift, "bench", "embed", "--serve", "--filter", name, "--exact",
                                                     "--threads", str(t), "--batches", ",".join(map(str, batches))])}
                for e in ("pytorch", "onnxruntime"):
                    workers[e] = Worker(e, [sys.executable, __file__, "--official", args.official, "--engine", e,
                                            "--case", name, "--worker-threads", str(t), "--onnx", onnx_path])
                for w in workers.values():
                    w.reply()  # ready: loaded and warmed up
                times = {e: {b: [] for b in batches} for e in workers}  # seconds per call, round by round
                engines = list(workers)
                for b in batches:
                    for r in range(args.rounds):
                        for e in engines[r % 3:] + engines[:r % 3]:
                            time.sleep(args.gap)  # the last engine's pool threads stop spinning
                            times[e][b].append(workers[e].call(b))
                for w in workers.values():
                    w.close()
                peaks.append(run_json([args.swift, "bench", "peak", "--json", "--threads", str(t)])[0]["peakGflops"])
                peak = statistics.median(peaks)
                med = {e: {b: statistics.median(v) for b, v in tb.items()} for e, tb in times.items()}
                best = {e: max(c["batches"], key=lambda b: b / med[e][b]) for e in workers}  # each at its best batch
                res = {e: (med[e][1] * 1e3, best[e] / med[e][best[e]], workers[e].rss) for e in workers}
                s_lat, s_thr, s_rss = res["swift"]
                pct = lambda thr: 100 * thr * flops_per_image(c) / 1e9 / (peak * t)  # noqa: E731
                print(f"{name} {t} thread(s) (peak {peak:.0f} GFLOP/s/core, {args.rounds} rounds per batch, "
                      f"engines alternating call by call):")
                for e, (lat, thr, rss) in res.items():
                    print(f"  {e:12s} batch 1 {lat:8.1f} ms ({pct(1e3 / lat):4.1f} % of peak)   best throughput {thr:8.3g} "
                          f"img/s at batch {best[e]:2d} ({pct(thr):4.1f} % of peak)   peak RSS {rss / 2**20:7.0f} MiB")
                ratios = {}
                for e in ("pytorch", "onnxruntime"):
                    lat_r = [o / sw for o, sw in zip(times[e][1], times["swift"][1])]
                    thr_r = [(best["swift"] / sw) / (best[e] / o) for o, sw in zip(times[e][best[e]], times["swift"][best["swift"]])]
                    # The medians' ratios as a second estimate: with few rounds the median per-round ratio can
                    # differ from them by more than 0.1 (vit-h14, 5 rounds: 0.96x against 1.10x).
                    ratios[e] = {"latency": statistics.median(lat_r), "throughput": statistics.median(thr_r),
                                 "latencyOfMedians": res[e][0] / s_lat, "throughputOfMedians": s_thr / res[e][1],
                                 "rss": s_rss / res[e][2]}
                    print(f"  Swift / {e}: latency {ratios[e]['latency']:.2f}x (rounds {min(lat_r):.2f}-{max(lat_r):.2f}; "
                          f"medians {ratios[e]['latencyOfMedians']:.2f}x), throughput {ratios[e]['throughput']:.2f}x "
                          f"(rounds {min(thr_r):.2f}-{max(thr_r):.2f}; medians {ratios[e]['throughputOfMedians']:.2f}x), "
                          f"RSS {ratios[e]['rss']:.2f}")
                print(json.dumps({"case": name, "threads": t, "peakGflops": peak, "rounds": args.rounds,
                                  "medians": {e: {"latencyMs": v[0], "imagesPerSecond": v[1], "bestBatch": best[e],
                                                  "latencyPercentOfPeak": pct(1e3 / v[0]),
                                                  "throughputPercentOfPeak": pct(v[1]),
                                                  "rssBytes": v[2]} for e, v in res.items()},
                                  "ratios": ratios, "agreement": agree}))
                sys.stdout.flush()


def flops_per_image(c):
    """Forward FLOPs per image, as `ijepa bench` counts them: matmuls and attention."""
    n, d = (c["img"] // c["patch"]) ** 2, c["dim"]
    per_token = c["chans"] * c["patch"] ** 2 * d + c["depth"] * 12 * d * d
    return 2 * per_token * n + c["depth"] * 4 * n * n * d


if __name__ == "__main__":
    main()
