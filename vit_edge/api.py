"""The public verbs: export, quantize, bench, info, train. The CLI is a thin layer over these.

Each verb runs its cheap checks first (nothing loaded), then load → convert → verify → write (vit_edge.pipeline),
so bad input costs a second, not a conversion.
"""
from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from vit_edge.core.errors import ConfigError
from vit_edge.core.manifest import Manifest, read_manifest
from vit_edge.core.options import (
    ExportOptions,
    ReIDOptions,
    check_callable,
    check_count,
    check_flag,
    check_instance,
    check_model,
    check_number,
    check_path,
)
from vit_edge.core.outputs import check_writable
from vit_edge.core.progress import reporting
from vit_edge.core.targets import DEFAULT_TARGET
from vit_edge.core.types import Precision
from vit_edge.core.words import python_words
from vit_edge.pipeline.building import Destination, QuantizeConfig, export_loaded, quantize_loaded
from vit_edge.pipeline.checks import (
    ModelSource,
    check_images,
    checked_data_options,
    checked_exporter,
    checked_int16_request,
    default_output_dir,
    resolve_options,
)
from vit_edge.pipeline.loading import load
from vit_edge.pipeline.writing import parity_inputs, tool_versions
from vit_edge.runtime.artifact import Artifact

if TYPE_CHECKING:
    from vit_edge.benchmarking.fleet import Fleet, FleetDevice
    from vit_edge.benchmarking.record import BenchRecord
    from vit_edge.benchmarking.sweep import BenchConfig
    from vit_edge.data.datasets import ImageData
    from vit_edge.data.sources import DataOptions

__all__ = ["Artifact", "ExportOptions", "ReIDOptions", "QuantizeConfig", "export", "quantize", "bench", "bench_table",
           "info", "preprocess", "reporting", "train", "default_output_dir", "parity_inputs", "to_logging",
           "tool_versions"]


def to_logging(message: str) -> None:
    """The verbs' default `log`: Python's logging, logger 'vit_edge' (INFO), which a script turns on with
    logging.basicConfig(level=logging.INFO); the CLI prints instead."""
    logging.getLogger("vit_edge").info(message)


@python_words
def export(
    model: ModelSource,
    target: str = DEFAULT_TARGET,
    out: str | Path | None = None,
    *,
    options: ExportOptions | None = None,
    weights: str | Path | None = None,
    random_init: bool = False,
    data: ImageData | None = None,
    max_drop: float | None = None,
    data_options: DataOptions | None = None,
    log: Callable[[str], None] = to_logging,
    **option_fields: Any,
) -> Artifact:
    """Export a trained ViT to `target`, verify it against PyTorch in the target's runtime, return the artifact.

    `model` is anything `load_model` takes; `options` an ExportOptions, or its fields as keywords (precision,
    img_size, layout, verify, parity_samples, opset, merge, output, layers, force, ...). With `merge` (ToMe),
    `max_drop` bounds the top-1 points merging may cost on the labelled `data` (any image source: a folder, list
    file, array file or dataset name; `data_options` says how to read and label it).
    """
    _check_arguments(model, out, weights, random_init, log)
    check_images("data", data)
    if max_drop is not None:
        check_number("max_drop", max_drop)
    options = resolve_options(target, options, option_fields)
    if options.precision is Precision.INT8:
        raise ConfigError("int8 artifacts come from  vit-edge quantize  (calibration data is needed)")
    exporter, out_dir = checked_exporter(model, options, out, data=[data])
    if max_drop is not None and (not options.merge or data is None):
        raise ConfigError("--max-drop on export budgets token merging: it needs --merge R and labelled --data")
    to = Destination(exporter, out_dir, options, checked_data_options(data_options))
    return export_loaded(load(model, weights, random_init, options), to, data, max_drop, log)


@python_words
def quantize(
    model: ModelSource,
    target: str = DEFAULT_TARGET,
    out: str | Path | None = None,
    config: QuantizeConfig | None = None,
    *,
    options: ExportOptions | None = None,
    log: Callable[[str], None] = to_logging,
    **fields: Any,
) -> Artifact | None:
    """INT8 quantization of the ViT's matmuls as `config` (a QuantizeConfig) says, lowered to `target`; `options`
    as for export. `fields` are a QuantizeConfig's or an ExportOptions' fields as keywords, on top of `config`
    and `options` (`quantize(model, "tflite", out, calib=batches, npu="ethos-u85-256")`).

    The config holds the calibration images (`calib`: any image source, or an iterable of batches: a generator,
    a torch DataLoader, a list, vit_edge.data.Dataset(loader, transform)), the Recipe (with its --max-drop
    budget), the labelled evaluation images, a QatTraining for QAT, and how the model and images are read. A
    batch is uint8 images (N,H,W[,C]), preprocessed as the model was evaluated, or a float batch already in the
    model's input layout; eval_data's items are (images, labels). A generator is read once, only as far as
    `calib_size` (`eval_limit`) images. `recipe.calibration` is the observer method, not the data.

    The artifact is verified against the INT8 simulation in PyTorch; the manifest records the recipe, the scales'
    fingerprint, which matmuls are INT8, the calibration fingerprint and (with eval_data) accuracy before/after.
    Under torchrun only rank 0 writes the artifact; the other ranks return None.
    """
    check_model(model)
    check_path("out", out, optional=True)
    check_callable("log", log)
    config, options = _quantize_request(target, config, options, fields)
    if out is None and config.qat is not None:  # a QAT artifact beside the PTQ one, not in its folder
        plain = default_output_dir(model, options)
        out = plain.with_name(plain.name + "-qat")
    exporter, out_dir = checked_exporter(model, options, out, data=[config.calib, config.eval_data])
    if config.qat is not None:
        from vit_edge.quantization.qat_run import check_qat_request

        check_qat_request(config.recipe, config.qat, config.eval_data, out_dir)
    if config.recipe.max_drop is not None and config.eval_data is None:
        raise ConfigError("--max-drop is a budget in top-1 points, and measuring them needs labelled --eval data; "
                          "pass --eval DIR (class folders, a list file or a labelled .npz)")
    to = Destination(exporter, out_dir, options, checked_data_options(config.data_options))
    return quantize_loaded(load(model, config.weights, config.random_init, options), to, config, log)


def _quantize_request(target: str, config: Any, options: ExportOptions | None,
                      fields: dict[str, Any]) -> tuple[QuantizeConfig, ExportOptions]:
    """The config and the export options (INT8, a 16-bit request checked against the target) from the objects
    and/or their fields as keywords; each keyword goes to the record that has it."""
    check_instance("config", config, QuantizeConfig, "a vit_edge.QuantizeConfig")
    mine = {name: fields.pop(name) for name in list(fields) if name in QuantizeConfig.__dataclass_fields__}
    config = replace(config or QuantizeConfig(), **mine)
    config.calibration_data()  # none: refused before anything is loaded
    options = resolve_options(target, options, {**fields, "precision": Precision.INT8})
    return config, checked_int16_request(config.recipe, options)


def _check_arguments(model: Any, out: Any, weights: Any, random_init: Any, log: Any) -> None:
    """What export and quantize share, checked by type before anything is read: `out=5` is one ConfigError, not a
    TypeError from pathlib after the model has loaded."""
    check_model(model)
    check_path("out", out, optional=True)
    check_path("weights", weights, optional=True)
    check_flag("random_init", random_init)
    check_callable("log", log)


@python_words
def info(artifact: str | Path | Artifact, verify_files: bool = True) -> Manifest:
    """The manifest of an artifact (a path, or what export returned), with each file's sha256 checked."""
    if isinstance(artifact, bool) or not isinstance(artifact, (str, os.PathLike)):
        raise ConfigError(f"info takes an artifact folder's path, not {type(artifact).__name__}")
    check_flag("verify_files", verify_files)
    return read_manifest(Path(artifact), verify_files=verify_files)


@python_words
def train(
    out: str | Path,
    data: str = "fashion-mnist-train",
    eval_data: str = "fashion-mnist",
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    img_size: int | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Train the small ViT (patch 4, dim 64, depth 4) on labelled images; write a vit-edge checkpoint to `out`."""
    from vit_edge.core.outputs import OutputKind, check_output
    from vit_edge.training import TrainConfig, train_small_vit

    _check_training(out, data, eval_data, epochs, batch_size, lr, seed, img_size, force, log)
    out = Path(out)
    check_output(out, OutputKind.CHECKPOINT, force, [("the training data", data), ("the evaluation data", eval_data)])
    check_writable(out.parent)  # before the training, not after it
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    return train_small_vit(os.fspath(data), os.fspath(eval_data), img_size, config, out, log=log)


def _check_training(out: Any, data: Any, eval_data: Any, epochs: Any, batch_size: Any, lr: Any, seed: Any,
                    img_size: Any, force: Any, log: Any) -> None:
    """train's arguments by type, before any image is read: `epochs="1"` is one ConfigError."""
    for name, value in (("out", out), ("data", data), ("eval_data", eval_data)):
        check_path(name, value)
    check_count("epochs", epochs)
    check_count("batch_size", batch_size)
    check_count("seed", seed, least=0, most=2**63 - 1)  # what both torch and numpy take
    check_count("img_size", img_size, optional=True)
    check_number("lr", lr)
    if lr == 0:
        raise ConfigError("lr (the learning rate) must be > 0, not 0")
    check_flag("force", force)
    check_callable("log", log)


@python_words
def bench(
    artifacts: Sequence[str | Path],
    config: BenchConfig | None = None,
    *,
    devices: Fleet | Sequence[str | FleetDevice] = (),
    progress: Callable[[str], None] = to_logging,
    on_records: Callable[[list[BenchRecord]], None] = lambda _: None,
    **config_fields: Any,
) -> list[BenchRecord]:
    """Measure `artifacts` on each device (default: here) and return one BenchRecord per configuration.

    `config` is a benchmarking.sweep.BenchConfig (or its fields as keywords); `devices` are addresses ('local',
    'ssh://user@host', 'adb:SERIAL'), FleetDevice entries or a checked Fleet, measured in parallel. A failure is a
    record's status, never an exception, once the request itself is valid. `progress` gets the log's lines; the
    counts (configurations, each runner's scoring) go to a bar on a terminal or to `vit_edge.reporting(fn)`.
    """
    from vit_edge.benchmarking.fleet import Fleet, bench_fleet
    from vit_edge.benchmarking.sweep import BenchConfig, check_some_artifact
    from vit_edge.benchmarking.sweep import bench as sweep

    unknown = set(config_fields) - set(BenchConfig.__dataclass_fields__)
    if unknown or "device" in config_fields:
        raise ConfigError(f"unknown bench option(s): {', '.join(sorted(unknown or {'device'}))} (the machines are "
                          "devices=[...])")
    paths = _bench_paths(artifacts)
    check_instance("config", config, BenchConfig, "a vit_edge.benchmarking.sweep.BenchConfig")
    if not isinstance(devices, Fleet):
        check_instance("devices", devices, (list, tuple), "a list of addresses or FleetDevice entries", False)
    check_callable("progress", progress)
    check_callable("on_records", on_records)
    fleet = devices if isinstance(devices, Fleet) else Fleet.of(devices)  # checked once, before any measurement
    cfg = _checked_bench_config(replace(config or BenchConfig(), device=fleet.devices[0].address, **config_fields))
    check_some_artifact(paths)
    if fleet.plain_single is not None:
        return sweep(paths, cfg, progress=progress, on_records=on_records)
    return bench_fleet(paths, cfg, fleet, progress=progress, on_records=on_records)


def _bench_paths(artifacts: Any) -> list[str]:
    """bench's artifacts as path strings: one path, or a list or tuple of them."""
    if isinstance(artifacts, (str, os.PathLike)):
        artifacts = [artifacts]
    check_instance("artifacts", artifacts, (list, tuple), "a list of artifact folders", optional=False)
    for path in artifacts:
        check_path("each of artifacts", path)
    return [os.fspath(path) for path in artifacts]


def _checked_bench_config(cfg: BenchConfig) -> BenchConfig:
    """A BenchConfig's names and paths by type (its counts check themselves): `reference=3` is one ConfigError, not
    a TypeError once the sweep has begun. A pathlib.Path for `reference` or `data` becomes its text."""
    from vit_edge.data.sources import DataOptions

    for name in ("reference", "data"):
        value = getattr(cfg, name)
        check_path(name, value, optional=True)
        if isinstance(value, os.PathLike):
            cfg = replace(cfg, **{name: os.fspath(value)})
    for name in ("runtime", "precision_hint", "accelerator", "remote_python", "adb_benchmark"):
        check_instance(name, getattr(cfg, name), str, "a str", optional=name in ("runtime", "precision_hint"))
    check_instance("ssh_options", cfg.ssh_options, (tuple, list), "a tuple of ssh options", optional=False)
    for option in cfg.ssh_options:
        check_instance("each of ssh_options", option, str, "a str", optional=False)
    check_instance("data_options", cfg.data_options, DataOptions, "a vit_edge.data.DataOptions", optional=False)
    check_flag("profile", cfg.profile)
    return cfg


@python_words
def preprocess(images: Any, artifact: str | Path | Artifact) -> Any:
    """`images` (image files, PIL images, a uint8 array, a folder: vit_edge.data.batch.IMAGES_HELP) as the float
    batch `artifact`'s model takes: decoded, resized and cropped as it was evaluated, normalised, in its layout."""
    from vit_edge.data.batch import check_images

    check_images(images)
    check_path("artifact", artifact)
    opened = artifact if isinstance(artifact, Artifact) else Artifact.open(artifact)
    return opened.preprocess(images)


@python_words
def bench_table(records: Sequence[BenchRecord]) -> str:
    """The table `vit-edge bench` prints (Markdown), for the records `bench` returned."""
    from vit_edge.benchmarking.record import BenchRecord
    from vit_edge.benchmarking.report import markdown_table, npu_markdown

    check_instance("records", records, (list, tuple), "the list of BenchRecord that bench returned", False)
    for record in records:
        check_instance("each of records", record, BenchRecord, "a BenchRecord", False)
    return markdown_table(list(records)) + npu_markdown(list(records))
