"""What the commands print: one line per artifact written, the manifest as rows, the tune table."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vit_edge.core.identity import ModelFacts
from vit_edge.core.manifest import Manifest
from vit_edge.core.parity import ParityCheck, agreement_words
from vit_edge.core.summaries import Accuracy, KeptFloatOp, NpuEstimate, QuantSummary
from vit_edge.core.types import InputSpec

if TYPE_CHECKING:
    from vit_edge.tuning.results import TuneResult

__all__ = ["print_delegation", "info_rows", "export_line", "quantize_line", "tune_table"]


def print_delegation(parity: ParityCheck | None) -> None:
    """Where a delegate (XNNPACK) did not take the whole graph, name the ops that run outside it."""
    delegated = parity.runtime.delegation if parity is not None and parity.runtime is not None else None
    if delegated is not None and not delegated.fully_delegated:
        ops = ", ".join(delegated.undelegated_ops) or "?"
        print(f"  not all in {delegated.delegate}: {ops} run on the runtime's own kernels")


def _family_line(facts: ModelFacts) -> str:
    line = f"{facts.family}; output: {facts.output_line()}"
    if facts.reid is not None:
        camera, view, neck_feat = facts.reid
        line += f"; camera {camera}, view {view}, feature {neck_feat}"
    return line


def _sqnr_rows(q: QuantSummary | None) -> list[tuple[str, str]]:
    """Per-matmul SQNR (dB), a block per line, and why any matmul stayed float."""
    if q is None:
        return []
    by_block: dict[str, list[str]] = {}
    for name, value in q.sqnr_db.items():
        if name.startswith("blocks."):
            block, _, leaf = name[len("blocks."):].partition(".")
            group = f"block {block}"
        elif name.startswith("attn_pool."):  # SigLIP's attention-pool head, one line like a block
            group, leaf = "attention pool", name
        else:
            group, leaf = name, name
        by_block.setdefault(group, []).append(f"{leaf.rpartition('.')[2]} {value:.1f}")
    rows = [("SQNR dB" if i == 0 else "", f"{block}: {', '.join(items)}")
            for i, (block, items) in enumerate(by_block.items())]
    for kept in q.accuracy.kept_float_for_budget or ():
        if isinstance(kept, KeptFloatOp):  # a depth model's AbsRel budget: the op that cost most alone
            before = "" if kept.abs_rel_before is None else f", while AbsRel was {100 * kept.abs_rel_before:.2f}%"
            rows.append(("kept float", f"{kept.op} (alone in INT8 AbsRel {100 * kept.abs_rel_alone:.2f}%, the most "
                                       f"left{before})"))
            continue
        rows.append(("kept float", f"{kept.matmul} (SQNR {kept.sqnr_db:.1f} dB, the lowest, while the drop "
                                   f"was {kept.drop_before_pt:.2f} pt)"))
    return rows


def _matmul_counts(q: QuantSummary, int8_words: str = "matmuls INT8") -> str:
    """'24 matmuls INT8, 2 float', naming those with INT16 activations (A16W8) when there are any."""
    int16 = len(q.int16_activations)
    widths = f" ({int16} of them A16W8: INT16 activations)" if int16 else ""
    return f"{len(q.int8_matmuls)} {int8_words}{widths}, {len(q.kept_float)} float"


def _quantization_line(q: QuantSummary) -> str:
    from vit_edge.quantization.recipe import Recipe  # no torch: the recipe is a plain record

    calibration, accuracy = q.calibration, q.accuracy
    line = (f"{q.method}: {_matmul_counts(q, 'INT8 matmuls')}; {Recipe.from_json(q.recipe).calibration} calibration "
            f"on {calibration.images if calibration else '?'} images of {calibration.source if calibration else '?'}")
    moved = accuracy.int16_for_budget or ()
    if moved:
        line += f"; the budget gave {len(moved)} op(s) INT16 activations ({', '.join(m.matmul for m in moved)})"
    if q.qat is not None:
        line += (f"; QAT {len(q.qat.history)} epoch(s) on {q.qat.train_data}, best epoch "
                 f"{q.qat.best.epoch if q.qat.best else '?'}")
    if accuracy.int8_top1 is not None:
        line += f"; top-1 {accuracy.fp32_top1:.2f}% → {accuracy.int8_top1:.2f}%"
        if accuracy.int8_top1_measured_in is not None:
            line += (f" (INT8 as {accuracy.int8_top1_measured_in} scored it; PyTorch's simulation "
                     f"{accuracy.int8_top1_simulated:.2f}%)")
    elif accuracy.agreement_top1 is not None:
        line += f"; {_unlabelled_words(accuracy)}"
    elif accuracy.segmentation is not None:
        line += f"; {_segmentation_words(accuracy)}"
    elif accuracy.depth is not None:
        line += f"; {_depth_words(accuracy)}"
    return line


def _parity_line(parity: ParityCheck | None) -> str:
    if parity is None:
        return "not checked"
    return (f"{'passed' if parity.passed else 'FAILED'}: min cosine {parity.min_cosine:.7f}{agreement_words(parity)} "
            f"on {parity.samples} {parity.inputs}{_other_sizes_words(parity)}")


def _other_sizes_words(parity: ParityCheck) -> str:
    """', and at 84x42, 42x98' for an artifact of any size (checked at sizes besides its default)."""
    shown = ", ".join(f"{entry.size[0]}x{entry.size[1]}" for entry in parity.other_sizes or ())
    return f", and at {shown}" if shown else ""


def export_line(path: Path, manifest: Manifest) -> str:
    """The artifact written and its parity, in one line."""
    parity = manifest.parity
    check = (f"parity ok: min cosine {parity.min_cosine:.7f}{agreement_words(parity)}, max abs diff "
             f"{parity.max_abs_diff:.2e}{_other_sizes_words(parity)}"
             if parity is not None else "parity not checked (--no-verify)")
    return f"{path}  ({manifest.target} {manifest.precision.value}; {check})"


def npu_line(manifest: Manifest) -> str | None:
    """After a quantize with --npu: where the operators went, in one line, labelled as Vela's estimate."""
    estimate = manifest.npu_estimate
    if estimate is None:
        return None
    return (f"Vela's estimate for {estimate.accelerator}: {estimate.npu_ops} operators on the NPU, "
            f"{estimate.cpu_ops} on the CPU ({100 * estimate.npu_share:.1f} %), {estimate.inference_ms:.3f} "
            f"ms per inference (vit-edge info shows what falls back)")


def quantize_line(path: Path, manifest: Manifest) -> str:
    """The INT8 artifact written: how many matmuls are INT8, and the accuracy before and after."""
    q = manifest.quantization
    if q is None:
        return f"{path}  ({manifest.target} {manifest.precision.value})"
    accuracy = q.accuracy
    line = _matmul_counts(q)
    if q.float_ops is not None:  # a dense model: its neck's and head's convolutions, INT8 where the budget held
        line += f", {len(q.int8_convs or ())} neck/head convolutions INT8, {len(q.float_ops)} float"
    if accuracy.budget_met_in_runtime is False:
        from vit_edge.quantization.recipe import Recipe

        line += (f"; the budget of {Recipe.from_json(q.recipe).max_drop} pt holds in PyTorch's simulation (drop "
                 f"{accuracy.drop_simulated:.2f} pt) but not as {accuracy.int8_top1_measured_in} scores the file "
                 f"(drop {accuracy.drop:.2f} pt): lower --max-drop, or use more --eval images")
    if accuracy.int8_top1 is not None:
        line += f"; top-1 {accuracy.fp32_top1:.2f}% → {accuracy.int8_top1:.2f}%"
        line += f"; agreement with fp32 {accuracy.agreement_top1:.2f}%"
    elif accuracy.agreement_top1 is not None:
        line += f"; {_unlabelled_words(accuracy)}"
    elif accuracy.depth is not None:
        line += f"; {_depth_words(accuracy)}"
    elif accuracy.segmentation is not None:
        line += f"; {_segmentation_words(accuracy)}"
    elif accuracy.cosine is not None:
        line += f"; mean cosine with fp32 {accuracy.cosine:.5f} (worst {accuracy.min_cosine:.5f})"
    return f"{path}  ({manifest.target} int8: {line})"


def _depth_words(accuracy: Accuracy) -> str:
    """A depth map's measures against fp32 (never a top-1), on the images they were measured on."""
    def percent(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}%"

    depth = accuracy.depth
    if depth is None:
        return "depth not measured"
    words = (f"depth against fp32 on the {accuracy.images or '?'} calibration images: AbsRel "
             f"{percent(depth.abs_rel)}, δ<1.25 {percent(depth.delta1)}, SQNR {depth.sqnr_db:.1f} dB")
    truth = accuracy.ground_truth
    if truth is not None:  # --eval on a folder with depth maps
        words += (f"; against ground truth ({truth.eval_data}): AbsRel {percent(truth.fp32_abs_rel)} → "
                  f"{percent(truth.int8_abs_rel)}, δ<1.25 {percent(truth.fp32_delta1)} → "
                  f"{percent(truth.int8_delta1)}")
    return words


def _segmentation_words(accuracy: Accuracy) -> str:
    """A segmentation map's measures: against fp32 (pixel agreement, mIoU with its argmax) on the images they were
    measured on, and with --eval masks the mIoU of each (never a top-1)."""
    def percent(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f}%"

    seg = accuracy.segmentation
    if seg is None:
        return "segmentation not measured"
    on = f"{accuracy.images} --eval images" if accuracy.eval_data is not None else (
        f"the {accuracy.images or '?'} calibration images")
    words = (f"segmentation against fp32 on {on}: pixel agreement {percent(seg.pixel_agreement)}, mIoU "
             f"{percent(seg.miou_vs_fp32)}")
    if accuracy.int8_miou is not None:
        words += f"; mIoU on the masks {percent(accuracy.fp32_miou)} → {percent(accuracy.int8_miou)}"
    return words


def _unlabelled_words(accuracy: Accuracy) -> str:
    """Without --eval there are no labels: what was measured is disagreement with fp32 on the calibration images,
    never a top-1 drop."""
    return (f"disagreement with fp32 on the {accuracy.images or '?'} calibration images "
            f"{100.0 - (accuracy.agreement_top1 or 0.0):.2f} % (no --eval: top-1 not measured)")


def info_rows(manifest: Manifest, folder: Path) -> list[tuple[str, str]]:
    """`vit-edge info`: the manifest as labelled rows."""
    spec, facts = manifest.input_spec, manifest.model_facts
    size = manifest.size_bytes(folder)
    rows = [
        ("target", f"{manifest.target} ({manifest.precision.value})"),
        ("model file", f"{manifest.model_file}  ({size / 1e6:.2f} MB in all; sha256 verified)"),
        ("source", f"{facts.kind}: {facts.ident}"),
        ("family", _family_line(facts)),
        ("input", f"{_shape_words(spec)} {spec.layout.value}, mean {spec.mean}, std {spec.std}, {spec.interpolation}"),
        *([("classes", classes)] if (classes := _classes_line(manifest)) else []),
        ("parity", _parity_line(manifest.parity)),
        *([("quantized", _quantization_line(manifest.quantization))] if manifest.quantization else []),
        ("created", f"{manifest.created_at} with torch {manifest.tool_versions.get('torch', '?')}"),
    ]
    return rows + _npu_rows(manifest.npu_estimate) + _sqnr_rows(manifest.quantization)


def _shape_words(spec: InputSpec) -> str:
    """The input's shape; for an artifact of any size, the rule and the default (and how photos are resized)."""
    if not spec.size_multiple:
        return str(spec.shape(1))
    step = spec.size_multiple
    return (f"any height and width that are multiples of {step} ({2 * step} at least), {spec.shape(1)} by default"
            f"{' (photos keep their aspect ratio)' if spec.keeps_aspect else ''},")


def _classes_line(manifest: Manifest) -> str | None:
    """The class names bench matches folders against, and whence; None for an output without classes."""
    from vit_edge.core.output_kinds import Measure
    from vit_edge.data.labels import names_summary

    if not manifest.output.supports(Measure.TOP1):
        return None
    names = manifest.input_spec.class_names
    if not names:
        return (f"{manifest.model_ref.num_classes} outputs, no class names (class folders need --class-names FILE; "
                "given to export or quantize, the artifact keeps them)")
    given = manifest.source.class_names_from
    return names_summary(names) + (f" (from --class-names {given})" if given else " (the model's own)")


def _npu_rows(estimate: NpuEstimate | None) -> list[tuple[str, str]]:
    from vit_edge.benchmarking.report import npu_estimate_lines

    return [("npu" if index == 0 else "", line) for index, line in enumerate(npu_estimate_lines(estimate))] \
        if estimate else []


def tune_table(result: TuneResult, out: Path, max_drop: float) -> list[str]:
    """`vit-edge tune`: the Pareto front as a markdown table, then the artifact it chose."""
    lines = ["| candidate | threads | hint | p50 ms | top-1 % | drop pt |", "|---|---|---|---|---|---|"]
    for row in result.pareto_front:
        lines.append(f"| {row.candidate} | {row.threads} | {row.hint} | {row.p50_ms:.2f} "
                     f"| {row.top1:.2f} | {row.drop:.2f} |")
    chosen = result.chosen
    if chosen is not None:
        lines.append(f"{out / 'chosen'}  ({chosen.candidate}, {chosen.threads} threads, hint {chosen.hint}: "
                     f"{chosen.p50_ms:.2f} ms, drop {chosen.drop:.2f} pt ≤ {max_drop})")
    return lines
