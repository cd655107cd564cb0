"""The public verbs: export, quantize, bench, info, train. The CLI is a thin layer over these.

Each verb checks everything it can before the slow part (loading, converting, measuring), so bad input costs a
second, not a conversion.
"""
from __future__ import annotations

import importlib.metadata
import platform
import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from vit_edge.core.artifact import NUMERICS_CHECK, Manifest, atomic_artifact_dir, check_writable, read_manifest
from vit_edge.core.errors import ConfigError
from vit_edge.core.options import ExportOptions
from vit_edge.core.targets import resolve, tool_packages
from vit_edge.core.targets import target as target_declaration
from vit_edge.core.types import InputSpec, Layout, Precision
from vit_edge.runtime.artifact import Artifact

if TYPE_CHECKING:
    import torch

    from vit_edge.benchmarking.fleet import FleetDevice
    from vit_edge.benchmarking.record import BenchRecord
    from vit_edge.benchmarking.sweep import BenchConfig
    from vit_edge.data.datasets import LabelledImages
    from vit_edge.data.sources import DataOptions
    from vit_edge.exporters.base import Exporter
    from vit_edge.models.loaders import LoadedModel
    from vit_edge.quantization.ptq import QuantizedViT
    from vit_edge.quantization.qat import QatTraining
    from vit_edge.quantization.recipe import Recipe

__all__ = ["Artifact", "ExportOptions", "export", "quantize", "bench", "info", "train", "default_output_dir",
           "parity_inputs", "tool_versions"]


# What names a model: a name (shipped, reference, timm:NAME), a path (HF folder, checkpoint) or a module in memory
ModelSource = Any
NUMERICS_CHECK_SAMPLES = 4  # inputs every device re-runs before its numbers are reported (bench's numerics gate)


def tool_versions() -> dict[str, str]:
    """Python's and every declared package's version, as recorded in a manifest (what is not installed is left out)."""
    versions = {"python": platform.python_version()}
    for name in tool_packages():
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def default_output_dir(model: ModelSource, options: ExportOptions) -> Path:
    """artifacts/<model>-<target>-<precision>[-<size>][-nhwc]: predictable, and never a user's existing file."""
    stem = Path(str(model)).stem if isinstance(model, (str, Path)) else type(model).__name__
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem.replace("timm:", "timm-")).strip("_") or "model"
    parts = [stem, options.target, options.precision.value]
    if options.img_size:
        size = options.img_size
        parts.append(str(size) if isinstance(size, int) else f"{size[0]}x{size[1]}")
    if options.layout is Layout.NHWC:
        parts.append("nhwc")
    return Path("artifacts") / "-".join(parts)


def parity_inputs(spec: InputSpec, count: int, data: LabelledImages | None = None) -> np.ndarray:
    """Preprocessed inputs for parity: real images when a dataset is given, smooth synthetic images otherwise."""
    from vit_edge.data.preprocess import preprocess_uint8
    from vit_edge.data.synthetic import smooth_images

    if count < 1:
        raise ConfigError("parity needs at least one sample")
    images = data.images[:count] if data is not None else smooth_images(count, spec.img_size, spec.channels)
    return preprocess_uint8(images, spec)


def _images_for(loaded: LoadedModel, data: Any, options: DataOptions, *, labelled: bool,
                limit: int | None = None, log: Callable[[str], None] = lambda _: None) -> LabelledImages | None:
    """`data` prepared for the loaded model: its eval transform, and labels matched to its classes by name."""
    from vit_edge.data.datasets import load_dataset

    if data is None:
        return None
    num_classes = loaded.model.cfg.num_classes if labelled else None
    found = load_dataset(data, loaded.spec, num_classes=num_classes, limit=limit, options=options, progress=log)
    log(f"data: {found.describe()}")
    return found


def export(
    model: ModelSource,
    target: str = "onnx",
    out: str | Path | None = None,
    *,
    options: ExportOptions | None = None,
    weights: str | Path | None = None,
    random_init: bool = False,
    data: Any = None,
    max_drop: float | None = None,
    data_options: DataOptions | None = None,
    log: Callable[[str], None] = lambda _: None,
    **option_fields: Any,
) -> Artifact:
    """Export a trained ViT to `target`, verify it against PyTorch in the target's runtime, return the artifact.

    `model` is anything `load_model` takes; `option_fields` are ExportOptions fields (precision, img_size, layout,
    verify, parity_samples, opset, merge, force) for callers who prefer keywords to an options object. With
    `merge` (ToMe), `max_drop` bounds the top-1 points merging may cost on the labelled `data` (any image source:
    a folder, list file, array file or dataset name; `data_options` says how to read and label it).
    """
    options = _resolve_options(target, options, option_fields)
    if options.precision is Precision.INT8:
        raise ConfigError("int8 artifacts come from  vit-edge quantize  (calibration data is needed)")
    exporter, out_dir = _checked_exporter(model, options, out, data=[data])
    if max_drop is not None and (not options.merge or data is None):
        raise ConfigError("--max-drop on export budgets token merging: it needs --merge R and labelled --data")
    reading = _data_options(data_options)
    loaded = _load(model, weights, random_init, options)
    budget = bool(options.merge) and max_drop is not None
    dataset = _images_for(loaded, data, reading, labelled=budget, limit=None if budget else options.parity_samples,
                          log=log)
    if options.merge:
        loaded.source["merge"] = check_merge_budget(loaded, dataset if budget else None, max_drop, log)
    return _write_artifact(exporter, loaded.model, loaded.spec, loaded.source, options, out_dir, dataset, log)


def _data_options(options: Any) -> DataOptions:
    from vit_edge.data.sources import DataOptions

    if options is None:
        return DataOptions()
    if not isinstance(options, DataOptions):
        raise ConfigError(f"data_options must be a vit_edge.data.DataOptions, not a {type(options).__name__}")
    return options


def check_merge_budget(loaded: LoadedModel, evaluation: LabelledImages | None, max_drop: float | None,
                       log: Callable[[str], None]) -> dict[str, Any]:
    """What token merging costs: top-1 with and without it on labelled data; ConfigError when over `max_drop`."""
    import torch

    from vit_edge.runtime.accuracy import predict_logits, top1_accuracy

    record: dict[str, Any] = {"r": loaded.model.cfg.merge, "tokens_per_block": loaded.tokens_per_block}
    if evaluation is None or loaded.unmerged is None:
        return record
    top1 = {}
    with torch.inference_mode():
        for name, module in (("unmerged", loaded.unmerged), ("merged", loaded.model)):
            logits = predict_logits(lambda batch: module(torch.from_numpy(batch)).numpy(), evaluation, loaded.spec)
            top1[name] = top1_accuracy(logits, evaluation.labels)
    record.update(images=len(evaluation), top1_unmerged=top1["unmerged"], top1_merged=top1["merged"],
                  drop=top1["unmerged"] - top1["merged"])
    log(f"token merging (r={record['r']}): top-1 {top1['unmerged']:.2f}% → {top1['merged']:.2f}% "
        f"on {len(evaluation)} images")
    if max_drop is not None and record["drop"] > max_drop:
        raise ConfigError(f"--merge {record['r']} alone costs {record['drop']:.2f} top-1 points on "
                          f"{evaluation.source}, over --max-drop {max_drop}; lower --merge")
    return record


def _checked_exporter(model: ModelSource, options: ExportOptions, out: str | Path | None,
                      data: Sequence[Any] = ()) -> tuple[Exporter, Path]:
    """The target's exporter after every check that needs no model: fail before the slow part. `--out` must be
    new, or with --force a vit-edge artifact that is not the model, the data, or the current folder."""
    from vit_edge.core.outputs import OutputKind, check_output
    from vit_edge.exporters.registry import get_exporter

    exporter = get_exporter(options.target)
    exporter.check_options(options)
    exporter.check_available()
    out_dir = Path(out) if out is not None else default_output_dir(model, options)
    reads = [("the model", model), *(("the data", source) for source in data)]
    check_output(out_dir, OutputKind.ARTIFACT, options.force, reads)
    check_writable(out_dir.parent)
    return exporter, out_dir


def _write_artifact(exporter: Exporter, module: torch.nn.Module, spec: InputSpec, source: dict[str, Any],
                    options: ExportOptions, out_dir: Path, dataset: LabelledImages | None, log: Callable[[str], None],
                    quantization: dict[str, Any] | None = None) -> Artifact:
    """Convert, write the manifest, check parity against `module`, and rename into place (or leave nothing)."""
    with atomic_artifact_dir(out_dir, options.force) as staging:
        log(f"exporting to {options.target} ({options.precision.value}) …")
        torch_model, spec = _prepare(module, spec, options)
        model_file = exporter.write(torch_model, spec, staging, options)
        manifest = Manifest(
            target=options.target, precision=options.precision, model_file=model_file, input_spec=spec,
            source=source, export_options=_options_json(options), quantization=quantization,
            tool_versions=tool_versions(),
        )
        if options.verify:
            log(f"checking parity on {options.parity_samples} inputs in {options.target}'s runtime …")
            manifest.parity = _verify(torch_model, spec, staging, manifest, options, dataset)
        if quantization and "int8_top1" in quantization.get("accuracy", {}) and dataset is not None:
            log(f"scoring the artifact in {options.target}'s runtime on {len(dataset)} images …")
            _score_in_runtime(staging, manifest, dataset, quantization["accuracy"])
        manifest.record_files(staging)
        manifest.write(staging)
    return Artifact(out_dir, manifest)


def _score_in_runtime(staging: Path, manifest: Manifest, dataset: LabelledImages, accuracy: dict[str, Any]) -> None:
    """The manifest's INT8 top-1 is what the target's runtime scores on the artifact; PyTorch's simulation of it
    stays beside it, named as such (the two differ by a few images: the runtimes round differently)."""
    from vit_edge.runtime import SessionOptions, open_session
    from vit_edge.runtime.accuracy import predict_logits, top1_accuracy

    session = open_session(staging, options=SessionOptions(precision_hint="f32"), manifest=manifest)
    top1 = top1_accuracy(predict_logits(session.run, dataset, manifest.input_spec), dataset.labels)
    accuracy["int8_top1_simulated"] = accuracy["int8_top1"]
    accuracy.update(int8_top1=top1, drop=accuracy["fp32_top1"] - top1, int8_top1_measured_in=session.name,
                    drop_simulated=accuracy["fp32_top1"] - accuracy["int8_top1_simulated"])


def _resolve_options(target: str, options: ExportOptions | None, fields: dict[str, Any]) -> ExportOptions:
    if not isinstance(target, str) or not target:
        raise ConfigError(f"target must be a target name such as 'onnx', 'openvino' or 'tflite', got {target!r}")
    unknown = set(fields) - set(ExportOptions.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown export option(s): {', '.join(sorted(unknown))}")
    if "precision" in fields:
        fields["precision"] = _enum(Precision, fields["precision"], "precision")
    if "layout" in fields:
        fields["layout"] = _enum(Layout, fields["layout"], "layout")
    base = options or ExportOptions(target=target)
    return replace(base, target=target if options is None else base.target, **fields)


def _enum(kind: type[Precision] | type[Layout], value: Any, what: str) -> Any:
    try:
        return value if isinstance(value, kind) else kind(str(value).upper() if kind is Layout else str(value).lower())
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise ConfigError(f"unknown {what} '{value}'; known: {known}") from None


def _options_json(options: ExportOptions) -> dict[str, Any]:
    size = options.img_size if options.img_size is None or isinstance(options.img_size, int) else list(options.img_size)
    return {"precision": options.precision.value, "img_size": size, "layout": options.layout.value,
            "verify": options.verify, "parity_samples": options.parity_samples, "opset": options.opset,
            "merge": options.merge, "output": options.output, "layers": list(options.layers)}


def _load(model: ModelSource, weights: str | Path | None, random_init: bool, options: ExportOptions) -> LoadedModel:
    from vit_edge.models.loaders import ReIDSelection, load_model

    reid = ReIDSelection(camera=options.camera, view=options.view, neck_feat=options.neck_feat, stride=options.stride,
                         num_heads=options.num_heads, img_size=options.img_size)
    loaded = load_model(model, weights=weights, random_init=random_init, img_size=options.img_size, reid=reid,
                        merge=options.merge)
    return _with_output(loaded, options.output, options.layers)


def _with_output(loaded: LoadedModel, output: str, layers: tuple[int, ...] = ()) -> LoadedModel:
    """The model returning `output` (pooled, the patch tokens, or them as a feature map), of the last block or of
    the blocks in `layers`; same weights."""
    if output == "pooled":
        return loaded
    if loaded.kind == "transreid":
        raise ConfigError(f"--output {output}: a TransReID checkpoint is exported for its re-identification "
                          "embedding (--neck-feat); its patch tokens were not trained to be read")
    try:
        loaded.model = loaded.model.reconfigured(output=output)
    except ValueError as exc:
        raise ConfigError(f"--output {output}: {exc}") from exc
    if layers:
        loaded.source["depth_loaded"] = loaded.model.cfg.depth
        try:
            loaded.model = loaded.model.with_layers(list(layers))
        except ValueError as exc:
            raise ConfigError(f"--layers {','.join(map(str, layers))}: {exc}") from exc
    cfg = loaded.model.cfg
    rows, cols = cfg.grid
    shape = [rows * cols, cfg.embed_dim] if output == "tokens" else [cfg.embed_dim, rows, cols]
    loaded.source["architecture"] = cfg.to_json()
    loaded.source["output_shape"] = ([len(cfg.layers)] if cfg.layers else []) + shape
    return loaded


def _prepare(model: torch.nn.Module, spec: InputSpec, options: ExportOptions) -> tuple[torch.nn.Module, InputSpec]:
    """The module to convert (wrapped for NHWC input when asked) and the spec that describes its input."""
    from vit_edge.models.layout import NHWCInput

    spec = spec.with_(layout=options.layout)
    if getattr(getattr(model, "cfg", None), "hybrid", None) is not None:
        import copy

        from vit_edge.models.hybrid import fold_weight_standardization

        model = copy.deepcopy(model)  # the stem's standardized weights become constants, not per-run work
        fold_weight_standardization(model)
    module = NHWCInput(model) if options.layout is Layout.NHWC else model
    return module.eval(), spec


def _verify(torch_model: torch.nn.Module, spec: InputSpec, staging: Path, manifest: Manifest, options: ExportOptions,
            dataset: LabelledImages | None) -> dict[str, Any]:
    import torch

    from vit_edge.core.parity import check_parity
    from vit_edge.runtime import SessionOptions, open_session

    inputs = parity_inputs(spec, options.parity_samples, dataset)
    with torch.inference_mode():
        reference = torch_model(torch.from_numpy(inputs)).numpy()
    session = open_session(staging, options=SessionOptions(precision_hint="f32"), manifest=manifest)
    result = check_parity(reference, session.run(inputs), options.precision, f"the {options.target} artifact",
                          embedding=manifest.judged_by_cosine, feature_map=manifest.output_kind == "features")
    result["inputs"] = dataset.source if dataset is not None else "synthetic smooth images"
    result["runtime"] = session.info()
    np.savez(staging / NUMERICS_CHECK, inputs=inputs[:NUMERICS_CHECK_SAMPLES],
             outputs=reference[:NUMERICS_CHECK_SAMPLES].astype(np.float32))
    result["numerics_check"] = NUMERICS_CHECK
    return result


def info(artifact: str | Path, verify_files: bool = True) -> Manifest:
    """The manifest of an artifact, with each file's sha256 checked."""
    if not isinstance(artifact, (str, Path)):
        raise ConfigError(f"info takes an artifact folder's path, not {type(artifact).__name__}")
    return read_manifest(artifact, verify_files=verify_files)


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
    import torch

    from vit_edge.core.outputs import OutputKind, check_output
    from vit_edge.models.registry import FMNIST_TINY_CONFIG
    from vit_edge.models.training import TrainConfig, train_classifier
    from vit_edge.models.vit import VisionTransformer

    out = Path(out)
    check_output(out, OutputKind.CHECKPOINT, force, [("the training data", data), ("the evaluation data", eval_data)])
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ConfigError("epochs and batch size must be ≥ 1 and the learning rate > 0")
    check_writable(out.parent)  # before the training, not after it
    train_set, eval_set, spec = _training_sets(data, eval_data, img_size)
    size = spec.height
    if size % 4:
        raise ConfigError(f"image size {size} must be a multiple of the patch size 4")
    config = FMNIST_TINY_CONFIG.with_(img_size=size, in_chans=spec.channels, num_classes=len(spec.class_names))
    torch.manual_seed(seed)
    return train_classifier(VisionTransformer(config), spec, train_set, eval_set,
                            TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed), out, log=log)


def _training_sets(data: str, eval_data: str, img_size: int | None) -> tuple[LabelledImages, LabelledImages,
                                                                           InputSpec]:
    """Training and evaluation images for a model trained from scratch: Fashion-MNIST as it is, or a folder of
    class folders squashed to `img_size` (default 32) whose names become the model's classes."""
    from vit_edge.core.errors import DataError
    from vit_edge.data.datasets import folder_training_spec, load_dataset, load_image_folder
    from vit_edge.models.registry import FMNIST_SPEC

    if data.startswith("fashion-mnist"):
        spec = FMNIST_SPEC
        train_set = load_dataset(data, spec, num_classes=len(spec.class_names))
    else:
        train_set = load_image_folder(data, channels=3, size=img_size or 32)
        spec = folder_training_spec(img_size or 32, 3, train_set.class_names)
    if len(spec.class_names) < 2:
        raise DataError(f"training needs ≥ 2 classes; {train_set.source} has {len(spec.class_names)}")
    eval_set = load_dataset(eval_data, spec, num_classes=len(spec.class_names))
    return train_set, eval_set, spec


def quantize(
    model: ModelSource,
    target: str = "onnx",
    out: str | Path | None = None,
    *,
    calib: Any,
    recipe: Recipe | None = None,
    calib_size: int = 256,
    eval_data: Any = None,
    eval_limit: int | None = None,
    data_options: DataOptions | None = None,
    weights: str | Path | None = None,
    random_init: bool = False,
    method: str = "ptq",
    qat: QatTraining | None = None,
    log: Callable[[str], None] = lambda _: None,
    **option_fields: Any,
) -> Artifact | None:
    """INT8 quantization of the ViT's matmuls with `recipe` (a quantize.Recipe), calibrated on `calib`, lowered to
    `target`. `method="qat"` then fine-tunes with quantization simulated (`qat`: a QatTraining).

    The artifact is verified against the INT8 simulation in PyTorch; the manifest records the recipe, the scales'
    fingerprint, which matmuls are INT8, the calibration fingerprint and (with `eval_data`) accuracy before/after.
    Under torchrun only rank 0 writes the artifact; the other ranks return None.
    """
    from vit_edge.quantization.calibration import load_calibration
    from vit_edge.quantization.pipeline import evaluate_on, quantize_with_budget
    from vit_edge.quantization.qat_run import check_qat_request, run_qat

    if method not in ("ptq", "qat"):
        raise ConfigError(f"unknown quantization method '{method}'; known: ptq, qat")
    recipe = _checked_recipe(recipe, calib_size, eval_limit)
    options = _resolve_options(target, None, {**option_fields, "precision": Precision.INT8})
    exporter, out_dir = _checked_exporter(model, options, out, data=[calib, eval_data])
    qat_request = check_qat_request(recipe, qat, eval_data) if method == "qat" else None
    if recipe.max_drop is not None and eval_data is None:
        raise ConfigError("--max-drop is a budget in top-1 points, and measuring them needs labelled --eval data; "
                          "pass --eval DIR (class folders, a list file or a labelled .npz)")
    reading = _data_options(data_options)
    lower = _int8_lowering(options.target)
    loaded = _load(model, weights, random_init, options)
    calibration = load_calibration(calib, loaded.spec, calib_size, reading)
    evaluation = _images_for(loaded, eval_data, reading, labelled=True, limit=eval_limit, log=log)
    reference = loaded.unmerged or loaded.model  # accuracy is measured against the model as trained
    if options.merge:
        loaded.source["merge"] = check_merge_budget(loaded, evaluation, recipe.max_drop, log)
    log(f"calibrating on {len(calibration.batch)} images from {calibration.source} ({recipe.calibration}) …")
    if qat_request is None:
        quant, metrics = quantize_with_budget(loaded.model, recipe, calibration.batch, evaluation, loaded.spec, log,
                                              lower=lower, reference=reference)
        extra: dict[str, Any] = {}
    else:
        trained, extra = run_qat(loaded, recipe, calibration, evaluation, qat_request, out_dir, log)
        if trained is None:
            return None
        quant = lower(trained, calibration.batch)
        metrics = evaluate_on(reference, quant, evaluation, loaded.spec)
    if evaluation is not None:
        metrics.update(eval_data=evaluation.describe())
    summary = {**quant.summary(), "method": method, "calibration": calibration.info(), "accuracy": metrics, **extra}
    return _write_artifact(exporter, quant.model, loaded.spec, loaded.source, options, out_dir, evaluation, log,
                           quantization=summary)


def _checked_recipe(recipe: Any, calib_size: Any, eval_limit: Any) -> Recipe:
    """quantize's own arguments, type-checked as the CLI's are: a Recipe, counts that are integers ≥ 1."""
    from vit_edge.quantization.recipe import Recipe

    if recipe is not None and not isinstance(recipe, Recipe):
        raise ConfigError(f"recipe must be a vit_edge.quantize Recipe, not a {type(recipe).__name__}")
    for name, value in (("calib_size", calib_size), ("eval_limit", eval_limit)):
        if value is None and name == "eval_limit":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer ≥ 1, not {value!r}")
    return recipe or Recipe()


def _int8_lowering(target: str) -> Callable[[QuantizedViT, np.ndarray], QuantizedViT]:
    """The target's declared rewrite of a QuantizedViT before conversion (same scales); most targets need none."""
    reference = target_declaration(target).int8_lowering
    if reference is None:
        return lambda quant, _calibration: quant
    lowering: Callable[[QuantizedViT, np.ndarray], QuantizedViT] = resolve(reference)
    return lowering


def bench(
    artifacts: Sequence[str | Path],
    config: BenchConfig | None = None,
    *,
    devices: Sequence[str | FleetDevice] = (),
    progress: Callable[[str], None] = lambda _: None,
    on_records: Callable[[list[BenchRecord]], None] = lambda _: None,
    **config_fields: Any,
) -> list[BenchRecord]:
    """Measure `artifacts` on each device (default: here) and return one BenchRecord per configuration.

    `config` is a bench.sweep.BenchConfig (or its fields as keywords); `devices` are addresses ('local',
    'ssh://user@host', 'adb:SERIAL') or bench.fleet.FleetDevice entries, measured in parallel. A failure is a
    record's status, never an exception, once the request itself is valid.
    """
    from vit_edge.benchmarking.fleet import FleetDevice, bench_fleet, check_fleet
    from vit_edge.benchmarking.sweep import BenchConfig
    from vit_edge.benchmarking.sweep import bench as sweep

    unknown = set(config_fields) - set(BenchConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown bench option(s): {', '.join(sorted(unknown))}")
    fleet = [d if isinstance(d, FleetDevice) else FleetDevice(str(d)) for d in devices] or [FleetDevice("local")]
    check_fleet(fleet)  # a duplicate or an address that does not parse stops here, before any measurement
    cfg = replace(config or BenchConfig(), device=fleet[0].address, **config_fields)
    paths = [str(a) for a in artifacts]
    if len(fleet) == 1 and fleet[0].name is None and not fleet[0].ssh_options and fleet[0].python is None:
        return sweep(paths, cfg, progress=progress, on_records=on_records)
    return bench_fleet(paths, cfg, fleet, progress=progress, on_records=on_records)
