"""vit-edge INT8 against each runtime's own INT8 tool: agreement with FP32 and latency, in one run.

Methods, per model (timm ViT-Tiny and DeiT-Small, random init: this measures agreement with FP32, not accuracy):
- vit-edge   `quantize(...)` per target (onnx, openvino, tflite; a target that cannot do INT8 yet is a row);
- ORT        onnxruntime.quantization.quantize_static on the plain FP32 ONNX (quant_pre_process first, QDQ,
             per-channel S8 weights, MinMax; U8 activations as ORT recommends for x86 with VNNI, --ort-activation);
- NNCF       nncf.quantize(model_type=TRANSFORMER, preset=MIXED) on the plain FP32 OpenVINO IR;
- PT2E       litert-torch's PT2EQuantizer (symmetric, per-channel, static) → prepare/convert_pt2e → .tflite;
- XNNPACKQuantizer  ExecuTorch's own (symmetric, per-channel, static) → prepare/convert_pt2e →
             to_edge_transform_and_lower(XnnpackPartitioner) → .pte.
The peers start from the plain graph, the model as timm defines it: vit-edge's FP32 export with
`head_tokens_only=False` (every token through the last block, what torch.onnx.export or ov.convert_model of the timm
model gives), and that PyTorch model for PT2E and XNNPACKQuantizer. vit-edge's own rows use its defaults, where the
last block computes only the class (and distillation) token: the same output, less work.
Every method is calibrated on the same smooth images and scored on other smooth images against the PyTorch FP32
model: mean logit cosine and top-1 agreement. Latency: batch 1, p50, interleaved rounds (median over rounds);
vit-edge artifacts through `vit_edge.benchmarking.sweep`, peer files through a timed loop in the same runtime session
class. OpenVINO runs with the f32 hint; its FP32 is also measured with the default hint (bf16 where the CPU has it).

    PYTHONPATH=. .venv/bin/python benchmarks/int8_vs_peers.py [--models vit_tiny_patch16_224 deit_small_patch16_224]
        [--calib 64] [--eval 64] [--threads 2] [--runs 50] [--rounds 3] [--no-latency] [--keep DIR]

Needs the extras onnx, openvino, tflite and peers (nncf); a peer that is missing or fails becomes a row.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

# Every converter is imported before the first seed: importing litert_torch consumes torch's RNG, and each
# random-init load below must give the PyTorch reference's weights (checked through weights_sha256).
import onnxruntime.quantization  # noqa: F401
import openvino as ov
import torch

try:
    import litert_torch
except ImportError:  # pragma: no cover - the tflite extra is optional
    litert_torch = None
try:
    import nncf
except ImportError:  # pragma: no cover - the peers extra is optional
    nncf = None
try:
    import executorch.exir  # noqa: F401
except ImportError:  # pragma: no cover - the executorch extra is optional
    pass

from vit_edge.api import QuantizeConfig, export, quantize
from vit_edge.benchmarking.sweep import BenchConfig, bench
from vit_edge.core.targets import TARGETS as TARGET_DECLARATIONS
from vit_edge.core.types import Precision
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.data.synthetic import smooth_images
from vit_edge.reading.loaders import LoadedModel, load_model
from vit_edge.runtime.base import SessionOptions

TARGETS = tuple(t.name for t in TARGET_DECLARATIONS.values() if Precision.INT8 in t.precisions)
PEER_OF = {"onnx": "ORT quantize_static", "openvino": "NNCF", "tflite": "litert-torch PT2E",
           "executorch": "ExecuTorch XNNPACKQuantizer"}


@dataclass
class Entry:
    """One model file to score and time: a vit-edge artifact (`artifact`) or a peer tool's file."""

    method: str
    target: str
    precision: str
    file: Path | None = None
    artifact: Path | None = None
    hint: str | None = "f32"
    error: str | None = None
    note: str = ""
    cosine: float | None = None
    top1: float | None = None
    times: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        hint = "" if self.target != "openvino" else f" ({self.hint or 'default'})"
        return f"{self.method} {self.precision}{hint}"

    @property
    def p50(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


def seeded_load(name: str) -> LoadedModel:
    torch.manual_seed(0)
    return load_model(f"timm:{name}", random_init=True)


def check_weights(entry: Entry, expected: str) -> None:
    """The artifact's recorded weights hash must be the reference's, or its agreement means nothing."""
    from vit_edge.core.manifest import read_manifest

    got = read_manifest(entry.artifact).source.weights_sha256
    if got != expected:
        raise SystemExit(f"{entry.label} {entry.target}: weights {got} differ from the reference {expected}; "
                         "something consumed torch's RNG between the seed and the model")


def is_ours(entry: Entry) -> bool:
    """vit-edge's own files: its default and, on ONNX Runtime, its --ort-fusions graph."""
    return entry.method.startswith("vit-edge")


# vit-edge's files per target: (method, precision, extra export options); the ORT graph is INT8's other ONNX file
VARIANTS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "onnx": [("vit-edge", "fp32", {}), ("vit-edge", "int8", {}), ("vit-edge ORT graph", "int8", {"ort_fusions": True})],
}


def vit_edge_entries(name: str, calib: np.ndarray, work: Path, sha: str,
                     targets: tuple[str, ...] = TARGETS) -> list[Entry]:
    """FP32 exports and vit-edge INT8 per target; a failure becomes an entry with its error."""
    entries: list[Entry] = []
    for target in targets:
        for method, precision, extra in VARIANTS.get(target, [("vit-edge", "fp32", {}), ("vit-edge", "int8", {})]):
            entry = Entry(method, target, precision)
            out = work / f"{target}-{precision}{'-ort' if extra else ''}"
            torch.manual_seed(0)
            try:
                art = (export(f"timm:{name}", target, out, random_init=True, parity_samples=2, force=True)
                       if precision == "fp32" else
                       quantize(f"timm:{name}", target, out, QuantizeConfig(calib, calib_size=len(calib),
                                                                            random_init=True),
                                parity_samples=2, force=True, **extra))
                entry.artifact, entry.file = art.path, art.path / art.manifest.model_file
                check_weights(entry, sha)
            except Exception as exc:  # vit-edge errors, converter errors: the row says which
                entry.error = f"not available: {first_line(exc)}"
            entries.append(entry)
            if target == "openvino" and precision == "fp32" and entry.error is None:
                entries.append(Entry("vit-edge", target, precision, entry.file, entry.artifact, hint=None))
    return entries


class _Reader:
    """ORT calibration data reader: the calibration images in batches of 8."""

    def __init__(self, input_name: str, batch: np.ndarray) -> None:
        self._chunks = iter([{input_name: batch[i : i + 8]} for i in range(0, len(batch), 8)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._chunks, None)


def ort_peer(fp32_onnx: Path, calib: np.ndarray, work: Path, activation: str, op_types: list[str] | None) -> Entry:
    """op_types None: ORT's default, every op it can quantize (Add, LayerNorm, Softmax … too); else only those."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    method = PEER_OF["onnx"] + (f" ({'/'.join(op_types)})" if op_types else "")
    entry = Entry(method, "onnx", "int8", file=work / f"ort-int8-{'-'.join(op_types or ['all'])}.onnx")
    source, entry.note = work / "ort-pre.onnx", "quant_pre_process"
    try:
        quant_pre_process(str(fp32_onnx), str(source))
    except Exception as exc:  # pre-processing is optional: quantize the exported graph as it is
        source, entry.note = fp32_onnx, f"no quant_pre_process ({first_line(exc)})"
    input_name = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    quantize_static(str(source), str(entry.file), _Reader(input_name, calib), op_types_to_quantize=op_types,
                    quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=getattr(QuantType, activation), weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    # No CalibMaxIntermediateOutputs: in ORT 1.31 MinMaxCalibrater clears the outputs at that count without merging
    # their ranges first (onnxruntime#18893), so it loses data ("No data is collected"); all outputs stay in memory.
    entry.note += f", QDQ, per-channel, act {activation}, weight QInt8, MinMax, ops {'/'.join(op_types or ['default'])}"
    return entry


def nncf_peer(fp32_xml: Path, calib: np.ndarray, work: Path) -> Entry:
    if nncf is None:
        raise ImportError("nncf is not installed (pip install -c constraints.txt 'vit-edge[peers]')")
    entry = Entry(PEER_OF["openvino"], "openvino", "int8", file=work / "nncf-int8.xml")
    model = ov.Core().read_model(str(fp32_xml))
    dataset = nncf.Dataset([calib[i : i + 1] for i in range(len(calib))])
    quantized = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER,
                              preset=nncf.QuantizationPreset.MIXED, subset_size=len(calib))
    ov.save_model(quantized, str(entry.file), compress_to_fp16=False)
    entry.note = f"nncf {nncf.__version__}, TRANSFORMER, MIXED, subset {len(calib)}"
    return entry


def pt2e_peer(model: torch.nn.Module, calib: np.ndarray, work: Path) -> Entry:
    if litert_torch is None:
        raise ImportError("litert-torch is not installed (extra 'tflite')")
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize import quant_config as qcfg
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    entry = Entry(PEER_OF["tflite"], "tflite", "int8", file=work / "pt2e-int8.tflite")
    example = torch.from_numpy(calib[:1])
    quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True,
                                                                                    is_dynamic=False))
    graph = prepare_pt2e(torch.export.export(copy.deepcopy(model).eval(), (example,)).module(), quantizer)
    with torch.no_grad():
        for i in range(len(calib)):
            graph(torch.from_numpy(calib[i : i + 1]))
    converted = convert_pt2e(graph, fold_quantize=False)
    edge = litert_torch.convert(converted, (example,), quant_config=qcfg.QuantConfig(pt2e_quantizer=quantizer))
    edge.export(str(entry.file))
    entry.note = f"symmetric, per-channel, static, torchao prepare/convert_pt2e, I/O {tflite_io(entry.file)}"
    return entry


def executorch_peer(model: torch.nn.Module, calib: np.ndarray, work: Path) -> Entry:
    """ExecuTorch's own INT8 flow, as its XNNPACK tutorial writes it."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    entry = Entry(PEER_OF["executorch"], "executorch", "int8", file=work / "xnnpack-quantizer-int8.pte")
    example = torch.from_numpy(calib[:1]).contiguous()
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    graph = prepare_pt2e(torch.export.export(copy.deepcopy(model).eval(), (example,)).module(), quantizer)
    with torch.no_grad():
        for i in range(len(calib)):
            graph(torch.from_numpy(calib[i : i + 1]).contiguous())
    converted = convert_pt2e(graph)
    edge = to_edge_transform_and_lower(torch.export.export(converted, (example,)),
                                       partitioner=[XnnpackPartitioner()])
    entry.file.write_bytes(edge.to_executorch().buffer)
    entry.note = "symmetric, per-channel, static, torchao prepare/convert_pt2e, XNNPACK partitioner"
    return entry


def tflite_io(path: Path) -> str:
    """'int8 -> int8' and the like: the dtypes a caller has to feed and read."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    dtypes = [np.dtype(d[0]["dtype"]).name for d in (interp.get_input_details(), interp.get_output_details())]
    return " -> ".join(dtypes)


@dataclass
class PlainModel:
    """What the peers start from: the model as timm defines it, and its FP32 ONNX and OpenVINO IR."""

    model: torch.nn.Module
    files: dict[str, Path]


def plain_model(loaded: LoadedModel, work: Path) -> PlainModel:
    """The timm graph (every token through the last block) exported to FP32 ONNX and OpenVINO IR."""
    model = loaded.model.reconfigured(head_tokens_only=False)
    files = {}
    for target in ("onnx", "openvino"):
        try:
            art = export(model, target, work / f"plain-{target}-fp32", parity_samples=2, force=True)
            files[target] = art.path / art.manifest.model_file
        except Exception as exc:  # the peers that need it become error rows
            print(f"  plain {target} export failed: {first_line(exc)}", file=sys.stderr)
    return PlainModel(model, files)


def peer_entries(plain: PlainModel, calib: np.ndarray, work: Path, activation: str,
                 targets: tuple[str, ...] = TARGETS) -> list[Entry]:
    fp32 = plain.files
    makers: list[tuple[str, str, Callable[[], Entry]]] = [
        (PEER_OF["onnx"], "onnx", lambda: ort_peer(fp32["onnx"], calib, work, activation, None)),
        (PEER_OF["onnx"] + " (MatMul/Gemm)", "onnx",
         lambda: ort_peer(fp32["onnx"], calib, work, activation, ["MatMul", "Gemm"])),
        (PEER_OF["openvino"], "openvino", lambda: nncf_peer(fp32["openvino"], calib, work)),
        (PEER_OF["tflite"], "tflite", lambda: pt2e_peer(plain.model, calib, work)),
        (PEER_OF["executorch"], "executorch", lambda: executorch_peer(plain.model, calib, work)),
    ]
    entries = []
    for method, target, make in (m for m in makers if m[1] in targets):
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(sys.stderr):  # NNCF's and litert-torch's progress bars
                entry = make()
        except Exception as exc:  # a peer that fails is a result too
            entry = Entry(method, target, "int8", error=f"failed: {first_line(exc)}")
        print(f"  {method}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        entries.append(entry)
    return entries


def open_session(entry: Entry, threads: int, batch: int | None) -> Any:
    """The runtime session vit-edge itself uses for this file type (same thread and precision settings); its
    LiteRT session also feeds and reads the int8 inputs and outputs PT2E and AI Edge Quantizer files have."""
    from vit_edge.runtime.base import session_class

    declared = next(t for t in TARGET_DECLARATIONS.values() if t.suffix == entry.file.suffix)
    cls = session_class(declared.runtime.name)
    return cls(entry.file, SessionOptions(threads=threads, precision_hint=entry.hint, batch=batch))


def score(entry: Entry, batch: np.ndarray, reference: np.ndarray, threads: int) -> None:
    """Mean logit cosine and top-1 agreement with the PyTorch FP32 logits."""
    session = open_session(entry, threads, None)
    logits = np.concatenate([session.run(batch[i : i + 16]) for i in range(0, len(batch), 16)])
    cos = (logits * reference).sum(1) / (np.linalg.norm(logits, axis=1) * np.linalg.norm(reference, axis=1))
    entry.cosine = float(cos.mean())
    entry.top1 = float((logits.argmax(1) == reference.argmax(1)).mean())


def timed_loop(session: Any, x: np.ndarray, runs: int, min_seconds: float, warmup: int = 10) -> float:
    for _ in range(warmup):
        session.run(x)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < runs or time.perf_counter() - started < min_seconds:
        begin = time.perf_counter()
        session.run(x)
        times.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(times)


def measure(entries: list[Entry], x: np.ndarray, args: argparse.Namespace) -> None:
    """Interleaved rounds: every configuration once per round; the p50 is the median over rounds."""
    live = [e for e in entries if e.error is None]
    sessions = {id(e): open_session(e, args.threads, 1) for e in live if e.artifact is None}
    for round_ in range(args.rounds):
        for entry in live:
            if entry.artifact is not None:
                cfg = BenchConfig(threads=(args.threads,), runs=args.runs, min_seconds=args.min_seconds,
                                  precision_hint=entry.hint)
                record = bench([str(entry.artifact)], cfg)[0]
                if record.p50_ms is not None:
                    entry.times.append(record.p50_ms)
            else:
                entry.times.append(timed_loop(sessions[id(entry)], x, args.runs, args.min_seconds))
        print(f"  latency round {round_ + 1}/{args.rounds} done", file=sys.stderr)


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def speedup_over_fp32(entries: list[Entry]) -> Callable[[Entry], float | None]:
    """Each entry's p50 against its target's FP32 file at the f32 hint (None where either was not timed)."""
    base = {e.target: e.p50 for e in entries if e.precision == "fp32" and e.hint == "f32" and e.p50}
    return lambda e: base[e.target] / e.p50 if e.p50 and e.target in base else None


def print_table(name: str, entries: list[Entry], args: argparse.Namespace) -> None:
    latency = "" if args.no_latency else (f", p50 ms batch 1, {args.threads} threads, median of {args.rounds} "
                                          "interleaved rounds")
    print(f"\n{name}: {args.calib} calibration / {args.eval} evaluation smooth images, vs PyTorch FP32{latency}")
    print(f"{'method':<42} {'target':<9} {'cosine':>8} {'top-1':>6} {'p50 ms':>7} {'vs fp32':>8}")
    speedup_of = speedup_over_fp32(entries)
    for e in entries:
        if e.error:
            print(f"{e.label:<42} {e.target:<9} {e.error}")
            continue
        speedup = speedup_of(e)
        print(f"{e.label:<42} {e.target:<9} {fmt(e.cosine, '8.5f')} {fmt(e.top1, '6.3f')} {fmt(e.p50, '7.2f')} "
              f"{fmt(speedup, '7.2f', 'x')}" + (f"  [{e.note}]" if e.note else ""))
    print_ratios(entries)


def print_ratios(entries: list[Entry]) -> None:
    """vit-edge / peer per target: top-1 agreement ratio, (1 - cosine) ratio, latency ratio (< 1: vit-edge faster)."""
    print(f"{'vit-edge / peer':<42} {'target':<9} {'top-1':>8} {'1-cos':>8} {'p50':>7}")
    for peer in (e for e in entries if not is_ours(e)):
        ours = next((e for e in entries if e.method == "vit-edge" and e.precision == "int8"
                     and e.target == peer.target and e.error is None), None)
        if ours is None or peer.error is not None:
            print(f"{'vs ' + peer.method:<42} {peer.target:<9} n/a (one side failed)")
            continue
        top1 = ours.top1 / peer.top1 if peer.top1 else None
        err = (1 - ours.cosine) / (1 - peer.cosine) if peer.cosine < 1 else None
        lat = ours.p50 / peer.p50 if ours.p50 and peer.p50 else None
        print(f"{'vs ' + peer.method:<42} {peer.target:<9} {fmt(top1, '8.3f')} {fmt(err, '8.3f')} {fmt(lat, '7.2f')}")


def run_model(name: str, args: argparse.Namespace, work: Path) -> None:
    print(f"{name}: loading, exporting, quantizing …", file=sys.stderr)
    loaded = seeded_load(name)
    sha = loaded.source.weights_sha256
    if seeded_load(name).source.weights_sha256 != sha:
        raise SystemExit("torch.manual_seed(0) does not reproduce the random-init weights")
    size = loaded.spec.img_size
    calib = preprocess_uint8(smooth_images(args.calib, size, 3, seed=1), loaded.spec)
    evaluation = preprocess_uint8(smooth_images(args.eval, size, 3, seed=2), loaded.spec)
    with torch.inference_mode():
        reference = loaded.model(torch.from_numpy(evaluation)).numpy()
    ours = vit_edge_entries(name, calib, work / name, sha)
    entries = ours + peer_entries(plain_model(loaded, work / name), calib, work / name, args.ort_activation)
    for entry in entries:
        if entry.error is None:
            score(entry, evaluation, reference, args.threads)
    if not args.no_latency:
        measure(entries, evaluation[:1], args)
    entries.sort(key=lambda e: (TARGETS.index(e.target), e.precision != "fp32", not is_ours(e)))
    print_table(name, entries, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vit_tiny_patch16_224", "deit_small_patch16_224"])
    parser.add_argument("--calib", type=int, default=64, help="calibration images, the same for every method")
    parser.add_argument("--eval", type=int, default=64, help="evaluation images (other seed than calibration)")
    parser.add_argument("--ort-activation", choices=("QUInt8", "QInt8"), default="QUInt8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-latency", action="store_true", help="agreement only")
    parser.add_argument("--keep", type=Path, help="write the models here and keep them (default: a temp dir)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="vit-edge-peers-int8-"))
    try:
        for name in args.models:
            run_model(name, args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
