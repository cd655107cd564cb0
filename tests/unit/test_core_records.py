"""Typed records and their JSON (core/records.py), and the formats they read: every manifest, delegation.json and
bench.jsonl line that vit-edge wrote before its sections were typed reads into its records and writes back the same
JSON (tests/fixtures/written_before_records.json.gz, made by the commit before; see SOURCES in it)."""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers import FIXTURES
from vit_edge.benchmarking.record import BenchRecord, HostFacts
from vit_edge.core.identity import Provenance
from vit_edge.core.manifest import MANIFEST_HASH, DelegationReport, Manifest, manifest_digest
from vit_edge.core.parity import ParityCheck
from vit_edge.core.records import as_json, extra, flat, from_json, optional, renamed
from vit_edge.core.summaries import Accuracy, NpuEstimate, QuantSummary
from vit_edge.core.types import SessionInfo
from vit_edge.runtime.measure import DeviceFacts

WRITTEN_BEFORE = json.loads(gzip.decompress((FIXTURES / "written_before_records.json.gz").read_bytes()))


@dataclass(frozen=True)
class Inner:
    a: int
    b: float | None  # written as null: no marker


@dataclass(frozen=True)
class Outer:
    name: str = renamed("id")
    sizes: tuple[int, ...] = ()
    note: str | None = optional()
    inner: Inner | None = flat(None)
    nested: Inner | None = optional()
    either: int | tuple[int, int] | None = optional()
    rest: dict[str, Any] = extra()


def test_markers_keep_a_format_exactly() -> None:
    data = {"id": "x", "sizes": [1, 2], "a": 3, "b": None, "nested": {"a": 1, "b": 2.5}, "either": [4, 5], "new": 1}
    record = from_json(Outer, data)
    assert record == Outer("x", (1, 2), None, Inner(3, None), Inner(1, 2.5), (4, 5), {"new": 1})
    assert as_json(record) == data and "note" not in as_json(record)  # absent stays absent, null stays null
    assert from_json(Outer, {"id": "y", "either": 7}).inner is None  # a flat record without its fields is absent


@pytest.mark.parametrize("data, words", [
    ({"id": 3}, "Outer.id must be str, not int"),
    ({"id": "x", "sizes": [1, "2"]}, "Outer.sizes[1] must be int, not str"),
    ({"id": "x", "nested": {"a": 1}}, "Inner has no 'b'"),
    ({"id": "x", "nested": [1]}, "Inner must be a JSON object, not list"),
    ({"id": "x", "either": [1, 2, 3]}, "Outer.either is none of int | tuple"),
    ({"id": "x", "a": True, "b": 1.0}, "Inner.a must be int, not bool"),
])
def test_a_value_of_another_type_is_refused_naming_where(data: dict[str, Any], words: str) -> None:
    with pytest.raises((TypeError, ValueError), match=words.replace("|", r"\|").replace("[", r"\[")):
        from_json(Outer, data)


def test_a_number_too_large_for_a_float_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="too large"):
        from_json(Inner, {"a": 1, "b": 10**400})


@pytest.mark.parametrize("name", sorted(WRITTEN_BEFORE["manifests"]))
def test_manifests_written_before_read_typed_and_write_back_the_same(name: str) -> None:
    data = WRITTEN_BEFORE["manifests"][name]
    assert data[MANIFEST_HASH] == manifest_digest(data)  # untouched since it was written
    manifest = Manifest.from_json(data)
    assert isinstance(manifest.source, Provenance) and manifest.source.kind and manifest.source.weights_sha256
    assert manifest.parity is None or isinstance(manifest.parity.runtime, SessionInfo)
    assert manifest.quantization is None or isinstance(manifest.quantization.accuracy, Accuracy)
    assert manifest.npu_estimate is None or isinstance(manifest.npu_estimate, NpuEstimate)
    body = {key: value for key, value in data.items() if key != MANIFEST_HASH}
    assert json.dumps(manifest.to_json(), sort_keys=True) == json.dumps(body, sort_keys=True)
    assert manifest_digest(manifest.to_json()) == data[MANIFEST_HASH]


def test_every_section_of_the_written_before_corpus_is_typed_somewhere() -> None:
    """The corpus covers what the typed sections hold: not only the common case."""
    manifests = [Manifest.from_json(data) for data in WRITTEN_BEFORE["manifests"].values()]
    sources = {m.source.kind for m in manifests}
    assert {"shipped", "module", "transreid", "reference"} <= sources
    assert any(m.source.hf_architecture and m.source.hf_output for m in manifests)  # a transformers model
    assert any(m.source.reid and m.source.reid.camera for m in manifests)
    assert any(m.source.merge for m in manifests) and any(m.source.output_shape for m in manifests)
    assert any(m.parity is None for m in manifests)  # --no-verify: `{}` in the JSON
    assert any(m.parity and m.parity.runtime and m.parity.runtime.delegation for m in manifests)
    summaries = [m.quantization for m in manifests if m.quantization is not None]
    assert any(q.accuracy.kept_float_for_budget for q in summaries)  # the budget kept a matmul float
    assert any(q.accuracy.int16_for_budget for q in summaries)  # ... and gave an op INT16 activations
    assert any(q.accuracy.disagreement is not None for q in summaries)  # unlabelled: named so
    assert any(q.accuracy.depth is not None and q.float_ops for q in summaries)  # a dense model
    assert any(q.qat is not None and q.qat.history for q in summaries)
    assert any(q.lowering and q.lowering.integer_graph for q in summaries) and any(m.npu_estimate for m in manifests)


def test_delegation_reports_written_before_read_back_the_same() -> None:
    for data in WRITTEN_BEFORE["delegation"].values():
        assert as_json(from_json(DelegationReport, data)) == data


def test_bench_lines_written_before_read_typed_and_keep_their_keys() -> None:
    lines = WRITTEN_BEFORE["bench"]
    for data in lines:
        record = BenchRecord.from_json(data)
        assert record.host is None or isinstance(record.host, HostFacts)
        assert record.device_fingerprint is None or isinstance(record.device_fingerprint, DeviceFacts)
        assert json.dumps(record.to_json(), sort_keys=True) == json.dumps(data, sort_keys=True)
    assert any(BenchRecord.from_json(data).profile is not None for data in lines)
    assert any(BenchRecord.from_json(data).eval_labels for data in lines)
    assert any(key.startswith("depth_") for data in lines for key in data)  # kept beside the fields, as before


def test_a_quantization_summary_without_the_optional_parts_reads() -> None:
    """A summary as a PTQ without lowering, budget or scoring writes it: each absent part stays None."""
    data = {"recipe": {}, "int8_matmuls": ["a"], "kept_float": [], "int16_activations": [], "smoothquant_alpha": {},
            "sqnr_db": {"a": 30.0}, "scales_sha256": "0" * 64, "accuracy": {"images": 8, "cosine": 0.99,
                                                                           "min_cosine": 0.98}, "method": "ptq"}
    summary = from_json(QuantSummary, data)
    assert summary.lowering is None and summary.accuracy.depth is None and summary.accuracy.drop is None
    assert as_json(summary) == data


def test_a_parity_check_names_its_fields() -> None:
    with pytest.raises(ValueError, match="ParityCheck has no 'passed'"):
        from_json(ParityCheck, {"samples": 2, "tokens_per_sample": 1, "max_abs_diff": 0.0, "mean_abs_diff": 0.0,
                                "min_cosine": 1.0, "mean_cosine": 1.0, "tolerance_min_cosine": 0.9,
                                "near_ties_may_flip": False, "disagreements_beyond_near_ties": 0, "output": "logits"})
