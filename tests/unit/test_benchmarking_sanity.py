"""Sanity rules: a number at chance level, a noisy timing, threads above the cores and an INT8 file slower than
its FP32 one each get a warning; ordinary numbers get none (each rule can fail and can pass)."""
from __future__ import annotations

from vit_edge.benchmarking.record import BenchRecord, HostFacts
from vit_edge.benchmarking.sanity import warnings_for
from vit_edge.core import sanity


def test_accuracy_near_chance_or_one_class_is_said() -> None:
    assert "near chance (10.00 % for 10 classes)" in sanity.accuracy_warning("a", 10.0, 10)
    assert "95 % of the images got the same prediction" in sanity.accuracy_warning("a", 30.0, 10, 0.95)
    assert sanity.accuracy_warning("a", 86.0, 10, 0.12) is None
    assert sanity.accuracy_warning("a", 55.0, 2) is not None  # two classes: 55 % is a coin
    assert sanity.accuracy_warning("a", 70.0, 2) is None  # … and 70 % is not, though under 1.5× chance


def test_timing_threads_and_int8_rules() -> None:
    assert "23.0× the p50" in sanity.timing_warning("a", 0.37, 8.51)
    assert sanity.timing_warning("a", 1.0, 1.2) is None
    assert "8 threads on 2 cores" in sanity.threads_warning("a", 8, 2)
    assert sanity.threads_warning("a", 2, 2) is None
    assert "INT8 is slower than FP32 (0.69 against 0.37 ms p50)" in sanity.int8_slower_warning("a", 0.69, 0.37)
    assert sanity.int8_slower_warning("a", 0.30, 0.37) is None


def _row(precision: str, p50: float, p90: float, top1: float | None = None, **extra: object) -> BenchRecord:
    record = BenchRecord(artifact=f"/x/{precision}", device="local", threads=2, batch=1, artifact_id=precision,
                         runtime="onnxruntime", precision=precision, source="fmnist-vit-tiny", p50_ms=p50,
                         p90_ms=p90, top1=top1, host=HostFacts(cores=2))
    record.update(extra)
    return record


def test_the_demo_report_gets_its_warnings() -> None:
    """The demo's report: ONNX FP32 with p90 23× its p50, INT8 reading 0.69 ms against FP32's 0.37 ms."""
    rows = [_row("fp32", 0.37, 8.51, 88.0, labelled_classes=10, top_class_share=0.11),
            _row("int8", 0.69, 0.75, 87.9, labelled_classes=10, top_class_share=0.11)]
    found = warnings_for(rows)
    assert len(found) == 2 and "p90 is 23.0×" in found[1] and "INT8 is slower than FP32" in found[0]
    quiet = [_row("fp32", 0.40, 0.45, 88.0, labelled_classes=10), _row("int8", 0.30, 0.33, 87.9)]
    assert warnings_for(quiet) == []
    guessing = [_row("fp32", 0.40, 0.45, 10.0, labelled_classes=10, top_class_share=1.0)]
    assert "100 % of the images got the same prediction" in warnings_for(guessing)[0]
