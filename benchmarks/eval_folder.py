"""Evaluating a folder of photo-sized JPEGs: images/s and peak memory as the folder grows (it should stay flat).

    PYTHONPATH=. .venv/bin/python benchmarks/eval_folder.py --images 2000 --steps 500,1000,2000

Makes (once, in --workdir) a class folder tree of real Fashion-MNIST test images blown up to --photo size on a
black canvas, as JPEGs; exports the shipped model to ONNX; then for each step runs `vit-edge bench --data` on a
list file of that many images in a fresh process and reports: wall time, images/s, the bench process's peak RSS
(it decodes the photos) and the measuring process's (it reads the memory-mapped prepared images), and top-1.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import sys, time
from pathlib import Path
from vit_edge.api import bench
from vit_edge.runtime.measure import peak_rss_mb
started = time.perf_counter()
records = bench([sys.argv[1]], data=sys.argv[2], runs=1, warmup=0, min_seconds=0.0)
r = records[0]
print("RESULT", time.perf_counter() - started, peak_rss_mb(), r.peak_rss_mb, r.top1, r.eval_images, r.status)
"""


def make_photos(root: Path, count: int, photo: tuple[int, int]) -> list[tuple[Path, int]]:
    """`count` JPEGs at `photo` (width, height), the digit-sized image centred on the short side, in class folders."""
    from PIL import Image

    from vit_edge.data.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist

    data = load_fashion_mnist("test")
    rng = np.random.default_rng(0)
    rows = []
    for k in range(count):
        index = k % len(data)
        label = int(data.labels[index])
        folder = root / FASHION_MNIST_CLASSES[label].replace("/", "_")
        path = folder / f"IMG_{k:05d}.jpg"
        rows.append((path, label))
        if path.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        width, height = photo
        side = min(width, height)
        canvas = Image.new("L", (width, height))
        canvas.paste(Image.fromarray(data.images[index]).resize((side, side), Image.Resampling.BICUBIC),
                     ((width - side) // 2, (height - side) // 2))
        noisy = np.asarray(canvas, dtype=np.int16) + rng.integers(-6, 7, size=(height, width), dtype=np.int16)
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).convert("RGB").save(path, quality=90)
    return rows


def run_step(artifact: Path, rows: list[tuple[Path, int]], workdir: Path) -> dict[str, float | str]:
    listing = workdir / f"list-{len(rows)}.txt"
    listing.write_text("".join(f"{path} {label}\n" for path, label in rows))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(artifact), str(listing)], capture_output=True, text=True,
                          env=env, timeout=3600)
    line = next((row for row in proc.stdout.splitlines() if row.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(f"bench failed: {proc.stderr.strip().splitlines()[-1:]}")
    _, wall, parent_mb, child_mb, top1, images, status = line.split()
    return {"images": int(images), "wall_s": float(wall), "ips": int(images) / float(wall),
            "bench_peak_mb": float(parent_mb), "measure_peak_mb": float(child_mb), "top1": float(top1),
            "status": status}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--steps", default="500,1000,2000")
    parser.add_argument("--photo", default="1600x1200", help="WIDTHxHEIGHT of each JPEG")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vit-edge-eval-folder")
    args = parser.parse_args()
    width, height = (int(v) for v in args.photo.split("x"))
    steps = [int(v) for v in args.steps.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    rows = make_photos(args.workdir / "photos", max(args.images, *steps), (width, height))
    print(f"{len(rows)} JPEGs of {width}x{height} in {args.workdir / 'photos'} ({time.perf_counter() - began:.0f} s)")
    artifact = args.workdir / "fmnist-onnx"
    if not (artifact / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "vit_edge.cli", "export", "fmnist-vit-tiny", "--target", "onnx",
                        "--out", str(artifact), "--force"], check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    cpu = next((row.split(":", 1)[1].strip() for row in Path("/proc/cpuinfo").read_text().splitlines()
                if row.startswith("model name")), platform.processor())
    print(f"CPU: {cpu}, {os.cpu_count()} cores\n")
    print("| images | wall s | images/s | bench process peak MB | measuring process peak MB | top-1 % | status |")
    print("|---|---|---|---|---|---|---|")
    results = []
    for step in steps:
        spread = np.linspace(0, len(rows) - 1, step).round().astype(int)
        found = run_step(artifact, [rows[i] for i in spread], args.workdir)
        results.append(found)
        print(f"| {found['images']} | {found['wall_s']:.1f} | {found['ips']:.1f} | {found['bench_peak_mb']:.0f} | "
              f"{found['measure_peak_mb']:.0f} | {found['top1']:.2f} | {found['status']} |", flush=True)
    growth = results[-1]["bench_peak_mb"] - results[0]["bench_peak_mb"]  # type: ignore[operator]
    print(f"\nbench process peak grew {growth:.0f} MB from {steps[0]} to {steps[-1]} images")
    (args.workdir / "eval_folder.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
