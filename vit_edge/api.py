"""The public verbs: export, info, train. The CLI is a thin layer over these."""
from __future__ import annotations

import importlib.metadata
import platform
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vit_edge.artifact import NUMERICS_CHECK, Manifest, atomic_artifact_dir, check_writable, read_manifest
from vit_edge.errors import ConfigError
from vit_edge.export.options import ExportOptions
from vit_edge.types import InputSpec, Layout, Precision

__all__ = ["Artifact", "ExportOptions", "export", "quantize", "info", "train", "default_output_dir", "parity_inputs", "tool_versions"]


NUMERICS_CHECK_SAMPLES = 4  # inputs every device re-runs before its numbers are reported (bench's numerics gate)
_TOOLS = ("vit-edge", "torch", "numpy", "onnx", "onnxscript", "onnxruntime", "openvino", "litert-torch",
          "ai-edge-litert")


@dataclass
class Artifact:
    """An artifact directory and its manifest; `run` executes it in its own runtime (no torch needed)."""

    path: Path
    manifest: Manifest
    _session: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> "Artifact":
        return cls(Path(path), read_manifest(path))

    def run(self, batch: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Logits (or the embedding) for a preprocessed float32 batch in the artifact's layout."""
        batch = checked_batch(batch, self.manifest.input_spec)
        if self._session is None:
            from vit_edge.runtime import SessionOptions, open_session

            self._session = open_session(self.path, options=SessionOptions(threads=threads), manifest=self.manifest)
        return self._session.run(batch)


def checked_batch(batch: Any, spec: Any) -> np.ndarray:
    """The batch as the runtime needs it, or a DataError saying what was expected (shape, layout, dtype)."""
    from vit_edge.errors import DataError

    expected = spec.shape(1)[1:]
    layout = f"{spec.layout.value} (N, {', '.join(map(str, expected))})"
    if not isinstance(batch, np.ndarray):
        raise DataError(f"expected a numpy array in {layout}, got {type(batch).__name__}")
    if not np.issubdtype(batch.dtype, np.floating):
        raise DataError(f"expected a preprocessed float32 batch, got {batch.dtype} (uint8 images go through "
                        "vit_edge.data.preprocess.preprocess_uint8 with the manifest's input_spec first)")
    if batch.ndim != 4 or tuple(batch.shape[1:]) != tuple(expected) or batch.shape[0] < 1:
        hint = ""
        if batch.ndim == 4 and tuple(batch.shape[1:]) == (expected[1], expected[2], expected[0]):
            hint = " (it looks like NHWC)"
        elif batch.ndim == 4 and tuple(batch.shape[1:]) == (expected[2], expected[0], expected[1]):
            hint = " (it looks like NCHW)"
        raise DataError(f"expected a batch in {layout}, got shape {tuple(batch.shape)}{hint}")
    return np.ascontiguousarray(batch, dtype=np.float32)


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _TOOLS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def default_output_dir(model: Any, options: ExportOptions) -> Path:
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


def parity_inputs(spec: Any, count: int, data: Any = None) -> np.ndarray:
    """Preprocessed inputs for parity: real images when a dataset is given, smooth synthetic images otherwise."""
    from vit_edge.data.preprocess import preprocess_uint8
    from vit_edge.data.synthetic import smooth_images

    if count < 1:
        raise ConfigError("parity needs at least one sample")
    images = data.images[:count] if data is not None else smooth_images(count, spec.img_size, spec.channels)
    return preprocess_uint8(images, spec)


def export(
    model: Any,
    target: str = "onnx",
    out: str | Path | None = None,
    *,
    options: ExportOptions | None = None,
    weights: str | Path | None = None,
    random_init: bool = False,
    data: str | None = None,
    log: Callable[[str], None] = lambda _: None,
    **option_fields: Any,
) -> Artifact:
    """Export a trained ViT to `target`, verify it against PyTorch in the target's runtime, return the artifact.

    `model` is anything `load_model` takes; `option_fields` are ExportOptions fields (precision, img_size, layout,
    verify, parity_samples, opset, force) for callers who prefer keywords to an options object.
    """
    options = _resolve_options(target, options, option_fields)
    if options.precision is Precision.INT8:
        raise ConfigError("int8 artifacts come from  vit-edge quantize  (calibration data is needed)")
    exporter, out_dir = _checked_exporter(model, options, out)
    loaded = _load(model, weights, random_init, options)
    dataset = _parity_dataset(data, loaded.spec)
    return _write_artifact(exporter, loaded.model, loaded.spec, loaded.source, options, out_dir, dataset, log)


def _checked_exporter(model: Any, options: ExportOptions, out: str | Path | None) -> tuple[Any, Path]:
    """The target's exporter after every check that needs no model: fail before the slow part."""
    from vit_edge.errors import ArtifactError
    from vit_edge.export.registry import get_exporter

    exporter = get_exporter(options.target)
    exporter.check_options(options)
    exporter.check_available()
    out_dir = Path(out) if out is not None else default_output_dir(model, options)
    if out_dir.exists() and not options.force:
        raise ArtifactError(f"{out_dir} exists already; pass --force to replace it")
    _check_not_the_input(model, out_dir)
    check_writable(out_dir.parent)
    return exporter, out_dir


def _check_not_the_input(model: Any, out_dir: Path) -> None:
    """--out must not be the model (a Hugging Face folder) or a folder holding it: replacing it loses the model."""
    from vit_edge.errors import ConfigError

    if not isinstance(model, (str, Path)) or not Path(model).exists():
        return
    source, target = Path(model).resolve(), out_dir.resolve()
    if source == target or target in source.parents:
        raise ConfigError(f"--out {out_dir} is, or contains, the model {model}: writing there would replace it; "
                          "choose another output folder")


def _write_artifact(exporter: Any, module: Any, spec: Any, source: dict[str, Any], options: ExportOptions,
                    out_dir: Path, dataset: Any, log: Callable[[str], None],
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
        manifest.record_files(staging)
        manifest.write(staging)
    return Artifact(out_dir, manifest)


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


def _enum(kind: type, value: Any, what: str) -> Any:
    try:
        return value if isinstance(value, kind) else kind(str(value).upper() if kind is Layout else str(value).lower())
    except ValueError:
        known = ", ".join(member.value for member in kind)
        raise ConfigError(f"unknown {what} '{value}'; known: {known}") from None


def _options_json(options: ExportOptions) -> dict[str, Any]:
    size = options.img_size if options.img_size is None or isinstance(options.img_size, int) else list(options.img_size)
    return {"precision": options.precision.value, "img_size": size, "layout": options.layout.value,
            "verify": options.verify, "parity_samples": options.parity_samples, "opset": options.opset}


def _load(model: Any, weights: Any, random_init: bool, options: ExportOptions) -> Any:
    from vit_edge.models.loaders import load_model

    from vit_edge.models.loaders import ReIDSelection

    reid = ReIDSelection(camera=options.camera, view=options.view, neck_feat=options.neck_feat)
    return load_model(model, weights=weights, random_init=random_init, img_size=options.img_size, reid=reid)


def _parity_dataset(data: str | None, spec: Any) -> Any:
    if data is None:
        return None
    from vit_edge.data.datasets import load_dataset

    return load_dataset(data, channels=spec.channels, size=None)


def _prepare(model: Any, spec: Any, options: ExportOptions) -> tuple[Any, Any]:
    """The module to convert (wrapped for NHWC input when asked) and the spec that describes its input."""
    from vit_edge.export.base import NHWCInput

    spec = spec.with_(layout=options.layout)
    if getattr(getattr(model, "cfg", None), "hybrid", None) is not None:
        import copy

        from vit_edge.models.hybrid import fold_weight_standardization

        model = copy.deepcopy(model)  # the stem's standardized weights become constants, not per-run work
        fold_weight_standardization(model)
    module = NHWCInput(model) if options.layout is Layout.NHWC else model
    return module.eval(), spec


def _verify(torch_model: Any, spec: Any, staging: Path, manifest: Manifest, options: ExportOptions,
            dataset: Any) -> dict[str, Any]:
    import torch

    from vit_edge.export.parity import check_parity
    from vit_edge.runtime import SessionOptions, open_session

    inputs = parity_inputs(spec, options.parity_samples, dataset)
    with torch.inference_mode():
        reference = torch_model(torch.from_numpy(inputs)).numpy()
    session = open_session(staging, options=SessionOptions(precision_hint="f32"), manifest=manifest)
    embedding = not manifest.source.get("architecture", {}).get("num_classes", 1)
    result = check_parity(reference, session.run(inputs), options.precision, f"the {options.target} artifact",
                          embedding=embedding)
    result["inputs"] = dataset.source if dataset is not None else "synthetic smooth images"
    result["runtime"] = session.info()
    np.savez(staging / NUMERICS_CHECK, inputs=inputs[:NUMERICS_CHECK_SAMPLES],
             outputs=reference[:NUMERICS_CHECK_SAMPLES].astype(np.float32))
    result["numerics_check"] = NUMERICS_CHECK
    return result


def info(artifact: str | Path, verify_files: bool = True) -> Manifest:
    """The manifest of an artifact, with each file's sha256 checked."""
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

    from vit_edge.data.datasets import load_dataset
    from vit_edge.errors import ArtifactError, DataError
    from vit_edge.models.registry import FMNIST_SPEC, FMNIST_TINY_CONFIG
    from vit_edge.models.vit import VisionTransformer
    from vit_edge.training import TrainConfig, train_classifier

    out = Path(out)
    if out.exists() and not force:
        raise ArtifactError(f"{out} exists already; pass --force to replace it")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ConfigError("epochs and batch size must be ≥ 1 and the learning rate > 0")
    check_writable(out.parent)  # before the training, not after it
    is_fmnist = data.startswith("fashion-mnist")
    channels = 1 if is_fmnist else 3
    train_set = load_dataset(data, channels=channels, size=None if is_fmnist else (img_size or 32))
    eval_set = load_dataset(eval_data, channels=channels, size=None if is_fmnist else (img_size or 32))
    if len(train_set.class_names) < 2 or train_set.class_names != eval_set.class_names:
        raise DataError("training needs ≥ 2 classes, and the same classes in the training and evaluation data")
    size = int(train_set.images.shape[1])
    if size % 4:
        raise ConfigError(f"image size {size} must be a multiple of the patch size 4")
    config = FMNIST_TINY_CONFIG.with_(img_size=size, in_chans=channels, num_classes=len(train_set.class_names))
    spec = FMNIST_SPEC if is_fmnist else InputSpec(img_size=size, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3,
                                                   class_names=train_set.class_names)
    torch.manual_seed(seed)
    return train_classifier(VisionTransformer(config), spec, train_set, eval_set,
                            TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed), out, log=log)


def quantize(
    model: Any,
    target: str = "onnx",
    out: str | Path | None = None,
    *,
    calib: Any,
    recipe: Any = None,
    calib_size: int = 256,
    eval_data: str | None = None,
    eval_limit: int | None = None,
    weights: str | Path | None = None,
    random_init: bool = False,
    method: str = "ptq",
    qat: Any = None,
    log: Callable[[str], None] = lambda _: None,
    **option_fields: Any,
) -> Artifact | None:
    """INT8 quantization of the ViT's matmuls with `recipe` (a quantize.Recipe), calibrated on `calib`, lowered to
    `target`. `method="qat"` then fine-tunes with quantization simulated (`qat`: a QatTraining).

    The artifact is verified against the INT8 simulation in PyTorch; the manifest records the recipe, the scales'
    fingerprint, which matmuls are INT8, the calibration fingerprint and (with `eval_data`) accuracy before/after.
    Under torchrun only rank 0 writes the artifact; the other ranks return None.
    """
    from vit_edge.quantize.calibration import load_calibration
    from vit_edge.quantize.pipeline import evaluate_on, quantize_with_budget
    from vit_edge.quantize.recipe import Recipe

    if method not in ("ptq", "qat"):
        raise ConfigError(f"unknown quantization method '{method}'; known: ptq, qat")
    options = _resolve_options(target, None, {**option_fields, "precision": Precision.INT8})
    exporter, out_dir = _checked_exporter(model, options, out)
    recipe = recipe or Recipe()
    if method == "qat":
        _check_qat_request(recipe, qat, eval_data)
    loaded = _load(model, weights, random_init, options)
    calibration = load_calibration(calib, loaded.spec, calib_size)
    evaluation = _parity_dataset(eval_data, loaded.spec)
    evaluation = evaluation.take(eval_limit) if evaluation is not None else None
    log(f"calibrating on {len(calibration.batch)} images from {calibration.source} ({recipe.calibration}) …")
    if method == "ptq":
        quant, metrics = quantize_with_budget(loaded.model, recipe, calibration.batch, evaluation, loaded.spec, log,
                                              lower=exporter.lower_int8)
        extra: dict[str, Any] = {}
    else:
        quant, extra = _run_qat(loaded, recipe, calibration, evaluation, qat, out_dir, log)
        if quant is None:
            return None
        quant = exporter.lower_int8(quant, calibration.batch)
        metrics = evaluate_on(loaded.model, quant, evaluation, loaded.spec)
    summary = {**quant.summary(), "method": method, "calibration": calibration.info(), "accuracy": metrics, **extra}
    return _write_artifact(exporter, quant.model, loaded.spec, loaded.source, options, out_dir, evaluation, log,
                           quantization=summary)


def _check_qat_request(recipe: Any, qat: Any, eval_data: str | None) -> None:
    """Everything QAT needs that can be checked before loading anything."""
    if qat is None or qat.data is None:
        raise ConfigError("QAT trains on labelled images: pass --data (a dataset name or DIR/class_name/*.png)")
    if eval_data is None:
        raise ConfigError("QAT evaluates on held-out labelled images each epoch: pass --eval")
    if recipe.max_drop is not None:
        raise ConfigError("--max-drop is PTQ's budget; QAT trains all the selected matmuls instead")


def _run_qat(loaded: Any, recipe: Any, calibration: Any, evaluation: Any, qat: Any, out_dir: Path,
             log: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    """PTQ for the starting scales, then the training run; (None, {}) on ranks other than 0 under torchrun."""
    from vit_edge.quantize import distributed
    from vit_edge.quantize.checkpoints import QatCheckpoints
    from vit_edge.quantize.ptq import quantize_model
    from vit_edge.quantize.qat import train_qat

    distributed.init_from_env()
    train_set = _training_data(qat.data, loaded.spec)
    _check_qat_data(train_set, loaded.model.cfg.num_classes, qat.config.batch_size * distributed.world_size())
    quant = quantize_model(loaded.model, recipe, calibration.batch)
    identity = {"weights_sha256": loaded.source.get("weights_sha256"), "recipe": recipe.to_json(),
                "calibration": calibration.fingerprint, "train_data": train_set.fingerprint(),
                "qat": qat.config.__dict__, "world_size": distributed.world_size()}
    directory = Path(qat.checkpoint_dir) if qat.checkpoint_dir else Path(f"{out_dir}-qat-checkpoints")
    checkpoints = QatCheckpoints(directory, identity)
    if not qat.resume:
        checkpoints.check_fresh_start(qat.force)
    log(f"QAT on {len(train_set)} images of {train_set.source}; checkpoints in {directory}")
    main = distributed.is_main()  # asked before shutdown: afterwards every process counts as rank 0
    trained, metrics = train_qat(quant, loaded.model, train_set, evaluation, loaded.spec, qat.config, checkpoints,
                                 resume=qat.resume, log=log if main else lambda _: None)
    distributed.shutdown()
    if not main:
        return None, {}
    return trained, {"qat": {**metrics, "checkpoints": str(directory)}}


def _check_qat_data(train_set: Any, num_classes: int, global_batch: int) -> None:
    """QAT trains a classifier's loss on labelled batches: refuse data (or a model) that cannot give one."""
    if num_classes == 0:
        raise ConfigError("QAT trains on labels, and this model is an encoder without a head (its output is an "
                          "embedding); use PTQ (--method ptq)")
    if int(train_set.labels.max()) >= num_classes:
        raise ConfigError(f"{train_set.source} has {len(train_set.class_names)} classes; the model has "
                          f"{num_classes} outputs")
    if len(set(train_set.labels.tolist())) < 2:
        raise ConfigError(f"{train_set.source} holds images of one class only; QAT needs labelled images of "
                          "several classes")
    if len(train_set) < global_batch:
        raise ConfigError(f"{train_set.source} has {len(train_set)} images, fewer than one batch of "
                          f"{global_batch}; lower --batch-size or add images")


def _training_data(data: str, spec: Any) -> Any:
    from vit_edge.data.datasets import load_dataset
    from vit_edge.errors import DataError

    if str(data).lower().endswith((".npy", ".npz")):
        raise DataError(f"{data} holds images without labels; QAT needs a dataset name or DIR/class_name/*.png")
    return load_dataset(data, channels=spec.channels, size=None)
