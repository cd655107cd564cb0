"""One entry point from whatever the user names to a reference ViT plus its input spec and provenance.

MODEL may be: a shipped model name ('fmnist-vit-tiny'), a reference variant ('vit_small_patch16'), 'timm:NAME',
a Hugging Face directory (config.json + weights), a vit-edge checkpoint file, or an nn.Module already in memory.
A dense model (Depth Anything) loads as a `DenseModel`: the reference ViT as its encoder, vit-edge's neck and head.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vit_edge.core.errors import ConfigError, ModelLoadError, UnsupportedModelError, did_you_mean
from vit_edge.core.identity import MergeCost, ModelRef, Provenance
from vit_edge.core.options import (
    OUTPUTS,
    check_count,
    check_flag,
    check_instance,
    check_layers,
    check_model,
    check_path,
    check_size,
    shown,
)
from vit_edge.core.types import InputSpec
from vit_edge.models.dense_heads import DenseModel
from vit_edge.models.dpt import DPTModel
from vit_edge.models.rope import as_half_layout
from vit_edge.models.vit import VisionTransformer, ViTConfig, to_hw
from vit_edge.reading.checkpoint import check_finite, load_checkpoint, load_strict, read_state_dict
from vit_edge.reading.dense_hf import convert_dense_hf_module, is_dense_architecture, load_dense_hf_directory
from vit_edge.reading.depth_anything_v2 import KIND as DEPTH_ANYTHING_V2
from vit_edge.reading.depth_anything_v2 import is_depth_anything_v2_state, load_depth_anything_v2
from vit_edge.reading.families import config_family, original_layout
from vit_edge.reading.families.depth_anything import DEPTH_ANYTHING
from vit_edge.reading.families.dpt import DPT
from vit_edge.reading.hf_compat import (
    architecture_name,
    convert_hf_module,
    is_hf_directory,
    load_hf_directory,
    read_hf_folder,
)
from vit_edge.reading.registry import (
    REFERENCE_NAMES,
    SHIPPED_MODELS,
    TIMM_NAMES,
    family_of,
    reference_config,
    timm_entry,
)
from vit_edge.reading.timm_compat import (
    eva_state_to_reference,
    is_eva_state_dict,
    is_timm_vit,
    timm_config,
    timm_input_spec,
)
from vit_edge.reading.transreid import is_transreid_state_dict, load_transreid

__all__ = ["LoadedModel", "ReIDSelection", "load_model", "with_merge", "state_dict_sha256", "config_from_timm_state"]


@dataclass(frozen=True)
class ReIDSelection:
    """What a re-identification checkpoint (TransReID) is specialised to at export: its camera/view and output."""

    camera: int = 0
    view: int = 0
    neck_feat: str = "after"  # the BNNeck output; "before": the normed class token
    stride: int | None = None  # MODEL.STRIDE_SIZE, where the weights alone cannot tell
    num_heads: int | None = None
    img_size: int | tuple[int, int] | None = None  # INPUT.SIZE_TEST: read as the trained geometry with `stride`

    def is_default(self) -> bool:
        return self == ReIDSelection(img_size=self.img_size)


@dataclass
class LoadedModel:
    """A reference ViT (or a dense model on one) in eval mode, what it expects as input, and where it came from."""

    model: VisionTransformer | DenseModel
    spec: InputSpec
    source: Provenance = field(default_factory=Provenance)
    unmerged: VisionTransformer | None = None  # with token merging: the same model without it (the accuracy baseline)

    @property
    def ref(self) -> ModelRef:
        """How to load this model again, read from the source the loader wrote (typed in core.identity)."""
        return ModelRef.of(self.source, self.spec.img_size)

    @property
    def kind(self) -> str:
        """Where it came from: shipped, reference, timm, huggingface, transreid, depth-anything-v2, checkpoint or
        module."""
        return self.ref.kind

    @property
    def weights_sha256(self) -> str:
        """The hash of the weights as loaded (before --layers drops blocks), what a rebuilt model must match."""
        return str(self.ref.weights_sha256)

    @property
    def vit(self) -> VisionTransformer:
        """The model as a ViT, for what is built for ViTs alone (QAT, tune); a dense model (encoder, neck and head)
        is refused in one line (its PTQ goes through quantization/dense.py)."""
        if isinstance(self.model, DenseModel):
            raise UnsupportedModelError(f"QAT and tune are not built yet for a dense model "
                                        f"({self.source.family}: encoder, neck, head); use post-training INT8 "
                                        "or float")
        return self.model

    @property
    def tokens_per_block(self) -> list[int] | None:
        """With token merging: the tokens each block computes on."""
        if isinstance(self.model, DenseModel):
            return None
        cfg = self.model.cfg
        return cfg.tokens_after_merge if cfg.choices.merge else None

    def record_merge(self, cost: MergeCost) -> None:
        """What token merging cost on labelled data (or only its r and tokens), kept in the manifest's source."""
        self.source = replace(self.source, merge=cost)


def state_dict_sha256(model: nn.Module) -> str:
    """A hash of the weights that does not depend on how they were stored."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def _unwrap_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Training checkpoints often nest the weights under 'model' or 'state_dict' (DeiT's releases do)."""
    for key in ("model", "state_dict", "model_ema"):
        if isinstance(state.get(key), dict):
            return state[key]
    return state


def config_from_timm_state(cfg: ViTConfig, state: dict[str, torch.Tensor]) -> ViTConfig:
    """The name's config corrected by what the weights show: head size, tokens, LayerScale, image size.

    The weights win where they disagree with timm's name (a fine-tuned head, registers, another resolution).
    """
    if "patch_embed.proj.weight" not in state or ("pos_embed" not in state and cfg.abs_pos_embed):
        return cfg  # not a timm ViT state dict: load_strict says what does not fit
    head = state.get("head.weight")
    _check_ranks(state, {"head.weight": 2, "cls_token": 3, "reg_token": 3})
    changes: dict[str, Any] = {"num_classes": int(head.shape[0]) if head is not None else 0,
                               "class_token": "cls_token" in state,
                               "reg_tokens": int(state["reg_token"].shape[1]) if "reg_token" in state else 0}
    if ("blocks.0.ls1.gamma" in state) != (cfg.init_values is not None):  # LayerScale as the weights have it
        changes["init_values"] = 1e-5 if "blocks.0.ls1.gamma" in state else None
    if changes["num_classes"] and cfg.global_pool == "token" and not changes["class_token"]:
        changes["global_pool"] = "avg"
    cfg = _safe_config(cfg, changes)
    pos = state.get("pos_embed")  # rotary-only models (DINOv3) have none: their size is the name's
    if pos is not None and pos.ndim == 3:
        patches = pos.shape[1] - (0 if cfg.no_embed_class else cfg.num_prefix_tokens)
        if patches < 1:
            raise ModelLoadError(f"pos_embed {tuple(pos.shape)} holds no patch positions: not trained ViT weights")
        if patches != cfg.num_patches:  # fine-tuned at another resolution: build at its size, resize on request
            side = int(round(patches**0.5))
            if side * side != patches:
                raise ModelLoadError(f"pos_embed has {patches} patch positions, not a square grid; pass --img-size")
            step = cfg.stride * cfg.feature_reduction
            cfg = _safe_config(cfg, {"img_size": (side - 1) * step + cfg.patch_size * cfg.feature_reduction})
    return cfg


def _reference_state(cfg: ViTConfig, state: dict[str, torch.Tensor]) -> tuple[ViTConfig, dict[str, torch.Tensor]]:
    """A timm-family state dict (timm's names, Eva's, or Meta's DINOv3 and PE layouts) in the reference's names, with
    the config corrected by what the weights show: the one path for `timm:NAME --weights` and timm modules."""
    original = original_layout(state)  # facebookresearch/dinov3's or perception_models' own checkpoint
    if original is not None:
        state = original.to_reference(state, cfg)
    elif is_eva_state_dict(state):
        state = eva_state_to_reference(state)
    return _half_rotation(config_from_timm_state(cfg, state), state)


def _half_rotation(cfg: ViTConfig, state: dict[str, torch.Tensor]) -> tuple[ViTConfig, dict[str, torch.Tensor]]:
    """An interleaved rotary layout (EVA-02) as rotate-half on reordered q/k rows: the same numbers, and a graph
    XNNPACK takes whole (see rope.as_half_layout)."""
    if cfg.rope == "none" or cfg.rope_rotate_half:
        return cfg, state
    return cfg.with_(rope_rotate_half=True), as_half_layout(cfg.num_heads, state)


def _as_half_rotation(model: VisionTransformer) -> VisionTransformer:
    """A reference ViT built with an interleaved rotation, as the same numbers in rotate-half (see _half_rotation);
    the model itself when it has none."""
    cfg, state = _half_rotation(model.cfg, {k: v.detach() for k, v in model.state_dict().items()})
    if cfg == model.cfg:
        return model
    clone = VisionTransformer(cfg)
    clone.load_state_dict(state)
    return clone


def _check_ranks(state: dict[str, Any], ranks: dict[str, int]) -> None:
    """The tensors the architecture is read from must be tensors of their rank (a 0-d head has no class count)."""
    for key, rank in ranks.items():
        value = state.get(key)
        if value is not None and (not isinstance(value, torch.Tensor) or value.ndim != rank):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ModelLoadError(f"{key} in the weights is {shape}, not a {rank}-d tensor: not timm ViT weights")


def _safe_config(cfg: ViTConfig, changes: dict[str, Any]) -> ViTConfig:
    try:
        return cfg.with_(**changes)
    except ValueError as exc:
        raise ModelLoadError(f"the weights describe an impossible architecture: {exc}") from exc


def _load_timm(name: str, weights: Path | None, random_init: bool) -> LoadedModel:
    entry = timm_entry(name)
    cfg = entry.config
    source = Provenance("timm", name, family=entry.family)
    if weights is None:
        model = VisionTransformer(_half_rotation(cfg, {})[0])  # random weights: any q/k channel order is as good
        return LoadedModel(model.eval(), entry.spec.with_(img_size=cfg.img_size), replace(source, random_init=True))
    state = {k: v for k, v in _unwrap_state(read_state_dict(weights)).items() if isinstance(v, torch.Tensor)}
    cfg, state = _reference_state(cfg, state)
    model = VisionTransformer(cfg)
    load_strict(model, state, str(weights))
    source = replace(source, weights_file=str(weights))
    return LoadedModel(model.eval(), entry.spec.with_(img_size=cfg.img_size), source)


def _load_named(name: str, weights: Path | None, random_init: bool, num_classes: int | None,
                img_size: int | tuple[int, int] | None) -> LoadedModel:
    if name in SHIPPED_MODELS:
        model, spec, extra = load_checkpoint(SHIPPED_MODELS[name])
        return LoadedModel(model, spec, Provenance("shipped", name, train=_training_record(extra)))
    if name.startswith("timm:"):
        return _load_timm(name[len("timm:"):], weights, random_init)
    if name in REFERENCE_NAMES:
        try:
            cfg = reference_config(name, img_size=img_size or 224, num_classes=num_classes or 1000)
        except ValueError as exc:  # e.g. an img_size below the patch size
            raise ConfigError(f"img_size {img_size} for {name}: {exc}") from exc
        model = VisionTransformer(cfg)
        if weights is not None:
            load_strict(model, _unwrap_state(read_state_dict(weights)), str(weights))
        spec = InputSpec(img_size=cfg.img_size)
        source = Provenance("reference", name, random_init=weights is None,
                            weights_file=None if weights is None else str(weights))
        return LoadedModel(model.eval(), spec, source)
    known = [*SHIPPED_MODELS, *REFERENCE_NAMES, *(f"timm:{n}" for n in TIMM_NAMES)]
    raise UnsupportedModelError(
        f"'{name}' is not a file, a directory or a known model{did_you_mean(name, known)}; "
        f"use a path, a shipped model ({', '.join(SHIPPED_MODELS)}), a reference ViT (vit_tiny_patch16, ...) "
        "or timm:NAME"
    )


def _load_path(path: Path, reid: ReIDSelection, img_size: int | tuple[int, int] | None,
               max_depth: float | None) -> LoadedModel:
    if is_hf_directory(path) and is_dense_architecture(architecture_name(read_hf_folder(path).config)):
        return LoadedModel(*load_dense_hf_directory(path))
    if is_hf_directory(path):
        model, spec, source = load_hf_directory(path)
        return LoadedModel(model, spec, source)
    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory without config.json: not a Hugging Face model directory")
    state = read_state_dict(path)  # read once: what it holds decides the loader
    if is_depth_anything_v2_state(_unwrap_state(state)):  # built at img_size: their own resampling, not ours
        return LoadedModel(*load_depth_anything_v2(path, _unwrap_state(state), img_size, max_depth))
    if is_transreid_state_dict(state):
        size = reid.img_size if reid.stride else None  # with --stride, --img-size is the trained geometry
        model, spec, source = load_transreid(path, reid.camera, reid.view, reid.neck_feat, state=state,
                                             img_size=None if size is None else to_hw(size), stride=reid.stride,
                                             num_heads=reid.num_heads)
        return LoadedModel(model, spec, source)
    model, spec, extra = load_checkpoint(path, data=state)
    return LoadedModel(model, spec, Provenance("checkpoint", str(path), train=_training_record(extra)))


def _training_record(extra: dict[str, Any]) -> dict[str, Any]:
    """A vit-edge checkpoint's training record (what training.py saved beside the weights), as it holds it."""
    train = extra.get("train", {})
    return train if isinstance(train, dict) else {}


def _load_module(model: nn.Module) -> LoadedModel:
    """A model object in memory: vit-edge's own, a timm VisionTransformer or a transformers ViT-family module."""
    if isinstance(model, DenseModel):
        check_finite(model.state_dict(), type(model).__name__)
        return LoadedModel(model.eval(), InputSpec(img_size=model.cfg.img_size),
                           Provenance("module", type(model).__name__,
                                      family=(DPT if isinstance(model, DPTModel) else DEPTH_ANYTHING).name))
    if type(model).__module__.startswith("transformers.") and is_dense_architecture(type(model).__name__):
        dense, spec, source = convert_dense_hf_module(model)
        return LoadedModel(dense, spec, replace(source, kind="module"))
    if isinstance(model, VisionTransformer):
        check_finite(model.state_dict(), type(model).__name__)
        channels = model.cfg.in_chans
        spec = (InputSpec(img_size=model.cfg.img_size) if channels == 3 else
                InputSpec(img_size=model.cfg.img_size, channels=channels, mean=(0.5,) * channels,
                          std=(0.5,) * channels))
        return LoadedModel(_as_half_rotation(model).eval(), spec, Provenance("module", type(model).__name__))
    if is_timm_vit(model):
        return _load_timm_module(model)
    if type(model).__module__.startswith("transformers."):
        ours, spec, source = convert_hf_module(model)
        return LoadedModel(ours.eval(), spec, replace(source, kind="module"))
    raise UnsupportedModelError(
        f"{type(model).__name__} is not a ViT vit-edge can read: pass a timm VisionTransformer, a transformers "
        "ViT/DINOv2/CLIP/SigLIP vision module, a vit-edge VisionTransformer, or a file (timm:NAME --weights FILE)"
    )


def _load_timm_module(model: nn.Module) -> LoadedModel:
    """A timm VisionTransformer or Eva in memory: its config read from its modules, its weights in the reference's
    names, its input spec from its pretrained_cfg sized to the module's own input (it may be built for another)."""
    state = {k: v.detach() for k, v in model.state_dict().items()}
    cfg, state = _reference_state(timm_config(model), state)
    ours = VisionTransformer(cfg)
    load_strict(ours, state, type(model).__name__)
    pretrained = dict(getattr(model, "pretrained_cfg", {}) or {})
    height, width = cfg.image_hw
    spec = timm_input_spec(pretrained).with_(img_size=height if height == width else (height, width))
    name = str(pretrained.get("architecture", type(model).__name__))
    return LoadedModel(ours.eval(), spec, Provenance("module", f"timm {name}", family=family_of(name)))


def _looks_like_path(model: str) -> bool:
    return "/" in model or model.endswith((".pt", ".pth", ".safetensors", ".bin")) or Path(model).exists()


def load_model(
    model: str | Path | nn.Module,
    weights: str | Path | None = None,
    random_init: bool = False,
    num_classes: int | None = None,
    img_size: int | tuple[int, int] | None = None,
    reid: ReIDSelection = ReIDSelection(),
    merge: int = 0,
    output: str = "pooled",
    layers: tuple[int, ...] = (),
    dynamic_size: bool = False,
    max_depth: float | None = None,
) -> LoadedModel:
    """Resolve `model` to a reference ViT; `img_size` resizes the position embeddings (bicubic as the source does,
    prefix kept); `merge` makes every block merge that many tokens (ToMe); `output` and `layers` say what it returns
    (pooled, or the tokens of the last block or of `layers`); `dynamic_size` makes a graph for any input size that
    is a multiple of the patch (the table resampled at every call, `img_size` the default); same weights in every
    case. `max_depth` makes a Depth Anything V2 checkpoint in its authors' layout the metric model (sigmoid ×
    max_depth), which its weights do not say."""
    layers = _check_arguments(model, weights, random_init, num_classes, img_size, reid, merge, output, layers)
    check_flag("dynamic_size", dynamic_size)
    _check_max_depth(max_depth)
    weights = Path(weights) if weights is not None else None
    if isinstance(model, nn.Module):
        loaded = _load_module(model)
    elif isinstance(model, Path) or _looks_like_path(str(model)):
        if weights is not None:
            raise ConfigError("--weights goes with timm:NAME or a reference ViT name, not with a model path")
        path = Path(model)
        if not path.exists():
            raise ModelLoadError(f"model path {path} does not exist")
        loaded = _load_path(path, reid, img_size, max_depth)
    else:
        needs_weights = str(model).startswith("timm:") or str(model) in REFERENCE_NAMES
        if needs_weights and weights is None and not random_init:
            raise ConfigError(f"{model} needs --weights FILE (or --random-init to export an untrained model)")
        if weights is not None and random_init:
            raise ConfigError("--weights and --random-init exclude each other")
        loaded = _load_named(str(model), weights, random_init, num_classes, img_size)
    if loaded.kind != "transreid" and not reid.is_default():
        raise ConfigError("--camera, --view, --neck-feat, --stride and --num-heads apply to re-identification "
                          "checkpoints (TransReID) only; leave them out for this model")
    if max_depth is not None and loaded.kind != DEPTH_ANYTHING_V2:
        raise ConfigError("--max-depth applies to Depth Anything V2 checkpoints in its authors' layout (.pth) only, "
                          "whose weights do not say it; a transformers folder has it in config.json: leave it out")
    if dynamic_size and loaded.kind == DEPTH_ANYTHING_V2:
        raise ConfigError("--dynamic-size is not built for a Depth Anything V2 checkpoint in its authors' layout: "
                          "their forward resamples the 518 px position embedding with an offset of its own, which "
                          "vit-edge does once, at load; export it at one size (--img-size) instead")
    loaded = _with_output(_with_merge(_finish(loaded, img_size, dynamic_size), merge), output, layers)
    return _with_dynamic_size(loaded) if dynamic_size else loaded


def _check_arguments(model: Any, weights: Any, random_init: Any, num_classes: Any, img_size: Any, reid: Any,
                     merge: Any, output: Any, layers: Any) -> tuple[int, ...]:
    """load_model's arguments by type, before anything is read: `img_size=-32` is one ConfigError naming it, not a
    ValueError from the architecture. The layers as a tuple."""
    check_model(model)
    check_path("weights", weights, optional=True)
    check_flag("random_init", random_init)
    check_count("num_classes", num_classes, least=0, optional=True)
    check_size("img_size", img_size, optional=True)
    check_instance("reid", reid, ReIDSelection, "a vit_edge.reading.loaders.ReIDSelection", optional=False)
    check_count("merge", merge, least=0)
    if not isinstance(output, str) or output not in OUTPUTS:
        raise ConfigError(f"output must be one of {', '.join(OUTPUTS)}, not {shown(output)}")
    return check_layers(layers)


def _check_max_depth(max_depth: object) -> None:
    """A metric depth range: a finite number > 0 (metres) or None."""
    if max_depth is None:
        return
    if isinstance(max_depth, bool) or not isinstance(max_depth, (int, float)) or not 0 < max_depth < float("inf"):
        raise ConfigError(f"max_depth must be a positive number of metres (20 for Depth Anything V2's indoor metric "
                          f"models, 80 for the outdoor ones), not {shown(max_depth)}")


def _with_output(loaded: LoadedModel, output: str, layers: tuple[int, ...]) -> LoadedModel:
    """The model returning `output` (pooled, the patch tokens, or them as a feature map), of the last block or of
    the blocks in `layers`; same weights."""
    if isinstance(loaded.model, DenseModel) and (output != "pooled" or layers):
        raise ConfigError(f"--output {output}: this model returns its depth map ({loaded.source.family}); "
                          "--output and --layers choose what a ViT encoder returns: leave them out")
    if output == "pooled" or isinstance(loaded.model, DenseModel):
        return loaded
    if loaded.kind == "transreid":
        raise ConfigError(f"--output {output}: a TransReID checkpoint is exported for its re-identification "
                          "embedding (--neck-feat); its patch tokens were not trained to be read")
    try:
        loaded.model = loaded.model.reconfigured(output=output)
    except ValueError as exc:
        raise ConfigError(f"--output {output}: {exc}") from exc
    if layers:
        loaded.source = replace(loaded.source, depth_loaded=loaded.model.cfg.depth)
        try:
            loaded.model = loaded.model.with_layers(list(layers))
        except ValueError as exc:
            raise ConfigError(f"--layers {','.join(map(str, layers))}: {exc}") from exc
    loaded.source = replace(loaded.source, architecture=loaded.model.cfg.to_json(),
                            output_shape=_output_shape(loaded.model.cfg, loaded.model.cfg.grid))
    return loaded


def _output_shape(cfg: ViTConfig, grid: tuple[int, int]) -> tuple[int, ...]:
    """A dense output's shape per sample at the patch grid `grid`: (L,) N, D for tokens, (L,) D, rows, cols for
    features."""
    rows, cols = grid
    shape = (rows * cols, cfg.embed_dim) if cfg.choices.output == "tokens" else (cfg.embed_dim, rows, cols)
    return ((len(cfg.choices.layers),) if cfg.choices.layers else ()) + shape


def _with_dynamic_size(loaded: LoadedModel) -> LoadedModel:
    """The model as a graph for any input size that is a multiple of the patch (ExportChoices.dynamic_size), the
    spec saying so (size_multiple) with the loaded size as the default; what such a graph cannot hold is refused."""
    cfg = loaded.model.cfg.encoder if isinstance(loaded.model, DenseModel) else loaded.model.cfg
    step, spec = cfg.patch_size, loaded.spec
    if spec.height % step or spec.width % step or min(spec.height, spec.width) < 2 * step:
        raise ConfigError(f"--dynamic-size: the default input size {spec.height}x{spec.width} must be multiples of "
                          f"the patch size {step}, {2 * step} at least; pass --img-size")
    if spec.keep_aspect_ratio and spec.ensure_multiple_of % step:
        raise ConfigError(f"--dynamic-size: the preprocessor rounds each side to a multiple of "
                          f"{spec.ensure_multiple_of}, which the model's patch {step} does not divide")
    try:
        loaded.model = (loaded.model.with_dynamic_size() if isinstance(loaded.model, DenseModel)
                        else loaded.model.reconfigured(dynamic_size=True))
    except ValueError as exc:
        raise ConfigError(f"--dynamic-size: {exc}; export it at one size (--img-size) instead") from exc
    loaded.spec = spec.with_(size_multiple=step)
    source = replace(loaded.source, architecture=loaded.model.cfg.to_json())
    if source.output_shape is not None:  # at the default size (the stored table's grid may be another)
        grid = (spec.height // step, spec.width // step)
        source = replace(source, output_shape=((*source.output_shape[:-2], spec.height, spec.width)
                                               if isinstance(loaded.model, DenseModel)
                                               else _output_shape(loaded.model.cfg, grid)))
    loaded.source = source
    return loaded


def with_merge(loaded: LoadedModel, merge: int) -> LoadedModel:
    """A new LoadedModel whose model merges `merge` tokens per block (ToMe); `loaded` itself is left as it is."""
    if loaded.unmerged is not None:
        raise ValueError("with_merge takes the unmerged model")
    copy = LoadedModel(loaded.model, loaded.spec, loaded.source)
    return _with_merge(copy, merge)


def _with_merge(loaded: LoadedModel, merge: int) -> LoadedModel:
    """ToMe on the loaded model; the weights (and their sha256) are unchanged, the architecture says `merge`."""
    from vit_edge.models.merging import max_merge

    if merge == 0:
        return loaded
    if isinstance(loaded.model, DenseModel):
        raise ConfigError(f"--merge {merge}: token merging leaves no patch grid for the depth head to read; leave "
                          "--merge out")
    cfg = loaded.model.cfg
    most = max_merge(cfg.num_tokens, cfg.num_prefix_tokens)
    if not 0 < merge <= most:
        raise ConfigError(f"--merge {merge}: at {cfg.image_hw[0]}x{cfg.image_hw[1]} the model has {cfg.num_patches} "
                          f"patch tokens and a block merges at most half of them; use --merge 1 to {most}")
    try:
        merged = loaded.model.with_merge(merge)
    except ValueError as exc:  # e.g. rotary embeddings: a merged token has no single position
        raise ConfigError(f"--merge {merge}: {exc}") from exc
    loaded.unmerged, loaded.model = loaded.model, merged
    loaded.source = replace(loaded.source, architecture=merged.cfg.to_json(),
                            tokens_per_block=tuple(merged.cfg.tokens_after_merge))
    return loaded


def _finish(loaded: LoadedModel, img_size: int | tuple[int, int] | None, dynamic_size: bool) -> LoadedModel:
    """The model at its input size: `img_size`, or the spec's (a Hugging Face processor's crop, DINOv2's 224 of
    518), the position table resampled once as the source does; with `dynamic_size` the table is kept as trained
    and resampled in the graph at every call (the size becomes the default). Then its hash and architecture."""
    cfg = loaded.model.cfg.encoder if isinstance(loaded.model, DenseModel) else loaded.model.cfg
    if img_size is not None:  # the user's size wins over a processor's (even where it is the config's own)
        height, width = to_hw(img_size)
        step = cfg.patch_size * cfg.feature_reduction
        if (height, width) != cfg.image_hw and (min(height, width) < step or (
                cfg.patch_stride in (0, cfg.patch_size) and (height % step or width % step))):
            raise ConfigError(f"--img-size {height}x{width} must be a positive multiple of the patch size {step}")
        if (height, width) != (loaded.spec.height, loaded.spec.width):
            loaded.spec = loaded.spec.with_(img_size=img_size)
    if (loaded.spec.height, loaded.spec.width) != cfg.image_hw and not dynamic_size:
        loaded.source = replace(loaded.source, pos_embed_resampled_from=cfg.img_size)
        try:
            loaded.model = loaded.model.with_img_size(loaded.spec.img_size)
        except ValueError as exc:
            raise ConfigError(f"--img-size {loaded.spec.height}x{loaded.spec.width}: {exc}") from exc
    loaded.spec = loaded.spec.with_(channels=loaded.model.cfg.in_chans)
    source = replace(loaded.source, weights_sha256=state_dict_sha256(loaded.model),
                     architecture=loaded.model.cfg.to_json())
    if isinstance(loaded.model, DenseModel):
        # per sample: (H, W) or (C, H, W), at the loaded size (the input's, where the graph takes any size)
        shape = tuple(loaded.model.cfg.output_shape)
        source = replace(source, output_shape=(*shape[:-2], loaded.spec.height, loaded.spec.width)
                         if dynamic_size else shape)
    elif source.family is None:
        source = replace(source, family=config_family(loaded.model.cfg).name)
    loaded.source = source
    return loaded
