"""What the commands print: one line per artifact written, the manifest as rows, the tune table."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vit_edge.core.artifact import Manifest
from vit_edge.core.identity import ModelFacts
from vit_edge.core.parity import agreement_words

__all__ = ["print_delegation", "info_rows", "export_line", "quantize_line", "tune_table"]


def print_delegation(parity: dict[str, Any] | None) -> None:
    """Where a delegate (XNNPACK) did not take the whole graph, name the ops that run outside it."""
    session = (parity or {}).get("runtime") or {}
    if session.get("fully_delegated") is False:
        ops = ", ".join(session.get("undelegated_ops", [])) or "?"
        print(f"  not all in {session.get('delegate', 'the delegate')}: {ops} run on the runtime's own kernels")


def _family_line(facts: ModelFacts) -> str:
    line = f"{facts.family}; output: {facts.output_line()}"
    if facts.reid is not None:
        camera, view, neck_feat = facts.reid
        line += f"; camera {camera}, view {view}, feature {neck_feat}"
    return line


def _sqnr_rows(q: dict[str, Any]) -> list[tuple[str, str]]:
    """Per-matmul SQNR (dB), a block per line, and why any matmul stayed float."""
    by_block: dict[str, list[str]] = {}
    for name, value in q.get("sqnr_db", {}).items():
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
    for kept in q.get("accuracy", {}).get("kept_float_for_budget", []):
        rows.append(("kept float", f"{kept['matmul']} (SQNR {kept['sqnr_db']:.1f} dB, the lowest, while the drop "
                                   f"was {kept['drop_before_pt']:.2f} pt)"))
    return rows


def _matmul_counts(q: dict[str, Any], int8_words: str = "matmuls INT8") -> str:
    """'24 matmuls INT8, 2 float', naming those with INT16 activations (A16W8) when there are any."""
    int16 = len(q.get("int16_activations", []))
    widths = f" ({int16} of them A16W8: INT16 activations)" if int16 else ""
    return f"{len(q.get('int8_matmuls', []))} {int8_words}{widths}, {len(q.get('kept_float', []))} float"


def _quantization_line(q: dict[str, Any]) -> str:
    calibration = q.get("calibration", {})
    method = q.get("recipe", {}).get("calibration", "?")
    line = (f"{q.get('method', '?')}: {_matmul_counts(q, 'INT8 matmuls')}; {method} calibration "
            f"on {calibration.get('images', '?')} images of {calibration.get('source', '?')}")
    moved = q.get("accuracy", {}).get("int16_for_budget", [])
    if moved:
        line += f"; the budget gave {len(moved)} op(s) INT16 activations ({', '.join(m['matmul'] for m in moved)})"
    qat = q.get("qat")
    if qat:
        best = qat.get("best") or {}
        line += (f"; QAT {len(qat.get('history', []))} epoch(s) on {qat.get('train_data')}, best epoch "
                 f"{best.get('epoch', '?')}")
    accuracy = q.get("accuracy", {})
    if "int8_top1" in accuracy:
        line += f"; top-1 {accuracy['fp32_top1']:.2f}% → {accuracy['int8_top1']:.2f}%"
        if "int8_top1_measured_in" in accuracy:
            line += (f" (INT8 as {accuracy['int8_top1_measured_in']} scored it; PyTorch's simulation "
                     f"{accuracy['int8_top1_simulated']:.2f}%)")
    elif "agreement_top1" in accuracy:
        line += f"; {_unlabelled_words(accuracy)}"
    return line


def _parity_line(parity: dict[str, Any]) -> str:
    if not parity:
        return "not checked"
    agreement = agreement_words(parity)
    return (f"{'passed' if parity.get('passed') else 'FAILED'}: min cosine {parity['min_cosine']:.7f}{agreement} on "
            f"{parity['samples']} {parity.get('inputs')}")


def export_line(path: Path, manifest: Manifest) -> str:
    """The artifact written and its parity, in one line."""
    parity = manifest.parity
    check = (f"parity ok: min cosine {parity['min_cosine']:.7f}{agreement_words(parity)}, max abs diff "
             f"{parity['max_abs_diff']:.2e}"
             if parity else "parity not checked (--no-verify)")
    return f"{path}  ({manifest.target} {manifest.precision.value}; {check})"


def npu_line(manifest: Manifest) -> str | None:
    """After a quantize with --npu: where the operators went, in one line, labelled as Vela's estimate."""
    estimate = manifest.npu_estimate
    if not estimate:
        return None
    return (f"Vela's estimate for {estimate['accelerator']}: {estimate['npu_ops']} operators on the NPU, "
            f"{estimate['cpu_ops']} on the CPU ({100 * estimate['npu_share']:.1f} %), {estimate['inference_ms']:.3f} "
            f"ms per inference (vit-edge info shows what falls back)")


def quantize_line(path: Path, manifest: Manifest) -> str:
    """The INT8 artifact written: how many matmuls are INT8, and the accuracy before and after."""
    q = manifest.quantization or {}
    accuracy = q.get("accuracy", {})
    line = _matmul_counts(q)
    if "float_ops" in q:  # a dense model: its neck's and head's convolutions, INT8 where the budget held
        line += f", {len(q.get('int8_convs', []))} neck/head convolutions INT8, {len(q['float_ops'])} float"
    if accuracy.get("budget_met_in_runtime") is False:
        line += (f"; the budget of {q['recipe']['max_drop']} pt holds in PyTorch's simulation (drop "
                 f"{accuracy['drop_simulated']:.2f} pt) but not as {accuracy['int8_top1_measured_in']} scores the file "
                 f"(drop {accuracy['drop']:.2f} pt): lower --max-drop, or use more --eval images")
    if "int8_top1" in accuracy:
        line += f"; top-1 {accuracy['fp32_top1']:.2f}% → {accuracy['int8_top1']:.2f}%"
        line += f"; agreement with fp32 {accuracy['agreement_top1']:.2f}%"
    elif "agreement_top1" in accuracy:
        line += f"; {_unlabelled_words(accuracy)}"
    elif "abs_rel" in accuracy:
        line += f"; {_depth_words(accuracy)}"
    elif "cosine" in accuracy:
        line += f"; mean cosine with fp32 {accuracy['cosine']:.5f} (worst {accuracy['min_cosine']:.5f})"
    return f"{path}  ({manifest.target} int8: {line})"


def _depth_words(accuracy: dict[str, Any]) -> str:
    """A depth map's measures against fp32 (never a top-1), on the images they were measured on."""
    def percent(key: str) -> str:
        value = accuracy.get(key)
        return "n/a" if value is None else f"{100 * value:.2f}%"

    words = (f"depth against fp32 on the {accuracy.get('images', '?')} calibration images: AbsRel "
             f"{percent('abs_rel')}, δ<1.25 {percent('delta1')}, SQNR {accuracy['sqnr_db']:.1f} dB")
    truth = accuracy.get("ground_truth")
    if truth:  # --eval on a folder with depth maps
        words += (f"; against ground truth ({truth['eval_data']}): AbsRel {100 * truth['fp32_abs_rel']:.2f}% → "
                  f"{100 * truth['int8_abs_rel']:.2f}%, δ<1.25 {100 * truth['fp32_delta1']:.2f}% → "
                  f"{100 * truth['int8_delta1']:.2f}%")
    return words


def _unlabelled_words(accuracy: dict[str, Any]) -> str:
    """Without --eval there are no labels: what was measured is disagreement with fp32 on the calibration images,
    never a top-1 drop."""
    return (f"disagreement with fp32 on the {accuracy.get('images', '?')} calibration images "
            f"{100.0 - accuracy['agreement_top1']:.2f} % (no --eval: top-1 not measured)")


def info_rows(manifest: Manifest, folder: Path) -> list[tuple[str, str]]:
    """`vit-edge info`: the manifest as labelled rows."""
    spec, facts = manifest.input_spec, manifest.model_facts
    size = manifest.size_bytes(folder)
    rows = [
        ("target", f"{manifest.target} ({manifest.precision.value})"),
        ("model file", f"{manifest.model_file}  ({size / 1e6:.2f} MB in all; sha256 verified)"),
        ("source", f"{facts.kind}: {facts.ident}"),
        ("family", _family_line(facts)),
        ("input", f"{spec.shape(1)} {spec.layout.value}, mean {spec.mean}, std {spec.std}, {spec.interpolation}"),
        *([("classes", classes)] if (classes := _classes_line(manifest)) else []),
        ("parity", _parity_line(manifest.parity)),
        *([("quantized", _quantization_line(manifest.quantization))] if manifest.quantization else []),
        ("created", f"{manifest.created_at} with torch {manifest.tool_versions.get('torch', '?')}"),
    ]
    return rows + _npu_rows(manifest.npu_estimate) + _sqnr_rows(manifest.quantization or {})


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
    given = manifest.source.get("class_names_from")
    return names_summary(names) + (f" (from --class-names {given})" if given else " (the model's own)")


def _npu_rows(estimate: dict[str, Any] | None) -> list[tuple[str, str]]:
    from vit_edge.benchmarking.report import npu_estimate_lines

    return [("npu" if index == 0 else "", line) for index, line in enumerate(npu_estimate_lines(estimate))] \
        if estimate else []


def tune_table(document: dict[str, Any], out: Path, max_drop: float) -> list[str]:
    """`vit-edge tune`: the Pareto front as a markdown table, then the artifact it chose."""
    lines = ["| candidate | threads | hint | p50 ms | top-1 % | drop pt |", "|---|---|---|---|---|---|"]
    for row in document["pareto_front"]:
        lines.append(f"| {row['candidate']} | {row['threads']} | {row['hint']} | {row['p50_ms']:.2f} "
                     f"| {row['top1']:.2f} | {row['drop']:.2f} |")
    chosen = document["chosen"]
    lines.append(f"{out / 'chosen'}  ({chosen['candidate']}, {chosen['threads']} threads, hint {chosen['hint']}: "
                 f"{chosen['p50_ms']:.2f} ms, drop {chosen['drop']:.2f} pt ≤ {max_drop})")
    return lines
