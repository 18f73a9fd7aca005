#!/usr/bin/env python3
"""Encoder inference in Swift, PyTorch and ONNX Runtime on the same CPU, in one run: latency, throughput, RSS.

    tools/.venv-torch/bin/pip install onnxruntime onnx onnxscript
    tools/.venv-torch/bin/python tools/embed_vs_onnxruntime.py --official /tmp/ijepa-official \
        --swift .build/release/ijepa --threads 1,2 [--cases vit-tiny4-28,vit-s16,vit-h14]

For each case (the architectures of `ijepa bench embed`: vit-tiny4-28 = the main job's encoder, 28 px gray,
patch 4, 6 blocks; vit-s16 and vit-h14 at 224 px) the official `VisionTransformer` (src/models/vision_transformer.py
of the checkout given) is built with its random init and wrapped to return the average-pooled output (the
app's feature). Each engine runs in a subprocess of its own (so its peak RSS is its own):
- Swift: `ijepa bench embed --json` (random weights of the same architecture);
- PyTorch: torch.inference_mode, torch.set_num_threads(N);
- ONNX Runtime: the same module exported with torch.onnx.export (dynamic batch; external data for ViT-H),
  graph optimisation ORT_ENABLE_ALL, intra-op threads N, inter-op threads 1, sequential execution.
Latency: median of batch-1 calls; throughput: images/s at the best of the batches {8, 16, 32} (ViT-H: {8}).
`--rounds R` runs the three engines R times in rotating order (a shared machine's load drifts within minutes)
and reports each engine's medians over the rounds, with the range of the per-round ratios.
Agreement: the PyTorch weights saved as an official checkpoint, embedded by `ijepa embed --checkpoint
--tensors` on the same inputs, against PyTorch's and ONNX Runtime's outputs (max |diff| / max |ref|).
Prints a table of ratios (Swift / other: > 1 means Swift is faster or, for RSS, larger).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial

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


def timings(call, make_input, batches, seconds):
    """Median seconds per call at batch 1, and images/s per throughput batch."""
    out = {}
    for b in [1] + batches:
        x = make_input(b)
        call(x)  # warm-up
        samples, t_end = [], time.time() + seconds
        while len(samples) < 3 or time.time() < t_end:
            t0 = time.perf_counter()
            call(x)
            samples.append(time.perf_counter() - t0)
        out[b] = statistics.median(samples)
    return out


def worker(args):
    """One engine, one case, one thread count, in this process; prints one JSON line."""
    import numpy as np
    import torch
    c = CASES[args.case]
    n = args.worker_threads
    torch.set_num_threads(n)
    shape = lambda b: (b, c["chans"], c["img"], c["img"])  # noqa: E731
    if args.engine == "pytorch":
        m = model(args.official, c)

        def call(x):
            with torch.inference_mode():
                return m(x)
        t = timings(call, lambda b: torch.randn(*shape(b)), c["batches"], args.seconds)
    else:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = n
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
        t = timings(lambda x: sess.run(None, {"images": x}),
                    lambda b: np.random.randn(*shape(b)).astype(np.float32), c["batches"], args.seconds)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"latencyMs": t[1] * 1e3, "throughput": {str(b): b / t[b] for b in c["batches"]}, "rss": rss}))


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
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per batch size")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each engine, in rotating order")
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
    rows = []
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
            del m
            for t in threads:
                runs = {"swift": [], "pytorch": [], "onnxruntime": []}  # per round: (latency ms, img/s, RSS bytes)
                peaks = []
                for r in range(args.rounds):
                    engines = list(runs)
                    for engine in engines[r % 3:] + engines[:r % 3]:
                        if engine == "swift":
                            swift = run_json([args.swift, "bench", "embed", "--json", "--threads", str(t), "--filter",
                                              name, "--exact", "--batches", ",".join(map(str, [1] + c["batches"])),
                                              "--min-seconds", str(args.seconds)])
                            peaks.append(swift[0]["peakGflops"])
                            sw = {row["batch"]: row for row in swift[1:]}
                            runs[engine].append((sw[1]["medianMs"], max(sw[b]["imagesPerSecond"] for b in c["batches"]),
                                                 max(row["peakRSSBytes"] for row in swift[1:])))
                        else:
                            w = run_json([sys.executable, __file__, "--official", args.official, "--engine", engine,
                                          "--case", name, "--worker-threads", str(t), "--onnx", onnx_path,
                                          "--seconds", str(args.seconds)])[0]
                            runs[engine].append((w["latencyMs"], max(w["throughput"].values()), w["rss"]))
                peak = statistics.median(peaks)
                res = {e: (statistics.median(v[0] for v in rs), statistics.median(v[1] for v in rs), max(v[2] for v in rs))
                       for e, rs in runs.items()}
                s_lat, s_thr, s_rss = res["swift"]
                rows.append((name, t, peak, res, agree))
                pct = lambda thr: 100 * thr * flops_per_image(c) / 1e9 / (peak * t)  # noqa: E731
                print(f"{name} {t} thread(s) (peak {peak:.0f} GFLOP/s/core, {args.rounds} round(s)):")
                for e, (lat, thr, rss) in res.items():
                    print(f"  {e:12s} batch 1 {lat:8.1f} ms   best throughput {thr:8.1f} img/s ({pct(thr):4.1f} % of peak)"
                          f"   peak RSS {rss / 2**20:7.0f} MiB")
                for e in ("pytorch", "onnxruntime"):
                    lat_r = [o[0] / sw_[0] for o, sw_ in zip(runs[e], runs["swift"])]
                    thr_r = [sw_[1] / o[1] for o, sw_ in zip(runs[e], runs["swift"])]
                    spread = (f" (rounds: latency {min(lat_r):.2f}-{max(lat_r):.2f}, throughput {min(thr_r):.2f}-"
                              f"{max(thr_r):.2f})" if args.rounds > 1 else "")
                    print(f"  Swift / {e}: latency {res[e][0] / s_lat:.2f}x, throughput {s_thr / res[e][1]:.2f}x, "
                          f"RSS {s_rss / res[e][2]:.2f}{spread}")
                print(json.dumps({"case": name, "threads": t, "peakGflops": peak, "rounds": args.rounds,
                                  "medians": {e: {"latencyMs": v[0], "imagesPerSecond": v[1], "rssBytes": v[2]}
                                              for e, v in res.items()}, "agreement": agree}))
                sys.stdout.flush()


def flops_per_image(c):
    """Forward FLOPs per image, as `ijepa bench` counts them: matmuls and attention."""
    n, d = (c["img"] // c["patch"]) ** 2, c["dim"]
    per_token = c["chans"] * c["patch"] ** 2 * d + c["depth"] * 12 * d * d
    return 2 * per_token * n + c["depth"] * 4 * n * n * d


if __name__ == "__main__":
    main()
