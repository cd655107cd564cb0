"""How latency and memory grow with tokens and batch: vit-edge's INT8 beside the runtime's best INT8 peer.

Per input size (default 224, 384, 512 on DeiT-S/16: 197, 577 and 1025 tokens; 512 is the patch-16 neighbour of a
patch-14 model's 518) vit-edge quantizes the model for ONNX Runtime (its --ort-fusions graph, the faster of its two
ONNX files) and OpenVINO, position embeddings interpolated, and the peers quantize the plain graph at the same size:
ORT quantize_dynamic (the fastest ORT peer in latency_vs_peers.py) and NNCF (TRANSFORMER, MIXED). Each file then
runs at batch 1, 4 and 16, every configuration in a fresh process, so its peak memory is its own: p50 latency over
the timed runs, images per second, and the peak resident memory the session added (VmHWM after the runs minus the
resident memory before the session was opened). OpenVINO runs under its default hint (bf16 where the CPU has it),
what users run. The attention share is the fraction of the model's MACs in Q·Kᵀ and attn·V: where it grows, the
quadratic part starts to matter.

    PYTHONPATH=. .venv/bin/python benchmarks/cost_growth.py [--model deit_small_patch16_224]
        [--sizes 224 384 512] [--batches 1 4 16] [--threads 2] [--rounds 2] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure_one(file: Path, target: str, batch: int, threads: int, seconds: float) -> dict[str, Any]:
    """In this (fresh) process: open the file's session at `batch`, warm up, time, report p50 and added memory."""
    import numpy as np

    from vit_edge.core.targets import target as declared
    from vit_edge.runtime.base import SessionOptions, require_runtime, session_class
    from vit_edge.runtime.measure import peak_rss_mb

    runtime = declared(target).runtime.name
    require_runtime(runtime, "timing")  # imported before the baseline: only the session's memory counts
    cls = session_class(runtime)
    before = _resident_mb()
    session = cls(file, SessionOptions(threads=threads, precision_hint=None, batch=batch))  # OpenVINO: its default
    shape = session_input_shape(file, batch)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(2):
        session.run(x)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - started < seconds:
        begin = time.perf_counter()
        session.run(x)
        times.append((time.perf_counter() - begin) * 1e3)
    return {"p50_ms": statistics.median(times), "runs": len(times), "memory_mb": peak_rss_mb() - before}


def _resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def session_input_shape(file: Path, batch: int) -> tuple[int, ...]:
    """NCHW from the file's own input (ONNX or OpenVINO IR), with the batch axis set."""
    if file.suffix == ".onnx":
        import onnx

        dims = onnx.load(str(file), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        return (batch, *(int(d.dim_value) for d in dims[1:]))
    import openvino as ov

    shape = ov.Core().read_model(str(file)).inputs[0].get_partial_shape()
    return (batch, *(int(d.get_length()) for d in list(shape)[1:]))


def build(name: str, size: int, calib_count: int, work: Path) -> list[tuple[str, str, Path]]:
    """(method, target, file) for vit-edge's INT8 and the peers' at input `size`."""
    import int8_vs_peers as peers
    import latency_vs_peers as latency
    import torch

    from vit_edge.api import QuantizeConfig, quantize
    from vit_edge.data.preprocess import preprocess_uint8
    from vit_edge.data.synthetic import smooth_images
    from vit_edge.reading.loaders import load_model

    torch.manual_seed(0)
    loaded = load_model(f"timm:{name}", random_init=True, img_size=size)
    calib = preprocess_uint8(smooth_images(calib_count, size, 3, seed=1), loaded.spec)
    files: list[tuple[str, str, Path]] = []
    for target in ("onnx", "openvino"):
        art = quantize(loaded.model, target, work / f"vit-edge-{target}", QuantizeConfig(calib, calib_size=len(calib)),
                       parity_samples=2, force=True, ort_fusions=target == "onnx")
        files.append(("vit-edge", target, art.path / art.manifest.model_file))
    plain = peers.plain_model(loaded, work)
    files.append(("ORT quantize_dynamic", "onnx", latency.ort_dynamic_peer(plain.files["onnx"], work).file))
    files.append(("NNCF", "openvino", peers.nncf_peer(plain.files["openvino"], calib, work).file))
    return files


def attention_share(name: str, size: int) -> tuple[int, float]:
    """(tokens, the fraction of the plain model's MACs in Q·Kᵀ and attn·V) at input `size`."""
    from vit_edge.reading.loaders import load_model

    cfg = load_model(f"timm:{name}", random_init=True, img_size=size).model.cfg
    tokens, dim, depth = cfg.num_tokens, cfg.embed_dim, cfg.depth
    attention = depth * 2 * tokens * tokens * dim
    linear = depth * (4 * tokens * dim * dim + 2 * tokens * dim * cfg.mlp_hidden_dim)
    return tokens, attention / (attention + linear)


def run_worker(args: argparse.Namespace, file: Path, target: str, batch: int) -> dict[str, Any]:
    """One configuration in a fresh process (its own peak memory), its JSON line read back."""
    command = [sys.executable, __file__, "--worker", str(file), target, str(batch), "--threads", str(args.threads),
               "--seconds", str(args.seconds)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": _pythonpath()},
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:160]}
    return dict(json.loads(lines[-1]))


def _pythonpath() -> str:
    root = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="deit_small_patch16_224")
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 384, 512])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the p50 is their median")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per configuration and round")
    parser.add_argument("--calib", type=int, default=16)
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--worker", nargs=3, metavar=("FILE", "TARGET", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        file, target, batch = args.worker
        print(json.dumps(measure_one(Path(file), target, int(batch), args.threads, args.seconds)))
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="vit-edge-growth-"))
    try:
        rows = [row for size in args.sizes for row in measure_size(args, size, work / str(size))]
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print_table(args, rows)


def measure_size(args: argparse.Namespace, size: int, work: Path) -> list[dict[str, Any]]:
    """Every file at every batch, `args.rounds` interleaved rounds."""
    work.mkdir(parents=True, exist_ok=True)
    files = build(args.model, size, args.calib, work)
    tokens, share = attention_share(args.model, size)
    results: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for batch in args.batches:
            for method, target, file in files:
                results.setdefault((method, target, batch), []).append(run_worker(args, file, target, batch))
        print(f"  {size}: round {round_ + 1}/{args.rounds}", file=sys.stderr)
    rows = []
    for (method, target, batch), measured in results.items():
        good = [m for m in measured if "error" not in m]
        rows.append({"size": size, "tokens": tokens, "attention": share, "method": method, "target": target,
                     "batch": batch, "error": None if good else measured[0]["error"],
                     "p50_ms": statistics.median(m["p50_ms"] for m in good) if good else None,
                     "memory_mb": max(m["memory_mb"] for m in good) if good else None})
    return rows


def print_table(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    from latency_vs_peers import cpu_name

    print(f"\n{args.model}: INT8 p50 ms (images/s) and the peak memory the session added, {args.threads} threads, "
          f"median of {args.rounds} rounds, OpenVINO default hint (CPU: {cpu_name()})")
    print("| input (tokens, attention MACs) | runtime | batch | vit-edge | peer | peer / vit-edge |")
    print("|---|---|---|---|---|---|")
    peer_of = {"onnx": "ORT quantize_dynamic", "openvino": "NNCF"}
    index = {(r["size"], r["method"], r["target"], r["batch"]): r for r in rows}
    for size in args.sizes:
        for target in ("onnx", "openvino"):
            for batch in args.batches:
                ours, theirs = index.get((size, "vit-edge", target, batch)), index.get((size, peer_of[target],
                                                                                        target, batch))
                if ours is None or theirs is None:
                    continue
                ratio = (f"{theirs['p50_ms'] / ours['p50_ms']:.2f}×" if ours["p50_ms"] and theirs["p50_ms"]
                         else "-")
                print(f"| {size} ({ours['tokens']}, {100 * ours['attention']:.0f} %) | {target} | {batch} | "
                      f"{_cell(ours, batch)} | {_cell(theirs, batch)} ({peer_of[target]}) | {ratio} |")


def _cell(row: dict[str, Any], batch: int) -> str:
    if row["error"]:
        return f"failed: {row['error']}"
    return f"{row['p50_ms']:.1f} ms ({1000 * batch / row['p50_ms']:.0f}/s), {row['memory_mb']:.0f} MiB"


if __name__ == "__main__":
    main()
