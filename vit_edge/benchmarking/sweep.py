"""`vit-edge bench`: a sweep over artifacts × threads × batch sizes, each configuration in its own process.

One failing artifact becomes a status row and the sweep goes on. Accuracy is measured once per artifact (it does
not depend on threads or batch) and compared with a reference artifact when one is named.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np

from vit_edge.benchmarking.devices import LocalDevice, SshDevice, parse_device
from vit_edge.benchmarking.record import BenchRecord, HostFacts
from vit_edge.benchmarking.runner_process import progress_args, run_measuring
from vit_edge.core.depth_metrics import depth_scores, depth_verdict, truth_scores
from vit_edge.core.errors import ArtifactError, ConfigError, DiskFullError, VitEdgeError
from vit_edge.core.manifest import MANIFEST_NAME, Manifest, read_manifest
from vit_edge.core.options import check_count, check_counts, check_number
from vit_edge.core.output_kinds import Measure
from vit_edge.core.outputs import replace_file, reserved_array, save_array, scratch_folder, write_atomically
from vit_edge.core.parity import Verdict
from vit_edge.core.progress import Tracker, tracking
from vit_edge.core.records import as_json, flat, from_json, optional
from vit_edge.core.segmentation_metrics import ClassMapFiles, keeps_class_maps, kept_files
from vit_edge.core.targets import PYTORCH
from vit_edge.data.depth_truth import DepthFiles, check_depth_files, depth_files, prepared_depth
from vit_edge.data.sources import DataOptions, ImageSource
from vit_edge.runtime.measure import MeasureConfig, Measurement, RunSettings, config_to_json
from vit_edge.runtime.runner import RESULT_PREFIX

__all__ = ["BenchConfig", "check_some_artifact", "bench", "host_fingerprint", "failed_records", "Agreement"]


@dataclass(frozen=True)
class BenchConfig(RunSettings):
    """A bench: the run settings every configuration shares (RunSettings), the thread and batch sweep, the machine,
    the data and the reference the outputs are compared with."""

    threads: tuple[int, ...] = (1,)
    batches: tuple[int, ...] = (1,)
    device: str = "local"  # the machine: local, ssh://user@host, adb:SERIAL; `accelerator` is within its runtime
    data: str | None = None  # any image source: class folders, a flat folder, a list file, .npy/.npz, a dataset name
    eval_limit: int | None = None
    data_options: DataOptions = DataOptions()
    reference: str | None = None
    timeout_s: float = 600.0
    ssh_options: tuple[str, ...] = ()
    remote_python: str = "python3"
    adb_benchmark: str = "/data/local/tmp/benchmark_model"

    def __post_init__(self) -> None:
        """Checked here for the API as for the CLI: `threads=(0,)` would reach the runtime as 'all cores'."""
        super().__post_init__()
        check_counts("threads", self.threads)
        check_counts("batches", self.batches)
        check_count("eval_limit", self.eval_limit, optional=True)
        check_number("timeout_s", self.timeout_s, least=1e-3)
        if isinstance(self.reference, (str, os.PathLike)) and self.data is None:  # it was dropped without a word
            raise ConfigError(f"--reference {self.reference} compares outputs on images, and this bench has none: "
                              "pass --data (any images, labels not needed), or leave --reference out")


def check_some_artifact(paths: list[str]) -> None:
    """Refuse a bench where no path is an artifact (a typo, or nothing exported yet) before a report is written;
    one bad path among artifacts stays a status row, so a sweep over many goes on."""
    if not paths:
        raise ConfigError("no artifact to bench: give one or more folders that vit-edge export wrote")
    if any((Path(path) / MANIFEST_NAME).is_file() for path in paths):
        return
    try:
        read_manifest(paths[0])
    except ArtifactError as exc:
        others = f" (nor is any of the other {len(paths) - 1} paths)" if len(paths) > 1 else ""
        raise ArtifactError(f"{exc}{others}") from None


def host_fingerprint() -> HostFacts:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return HostFacts(hostname=platform.node(), machine=platform.machine(), system=platform.system(), cpu=cpu,
                     cores=os.cpu_count(), python=platform.python_version())


def _parse_result(proc: subprocess.CompletedProcess[str]) -> Measurement:
    """The measuring process's RESULT line, read into its record; a process that printed none crashed."""
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            try:
                return from_json(Measurement, json.loads(line[len(RESULT_PREFIX):]))
            except (TypeError, ValueError) as exc:
                return Measurement.failed("crashed", f"the measuring process answered what this vit-edge cannot "
                                                     f"read ({exc}): is the board's vit-edge another version?")
    last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return Measurement.failed("crashed", last)


class _LocalExecutor:
    def __init__(self, cfg: BenchConfig, workdir: Path) -> None:
        self.cfg, self.workdir = cfg, workdir

    def __enter__(self) -> "_LocalExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def run(self, measure: MeasureConfig, tag: str) -> Measurement:
        config_file = self.workdir / f"{tag}.json"
        write_atomically(config_file, json.dumps(config_to_json(measure)))
        try:
            proc = run_measuring([sys.executable, "-m", "vit_edge.runtime.runner", str(config_file), *progress_args()],
                                 self.cfg.timeout_s, env={**os.environ, "PYTHONPATH": _package_parent()})
        except subprocess.TimeoutExpired:
            return Measurement.failed("timeout", f"no result within {self.cfg.timeout_s:.0f} s")
        return _parse_result(proc)


def _package_parent() -> str:
    parent = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join([parent, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)


class _SshExecutor:
    """Copies the runner zip, the data and each artifact once, then runs every configuration on the board."""

    def __init__(self, cfg: BenchConfig, workdir: Path, device: SshDevice) -> None:
        from vit_edge.benchmarking.remote import SshRunner, build_runner_zip

        self.cfg, self.workdir = cfg, workdir
        self.remote = SshRunner(device, cfg.ssh_options, cfg.timeout_s, cfg.remote_python)
        self.zip = build_runner_zip(workdir / "runner.pyz")
        self.copied: dict[str, str] = {}

    def __enter__(self) -> "_SshExecutor":
        self.remote.__enter__()
        try:
            self.remote_zip = self.remote.put(self.zip, "runner.pyz")
        except BaseException:  # __exit__ does not run when __enter__ fails: remove the board's folder here
            self.remote.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remote.__exit__(*exc)

    def _remote_path(self, local: str | None) -> str | None:
        if local is None:
            return None
        if local not in self.copied:
            self.copied[local] = self.remote.put(Path(local), f"f{len(self.copied)}-{Path(local).name}")
        return self.copied[local]

    def run(self, measure: MeasureConfig, tag: str) -> Measurement:
        remote_logits = f"{self.remote.remote_dir}/{tag}.npy" if measure.logits_out else None
        remote_cfg = replace(measure, artifact=self._remote_path(measure.artifact) or "",
                             data_images=self._remote_path(measure.data_images),
                             data_labels=self._remote_path(measure.data_labels),
                             data_masks=self._remote_path(measure.data_masks), logits_out=remote_logits)
        proc = self.remote.run_runner(self.remote_zip, config_to_json(remote_cfg))
        result = _parse_result(proc)
        if result.ok and remote_logits and measure.logits_out:
            manifest = read_manifest(measure.artifact, verify_files=False)  # which files its run kept
            for remote, local in zip(kept_files(PurePosixPath(remote_logits), manifest.output),
                                     kept_files(Path(measure.logits_out), manifest.output)):
                self.remote.get(str(remote), Path(local))
        return result


def _executor(cfg: BenchConfig, workdir: Path) -> Any:
    device = parse_device(cfg.device)
    if isinstance(device, LocalDevice):
        return _LocalExecutor(cfg, workdir)
    if isinstance(device, SshDevice):
        return _SshExecutor(cfg, workdir, device)
    from vit_edge.benchmarking.adb import AdbExecutor

    return AdbExecutor(cfg, workdir, device)


@dataclass(frozen=True)
class EvalData:
    """The evaluation images prepared for one input spec, on disk (a memory-mapped .npy: any number of images in
    bounded memory), with labels matched to that artifact's classes (None for an embedding or unlabelled data)."""

    images: Path
    labels: Path | None
    labels_from: str
    skipped: int
    masks: Path | None = None  # segmentation: the images' masks as class maps at the input size (data/masks.py)
    depth: Path | None = None  # ground-truth depth at the input ((N, H, W) metres), for a depth artifact

    def scored(self, result: Measurement) -> Measurement:
        """`result` of the configuration that scored these images, with how they were labelled (or 'masks') and
        how many files could not be read."""
        found = "masks" if self.masks is not None else self.labels_from or "none (agreement only)"
        return replace(result, eval_labels=found, eval_skipped=self.skipped)

    @property
    def count(self) -> int:
        """How many prepared images (read from the .npy header, not the images)."""
        return int(np.load(self.images, mmap_mode="r").shape[0])


class Manifests:
    """Each artifact's manifest, read once per bench run with its files hashed once; every step of the run asks
    here (a damaged one keeps its error, raised again to each step that asks)."""

    def __init__(self) -> None:
        self._read: dict[str, Manifest | VitEdgeError] = {}
        self.reads = 0  # how many times a manifest was really read (the tests count)

    def get(self, path: str | Path) -> Manifest:
        key = str(path)
        if key not in self._read:
            self.reads += 1
            try:
                self._read[key] = read_manifest(key)
            except VitEdgeError as exc:
                self._read[key] = exc
        found = self._read[key]
        if isinstance(found, VitEdgeError):
            raise found
        return found


class EvalFiles:
    """Each artifact's evaluation files, prepared once per distinct preprocessing and label mapping."""

    def __init__(self, cfg: BenchConfig, workdir: Path, progress: Callable[[str], None]) -> None:
        from vit_edge.data.sources import open_images

        self.cfg, self.workdir, self.progress = cfg, workdir, progress
        self.source: ImageSource | None = None
        self.truth: DepthFiles | None = None
        if cfg.data is not None:
            self.source = open_images(cfg.data, cfg.data_options).take(cfg.eval_limit)
            self.truth = depth_files(self.source, cfg.data_options)
            if self.truth is not None:  # every map checked before anything is measured: a bad one stops here
                check_depth_files(self.truth, self.source)
        self._made: dict[str, EvalData] = {}
        self.manifests = Manifests()

    def check(self, manifest: Manifest) -> None:
        """Match the labels to `manifest`'s classes now: a name that matches none stops before any measurement; a
        segmentation artifact's masks are read and checked now (a bad mask stops likewise)."""
        self._labels(manifest)
        if self._mask_labels(manifest) is not None:
            self.for_artifact(manifest)

    def _mask_labels(self, manifest: Manifest) -> Any:
        """How `manifest`'s model reads masks, when the data has masks and the artifact is scored by mIoU."""
        from vit_edge.core.segmentation_metrics import MaskLabels
        from vit_edge.data.masks import MaskedFiles

        if not isinstance(self.source, MaskedFiles) or manifest.output.eval_measure is not Measure.MIOU:
            return None
        return MaskLabels.from_source(manifest.model_ref.num_classes, manifest.source.mask_labels)

    def _labels(self, manifest: Manifest) -> Any:
        from vit_edge.data.datasets import labels_for

        ref = manifest.model_ref
        if self.source is None or not manifest.output.supports(Measure.TOP1) or self.source.labels is None:
            return None
        return labels_for(self.source, manifest.input_spec, ref.num_classes, self.cfg.data_options)

    def for_artifact(self, manifest: Manifest) -> EvalData | None:
        if self.source is None:
            return None
        labels, masks = self._labels(manifest), self._mask_labels(manifest)
        spec = manifest.input_spec  # what decides the prepared pixels; layout and class names do not
        key = json.dumps([spec.height, spec.width, spec.channels, spec.interpolation, spec.crop_pct, spec.crop_mode,
                          spec.crop_offset, None if labels is None else hashlib.sha256(labels.labels).hexdigest(),
                          None if masks is None else repr(masks), self._scores_depth(manifest)])
        if key not in self._made:
            self._made[key] = self._write(manifest, labels, len(self._made), masks)
        return self._made[key]

    def _scores_depth(self, manifest: Manifest) -> bool:
        return self.truth is not None and manifest.output.supports(Measure.DEPTH_TRUTH)

    def _write(self, manifest: Manifest, labels: Any, number: int, mask_labels: Any = None) -> EvalData:
        from vit_edge.data.masks import MaskedFiles, prepare_masks
        from vit_edge.data.sources import fill_images

        spec, source = manifest.input_spec, self.source
        if source is None:
            raise ConfigError("no evaluation data was given (--data)")
        self.progress(f"  preparing {len(source)} images of {source.origin} for {spec.height}x{spec.width} …")
        images_path = self.workdir / f"eval{number}-images.npy"
        shape = (len(source), spec.height, spec.width, spec.channels)
        images = reserved_array(images_path, np.uint8, shape)  # a full disk: one line, not a SIGBUS later
        indices = fill_images(images, source, spec, self.progress)
        count = len(indices)
        images.flush()
        del images
        if count < len(source):
            _truncate_npy(images_path, count, shape)
        labels_path = masks_path = None
        if labels is not None:
            labels_path = self.workdir / f"eval{number}-labels.npy"
            save_array(labels_path, labels.labels[indices])
        if mask_labels is not None and isinstance(source, MaskedFiles):
            masks_path = self.workdir / f"eval{number}-masks.npy"
            save_array(masks_path, prepare_masks(source, indices, spec, mask_labels, self.progress))
        return EvalData(images_path, labels_path, labels.how if labels is not None else "", len(source) - count,
                        masks_path, self._prepared_depth(manifest, source, indices, number))

    def _prepared_depth(self, manifest: Manifest, source: ImageSource, indices: np.ndarray,
                        number: int) -> Path | None:
        """The ground-truth maps of the images kept, at `manifest`'s input, on disk; None where not scored."""
        if self.truth is None or not self._scores_depth(manifest):
            return None
        spec = manifest.input_spec
        depth_path = self.workdir / f"eval{number}-depth.npy"
        depth = reserved_array(depth_path, np.float32, (len(indices), spec.height, spec.width))
        prepared_depth(self.truth, source, indices, spec, out=depth)
        depth.flush()
        del depth
        return depth_path


def _truncate_npy(path: Path, count: int, shape: tuple[int, ...]) -> None:
    """Rewrite a memory-mapped .npy's header for its first `count` images (the rest were unreadable files)."""
    if count == 0:
        from vit_edge.core.errors import DataError

        raise DataError("none of the evaluation images could be read")
    old = np.load(path, mmap_mode="r")
    new_path = path.with_suffix(".part.npy")
    new = reserved_array(new_path, np.uint8, (count, *shape[1:]))
    for start in range(0, count, 256):
        stop = min(start + 256, count)
        new[start:stop] = old[start:stop]
    new.flush()
    del new, old
    replace_file(new_path, path)


def _record(path: str, manifest: Manifest | None, cfg: BenchConfig, threads: int, batch: int,
            result: Measurement) -> BenchRecord:
    record = BenchRecord(artifact=path, device=cfg.device, threads=threads, batch=batch, artifact_id=Path(path).name,
                         created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                         host=host_fingerprint())
    if manifest is not None:
        record.target, record.precision = manifest.target, manifest.precision.value
        record.size_mb, record.source = manifest.size_bytes(Path(path)) / 1e6, manifest.model_ref.ident
        record.npu_estimate = manifest.npu_estimate
    record.update(as_json(result))
    return record


def failed_records(artifacts: list[str], cfg: BenchConfig, exc: Exception) -> list[BenchRecord]:
    """One status row per configuration that could not be measured because of `exc` (a device that failed)."""
    return [_record(path, None, cfg, threads, batch, Measurement.failed(type(exc).__name__, str(exc)))
            for path in artifacts for threads in cfg.threads for batch in cfg.batches]


@dataclass(frozen=True)
class DepthAgreement:
    """A depth map's own measures against the reference's (core/depth_metrics.py), as bench rows name them."""

    depth_abs_rel: float | None
    depth_delta1: float | None
    depth_sqnr_db: float
    depth_valid_share: float


@dataclass(frozen=True)
class SegmentationAgreement:
    """A segmentation map's measures against the reference's (core/segmentation_metrics.py), as bench rows name
    them."""

    seg_pixel_agreement: float
    seg_min_pixel_agreement: float
    seg_miou_vs_reference: float | None


@dataclass(frozen=True)
class Agreement:
    """An artifact's outputs against the reference's on the same images: top-1 agreement (None where the output
    has no classes), mean cosine and on how many images it was measured (segmentation: the first SAMPLE_IMAGES,
    whose whole logits are kept), a depth map's measures, and 'mismatch' beyond the precision's tolerance."""

    agreement_top1: float | None = None
    agreement_cosine: float | None = None
    agreement_cosine_images: int | None = optional()
    depth: DepthAgreement | None = flat(None)
    segmentation: SegmentationAgreement | None = flat(None)
    # tokens, feature maps: the worst image's mean token cosine, and the worst token (held to a floor)
    agreement_min_image_cosine: float | None = optional()
    agreement_min_token_cosine: float | None = optional()
    status: str | None = optional()
    error: str | None = optional()


def _judged(verdict: Verdict, manifest: Manifest) -> Agreement:
    """The verdict's agreement and cosine, and 'mismatch' in one line where it did not pass."""
    from vit_edge.core.parity import agreement_words, cosine_words  # numpy only

    agreement = verdict.top1_agreement  # None where the output has no classes (tokens, embeddings)
    found = Agreement(agreement_top1=None if agreement is None else 100 * agreement,
                      agreement_cosine=verdict.mean_cosine, agreement_cosine_images=verdict.samples)
    if verdict.min_token_cosine is not None:  # tokens, feature maps: judged per image; the worst token on a floor
        found = replace(found, agreement_min_image_cosine=verdict.min_cosine,
                        agreement_min_token_cosine=verdict.min_token_cosine)
    if verdict.passed:
        return found
    return replace(found, status="mismatch", error=(
        f"disagrees with the reference beyond {manifest.precision.value} tolerance: {cosine_words(verdict)}"
        f"{agreement_words(verdict)}"))


def _agreement(logits: np.ndarray, reference: np.ndarray, manifest: Manifest) -> Agreement:
    """Agreement with the reference, held to the tolerance of the artifact's precision (fp32 < fp16 < int8):
    outside it the row's status becomes 'mismatch'."""
    from vit_edge.core.parity import judge  # numpy only

    if logits.shape != reference.shape:
        return Agreement(status="mismatch", error=f"output shape {logits.shape[1:]} differs from the reference's "
                                                  f"{reference.shape[1:]}")
    found = _judged(judge(reference, logits, manifest.precision, manifest.output), manifest)
    if found.status is None and manifest.output.supports(Measure.ABS_REL):  # a depth map: held to AbsRel ≤ 2 %
        scores = depth_scores(logits, reference)
        found = replace(found, depth=DepthAgreement(scores.abs_rel, scores.delta1, scores.sqnr_db, scores.valid_share))
        failure = depth_verdict(scores)
        if failure is not None:
            return replace(found, status="mismatch", error=f"depth {failure}")
    return found


def _segmentation_agreement(candidate: ClassMapFiles, reference: ClassMapFiles, manifest: Manifest) -> Agreement:
    """Pixel agreement, the worst image's and mIoU against the reference's class maps over every image (read a
    batch at a time), the cosine verdict on the sample both kept whole (core/segmentation_metrics.ClassMapFiles)."""
    from vit_edge.core.segmentation_metrics import class_map_agreement

    if not reference.exist():
        return Agreement(status="mismatch", error="the reference kept no class maps: its output is not "
                                                  "segmentation logits, so its pixels cannot be compared")
    got, ref = candidate.read(), reference.read()
    if got.classes.shape != ref.classes.shape or got.sample.shape != ref.sample.shape:
        return Agreement(status="mismatch", error=(
            f"class maps {got.classes.shape[1:]} of {got.sample.shape[1]} classes differ from the reference's "
            f"{ref.classes.shape[1:]} of {ref.sample.shape[1]} classes ({len(got.classes)} and "
            f"{len(ref.classes)} images)"))
    maps = class_map_agreement(got.classes, ref.classes, int(got.sample.shape[1]))
    found = _judged(replace(_sample_verdict(ref.sample, got.sample, manifest), segmentation=maps), manifest)
    if found.status is not None:
        return found
    return replace(found, segmentation=SegmentationAgreement(maps.pixel_agreement, maps.min_pixel_agreement,
                                                             maps.miou_vs_fp32))


def _sample_verdict(reference: np.ndarray, candidate: np.ndarray, manifest: Manifest) -> Verdict:
    """core/parity.judge of segmentation logits (one cosine per image), an image at a time: one ADE20K image's
    logits are 150 MB, and judge holds several float64 copies of what it is given."""
    from vit_edge.core.parity import judge  # numpy only

    each = [judge(np.asarray(reference[i : i + 1]), np.asarray(candidate[i : i + 1]), manifest.precision,
                  manifest.output) for i in range(len(reference))]
    cosines = [verdict.mean_cosine for verdict in each]  # one per image
    return replace(each[0], samples=len(each), min_cosine=float(np.min(cosines)), mean_cosine=float(np.mean(cosines)),
                   max_abs_diff=max(v.max_abs_diff for v in each),
                   mean_abs_diff=float(np.mean([v.mean_abs_diff for v in each])), passed=all(v.passed for v in each))


def _reference_predictions(cfg: BenchConfig, executor: Any, files: EvalFiles, workdir: Path, manifest: Manifest,
                           path: str) -> Path | None:
    """Where the reference's predictions on the same images are kept (logits_out, runtime/accuracy.predict): another
    artifact run the same way (with its own preprocessing), or the PyTorch model the artifact was exported from."""
    if cfg.reference is None:
        return None
    if cfg.reference == PYTORCH.name:
        data = files.for_artifact(manifest)
        return None if data is None else _pytorch_predictions(Path(path), manifest, data, workdir / "pytorch.npy")
    data = files.for_artifact(files.manifests.get(cfg.reference))
    if data is None:
        return None
    out = workdir / "reference.npy"
    measure = MeasureConfig(artifact=cfg.reference, warmup=0, runs=1, min_seconds=0.0, accelerator=cfg.accelerator,
                            precision_hint=cfg.precision_hint, data_images=str(data.images), logits_out=str(out))
    result = executor.run(measure, "reference")
    if not result.ok:
        raise VitEdgeError(f"reference {cfg.reference} failed: {result.error}")
    return out


def _pytorch_predictions(root: Path, manifest: Manifest, data: EvalData, out: Path) -> Path:
    """The declared "pytorch" runtime (the model the artifact came from) on the prepared images, here, kept at
    `out` as the runner keeps an artifact's (the same function)."""
    from vit_edge.runtime.accuracy import predict
    from vit_edge.runtime.base import SessionOptions, session_class

    session = session_class(PYTORCH.name)(root / manifest.model_file, SessionOptions())
    predict(session.run, np.load(data.images, mmap_mode="r"), manifest.input_spec, manifest.output, out)
    return out


def _bench_artifact(path: str, cfg: BenchConfig, executor: Any, workdir: Path, files: EvalFiles,
                    progress: Callable[[str], None], configs: Tracker) -> list[BenchRecord]:
    """The artifact's configurations, each counted on `configs` (the sweep's progress) once measured."""
    try:
        manifest = files.manifests.get(path)
        data = files.for_artifact(manifest)
    except DiskFullError:
        raise
    except VitEdgeError as exc:
        configs.advance(len(cfg.threads) * len(cfg.batches))
        progress(f"[{configs.done}/{configs.total}] {path}: {exc}")
        return [_record(path, None, cfg, t, b, Measurement.failed(type(exc).__name__, str(exc)))
                for t in cfg.threads for b in cfg.batches]
    records: list[BenchRecord] = []
    logits_file = workdir / f"logits-{abs(hash(path))}.npy"
    for threads in cfg.threads:
        for batch in cfg.batches:
            number = configs.done + 1
            first = not records
            with_data = first and data is not None
            measure = MeasureConfig.of(
                cfg, artifact=path, threads=threads, batch=batch, profile=cfg.profile and first,
                data_images=str(data.images) if with_data and data else None,
                data_labels=str(data.labels) if with_data and data and data.labels else None,
                data_masks=str(data.masks) if with_data and data and data.masks else None,
                logits_out=str(logits_file) if with_data else None, check_numerics=first,
                verify_files=first)  # the host hashed them; the runner checks its copy once per artifact
            scoring = f", then scoring {data.count} images" if with_data and data is not None else ""
            progress(f"[{number}/{configs.total}] {Path(path).name}: threads {threads}, batch {batch}{scoring} …")
            try:
                result = executor.run(measure, f"run{number}")
            except VitEdgeError as exc:
                result = Measurement.failed(type(exc).__name__, str(exc))
            configs.advance()
            if not result.ok:
                progress(f"    {result.status}: {result.error}")
            if with_data and data is not None:
                result = data.scored(result)
            records.append(_record(path, manifest, cfg, threads, batch, result))
    if data is not None and all(Path(file).is_file() for file in kept_files(logits_file, manifest.output)):
        _add_agreement(records, cfg, executor, files, workdir, manifest, path, logits_file, progress)
        if data.depth is not None:
            _add_truth(records, manifest, np.load(logits_file), np.load(data.depth, mmap_mode="r"))
    return records


def _add_truth(records: list[BenchRecord], manifest: Manifest, depth: np.ndarray, truth: np.ndarray) -> None:
    """AbsRel and δ<1.25 of the artifact's depth against the ground truth (a relative model aligned per image by
    least-squares scale and shift on disparity: core/depth_metrics.truth_scores); a task measure, not a pass/fail."""
    try:
        scores = truth_scores(depth, truth, relative=not manifest.model_facts.metric_depth)
    except VitEdgeError as exc:
        found: dict[str, Any] = {"depth_truth_error": str(exc)}
    else:
        found = {f"depth_truth_{key}": value for key, value in as_json(scores).items()}
    for record in records:
        if record.ok:
            record.update(found)


def _add_agreement(records: list[BenchRecord], cfg: BenchConfig, executor: Any, files: EvalFiles, workdir: Path,
                   manifest: Manifest, path: str, logits_file: Path, progress: Callable[[str], None]) -> None:
    try:
        reference = _reference_predictions(cfg, executor, files, workdir, manifest, path)
    except VitEdgeError as exc:
        progress(f"    agreement not measured: {exc}")
        for record in records:
            record.status, record.error = "reference failed", f"agreement not measured: {exc}"
        return
    if reference is None:
        return
    agreement = _agreement_of_files(logits_file, reference, manifest)
    for record in records:
        if record.ok or agreement.status is None:
            record.update(as_json(agreement))
            record.reference = cfg.reference


def _agreement_of_files(candidate: Path, reference: Path, manifest: Manifest) -> Agreement:
    """_agreement on the kept logits, or for segmentation _segmentation_agreement on the kept class maps."""
    if keeps_class_maps(manifest.output):
        return _segmentation_agreement(ClassMapFiles.beside(candidate), ClassMapFiles.beside(reference), manifest)
    if not reference.is_file():
        return Agreement(status="mismatch", error="the reference kept class maps, not logits: its output is "
                                                  "segmentation, this artifact's is not")
    return _agreement(np.load(candidate), np.load(reference), manifest)


def bench(artifacts: list[str], cfg: BenchConfig, progress: Callable[[str], None] = lambda _: None,
          on_records: Callable[[list[BenchRecord]], None] = lambda _: None) -> list[BenchRecord]:
    """Measure every artifact in every configuration; returns one record per configuration (status included).

    `on_records` receives each artifact's records as soon as they exist (the CLI appends them to bench.jsonl),
    so a later failure cannot lose what was measured. Evaluation data is opened and its labels matched to every
    artifact's classes before anything is measured: a folder that cannot be scored stops here, in one line.
    """
    parse_device(cfg.device)  # a device string that does not parse stops the sweep before it starts
    if cfg.runtime is not None:
        from vit_edge.runtime.base import session_class

        session_class(cfg.runtime)  # likewise an unknown runtime name
    total = len(artifacts) * len(cfg.threads) * len(cfg.batches)
    records: list[BenchRecord] = []
    what = "bench" if cfg.device == "local" else f"bench on {cfg.device}"
    with scratch_folder("vit-edge-bench-") as workdir, tracking(what, total, "config", least=1) as configs:
        files = EvalFiles(cfg, workdir, progress)
        if cfg.profile:
            _check_profilable(artifacts, cfg, files.manifests)
        if cfg.reference not in (None, PYTORCH.name):
            try:
                files.manifests.get(cfg.reference)  # a missing or damaged reference stops here, before measuring
            except VitEdgeError as exc:
                raise ConfigError(f"--reference: {exc}") from exc
        _check_labels(artifacts, cfg, files)
        with _executor(cfg, workdir) as executor:
            for path in artifacts:
                before = configs.done
                try:
                    found = _bench_artifact(path, cfg, executor, workdir, files, progress, configs)
                except DiskFullError:
                    raise  # no room for the prepared images or results: every later artifact would fail the same way
                except Exception as exc:  # noqa: BLE001 - one artifact's failure is its status row, the sweep goes on
                    configs.reach(before + len(cfg.threads) * len(cfg.batches))
                    progress(f"{path}: {type(exc).__name__}: {exc}")
                    found = [_record(path, None, cfg, t, b, Measurement.failed(f"crashed: {type(exc).__name__}",
                                                                                str(exc)))
                             for t in cfg.threads for b in cfg.batches]
                records.extend(found)
                on_records(found)
    return records


def _check_labels(artifacts: list[str], cfg: BenchConfig, files: EvalFiles) -> None:
    """Every readable artifact's classes matched against the data's labels (and the reference's), before timing."""
    paths = [*artifacts, *([cfg.reference] if cfg.reference not in (None, PYTORCH.name) else [])]
    for path in paths:
        try:
            manifest = files.manifests.get(path)
        except VitEdgeError:
            continue  # its own status row says what is wrong with it
        files.check(manifest)


def _check_profilable(artifacts: list[str], cfg: BenchConfig, manifests: Manifests) -> None:
    """--profile with a runtime that has no per-op profiler stops the sweep before any measurement."""
    from vit_edge.runtime.base import default_runtime, session_class

    for path in artifacts:
        try:
            target = manifests.get(path).target
        except VitEdgeError:
            continue  # its own status row says what is wrong with it
        session = session_class(cfg.runtime or default_runtime(target))
        if not session.can_profile:
            raise ConfigError(f"--profile: {Path(path).name} runs in {session.name}, and {session.no_profile_reason}")
