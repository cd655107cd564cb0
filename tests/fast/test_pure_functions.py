"""The pure functions the verbs are built on, checked on hand-made numbers (no model, no converter)."""
from __future__ import annotations

import numpy as np
import pytest

from vit_edge.benchmarking.devices import AdbDevice, LocalDevice, SshDevice, parse_device
from vit_edge.benchmarking.record import BenchRecord
from vit_edge.benchmarking.report import pareto_front
from vit_edge.core.errors import DataError, DeviceError
from vit_edge.core.output_kinds import OUTPUTS
from vit_edge.core.parity import TOLERANCES, compare_logits, judge
from vit_edge.core.types import InputSpec, Layout, Precision
from vit_edge.data.preprocess import preprocess_uint8, resize_center_crop


# -- the near-tie rule ------------------------------------------------------------------------------------------
def _noisy(samples: int = 32, classes: int = 100, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Reference logits with clear winners, and a candidate that differs by small noise everywhere."""
    rng = np.random.default_rng(0)
    reference = rng.normal(0.0, 1.0, (samples, classes))
    reference[np.arange(samples), rng.integers(0, classes, samples)] += 5.0  # margins of several units
    return reference, reference + rng.normal(0.0, noise, reference.shape)


def test_noise_alone_flips_nothing_and_passes_int8() -> None:
    reference, candidate = _noisy()
    found = judge(reference, candidate, Precision.INT8)
    assert found.top1_disagreements == 0 and found.passed


def test_a_flip_at_a_near_tie_is_forgiven_at_int8_but_not_at_fp32() -> None:
    reference, candidate = _noisy()
    top = reference[0].argmax()
    runner_up = np.argsort(reference[0])[-2]
    reference[0, runner_up] = reference[0, top] - 0.01  # margin 0.01: well inside the noise
    candidate[0] = reference[0]
    candidate[0, runner_up] += 0.03  # the runner-up overtakes by noise-sized moves
    found = judge(reference, candidate, Precision.INT8)
    assert found.top1_disagreements == 1 and found.disagreements_beyond_near_ties == 0 and found.passed
    assert not judge(reference, candidate, Precision.FP32).passed


def test_a_clear_flip_fails_int8_where_the_cosine_alone_would_pass() -> None:
    """Two outputs swapped in one sample of 1,000 classes (a mislabelled output, say) while everything else agrees:
    the cosine stays above INT8's 0.98, and the flip, far outside that sample's noise, fails it."""
    reference, candidate = _noisy(classes=1000, noise=0.01)
    top, runner_up = np.argsort(reference[3])[-1], np.argsort(reference[3])[-2]
    candidate[3, [top, runner_up]] = reference[3, [runner_up, top]]
    found = compare_logits(reference, candidate)
    assert found.top1_disagreements == 1 and found.flip_margins_in_noise[0] > 6
    assert found.min_cosine >= TOLERANCES[Precision.INT8].min_cosine  # the cosine would let it through
    verdict = judge(reference, candidate, Precision.INT8)
    assert verdict.disagreements_beyond_near_ties == 1 and not verdict.passed


def test_a_collapsed_output_fails_on_the_cosine() -> None:
    """The flip rule measures a flip against that sample's own error; a gross error is the cosine's to catch."""
    reference, candidate = _noisy()
    winner = reference[3].argmax()
    candidate[3, winner] = reference[3, winner] - 8.0
    verdict = judge(reference, candidate, Precision.INT8)
    assert verdict.top1_disagreements == 1 and verdict.min_cosine < 0.98 and not verdict.passed


def test_embeddings_are_judged_by_cosine_alone() -> None:
    reference, candidate = _noisy(noise=1e-4)
    top = reference[0].argmax()
    runner_up = np.argsort(reference[0])[-2]
    reference[0, runner_up] = reference[0, top] - 0.001
    candidate[0] = reference[0]
    candidate[0, runner_up] += 0.002  # the largest component changes: an index that means nothing here
    assert not judge(reference, candidate, Precision.FP32).passed
    assert judge(reference, candidate, Precision.FP16, OUTPUTS["embedding"]).passed
    assert not judge(reference, -reference, Precision.FP16, OUTPUTS["embedding"]).passed  # cosine -1


# -- the Pareto front -------------------------------------------------------------------------------------------
def _row(name: str, p50: float, top1: float | None, status: str = "ok", agreement: float | None = None
         ) -> BenchRecord:
    return BenchRecord(name, "local", 1, 1, status=status, artifact_id=name, p50_ms=p50, top1=top1,
                       agreement_top1=agreement)


def test_pareto_front_keeps_only_undominated_rows_in_latency_order() -> None:
    rows = [_row("fast-bad", 1.0, 80.0), _row("slow-good", 5.0, 90.0), _row("dominated", 6.0, 85.0),
            _row("mid", 3.0, 88.0), _row("tie-slower", 3.5, 88.0), _row("failed", 0.5, 99.0, status="crashed")]
    assert [r.artifact_id for r in pareto_front(rows)] == ["fast-bad", "mid", "slow-good"]


def test_pareto_front_uses_agreement_when_there_is_no_top1() -> None:
    rows = [_row("a", 2.0, None, agreement=99.0), _row("b", 1.0, None, agreement=98.0),
            _row("c", 3.0, None)]  # no accuracy: not on the front
    assert [r.artifact_id for r in pareto_front(rows)] == ["b", "a"]


def test_a_bench_record_keeps_what_a_device_reports_beyond_its_fields() -> None:
    record = BenchRecord("a", "adb:x", 1, 1)
    record.update({"status": "ok", "p50_ms": 2.5, "init_ms": 12.0})
    assert record.p50_ms == 2.5 and record.extra == {"init_ms": 12.0}
    line = record.to_json()
    assert line["init_ms"] == 12.0 and line["p50_ms"] == 2.5 and "extra" not in line
    assert BenchRecord.from_json(line) == record


# -- device addresses -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("local", LocalDevice()), ("", LocalDevice()),
    ("ssh://pi@board.local:2222", SshDevice(host="board.local", user="pi", port=2222)),
    ("ssh://jetson", SshDevice(host="jetson")), ("ssh://[::1]:22", SshDevice(host="::1")),
    ("adb:emulator-5554", AdbDevice("emulator-5554")),
])
def test_device_addresses_parse(text: str, expected: object) -> None:
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["ssh://-oProxyCommand=x", "ssh://h:70000", "adb:-s", "ftp://h", "ssh://a b"])
def test_bad_device_addresses_are_refused(text: str) -> None:
    with pytest.raises(DeviceError):
        parse_device(text)


# -- resize and center crop -------------------------------------------------------------------------------------
def test_square_resize_keeps_aspect_then_crops_the_center() -> None:
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[:, 30:50] = 255  # a white band in the middle of a wide image
    spec = InputSpec(img_size=20, crop_pct=1.0)
    out = resize_center_crop(image, spec)
    assert out.shape == (20, 20, 3)  # short side → 20, long side → 40, centre 20 columns kept
    assert out[:, 6:14].min() > 200 and out[:, :3].max() < 50 and out[:, -3:].max() < 50


def test_crop_pct_resizes_beyond_the_crop() -> None:
    image = np.arange(100 * 100, dtype=np.float64).reshape(100, 100) % 256
    spec = InputSpec(img_size=80, channels=1, mean=(0.5,), std=(0.5,), crop_pct=0.8)
    assert resize_center_crop(image.astype(np.uint8), spec).shape == (80, 80)  # 100 → 100, crop 80


def test_non_square_input_resizes_both_sides() -> None:
    spec = InputSpec(img_size=(32, 16), crop_pct=1.0)
    assert resize_center_crop(np.zeros((64, 64, 3), dtype=np.uint8), spec).shape == (32, 16, 3)


def test_preprocess_normalises_and_lays_out() -> None:
    images = np.full((2, 4, 4, 3), 255, dtype=np.uint8)
    spec = InputSpec(img_size=4, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    nchw = preprocess_uint8(images, spec)
    assert nchw.shape == (2, 3, 4, 4) and np.allclose(nchw, 1.0)
    nhwc = preprocess_uint8(images, spec.with_(layout=Layout.NHWC))
    assert nhwc.shape == (2, 4, 4, 3)
    with pytest.raises(DataError):
        preprocess_uint8(np.zeros((2, 4, 4, 2), dtype=np.uint8), spec)


def test_a_fleet_is_checked_when_made_and_only_then() -> None:
    """A Fleet refuses a device listed twice (address or name) and an unparsable address as it is made; api.bench
    takes a made one as it is, and makes one from addresses before measuring anything."""
    from vit_edge.api import bench
    from vit_edge.benchmarking.fleet import Fleet, FleetDevice
    from vit_edge.core.errors import ConfigError, DeviceError

    assert Fleet.of([]).plain_single == FleetDevice("local")
    assert Fleet.of([FleetDevice("local", name="here")]).plain_single is None
    for listed in (["local", "local"], [FleetDevice("ssh://a", name="x"), FleetDevice("ssh://b", name="x")]):
        with pytest.raises(ConfigError, match="listed twice"):
            Fleet.of(listed)
    with pytest.raises(DeviceError):
        Fleet.of(["telnet://box"])
    with pytest.raises(ConfigError, match="listed twice"):
        bench(["no-such-artifact"], devices=["ssh://a", "ssh://a"])
