"""vit-edge's own checkpoint: architecture, input spec and weights in one file, loaded with weights_only=True.

A pickle that needs anything beyond tensors and plain containers is refused, so a checkpoint from the internet
cannot run code on load.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vit_edge.core.errors import ModelLoadError
from vit_edge.core.outputs import write_with
from vit_edge.core.types import InputSpec
from vit_edge.models.vit import VisionTransformer, ViTConfig
from vit_edge.reading.families import weights_hint

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "save_torch", "load_checkpoint", "read_state_dict",
           "load_strict", "check_finite"]

CHECKPOINT_FORMAT = "vit-edge-checkpoint/1"


def save_checkpoint(
    path: str | Path, model: VisionTransformer, spec: InputSpec, extra: dict[str, Any] | None = None
) -> Path:
    """Write atomically (temporary file + rename) so an interrupted save never leaves a half file."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.cfg.to_json(),
        "input_spec": spec.to_json(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    return save_torch(payload, path)


def save_torch(payload: Any, path: str | Path) -> Path:
    """torch.save through the one writer (core/outputs.write_with): atomic, a full disk one line."""
    return write_with(path, lambda partial: torch.save(payload, partial))


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """A .pt/.pth (weights_only) or .safetensors file as a dict; every failure becomes one ModelLoadError line."""
    path = Path(path)
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder; give the weights file inside it (.pth, .pt or .safetensors)")
    if not path.is_file():
        raise ModelLoadError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if not _looks_like_torch_save(path):
        raise ModelLoadError(f"{path} is not a PyTorch checkpoint (neither torch.save's zip nor a pickle): give a "
                             ".pth/.pt file or .safetensors")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated, corrupt or unsafe pickles
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise ModelLoadError(
                f"{path} needs more than tensors to unpickle and was refused for safety (weights_only=True); "
                "re-save it as a plain state_dict or .safetensors"
            ) from exc
        raise ModelLoadError(f"cannot read checkpoint {path} (truncated or not a PyTorch file): {text}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} holds a {type(data).__name__}, expected a state dict")
    return data


def _looks_like_torch_save(path: Path) -> bool:
    """torch.save writes a zip (PK…) or, before 1.6, a pickle (protocol 2–5: 0x80 then the protocol byte)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return head == b"PK" or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _read_safetensors(path: Path) -> dict[str, Any]:
    try:
        from safetensors.torch import load_file
    except ImportError as exc:  # safetensors comes with the torch extra; a bare install gets a clear line
        raise ModelLoadError("reading .safetensors needs the 'safetensors' package") from exc
    try:
        return dict(load_file(str(path)))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ModelLoadError(f"cannot read {path} (truncated or not a safetensors file): {exc}") from exc


def load_checkpoint(path: str | Path, data: dict[str, Any] | None = None
                    ) -> tuple[VisionTransformer, InputSpec, dict[str, Any]]:
    """A vit-edge checkpoint → (model in eval mode, its input spec, the extra metadata); `data` is the file's
    content when the caller has read it already."""
    data = read_state_dict(path) if data is None else data
    if data.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(
            f"{path} is not a vit-edge checkpoint; for a timm state dict use  timm:MODEL_NAME --weights {path}"
        )
    try:
        model = VisionTransformer(ViTConfig.from_json(data["config"]))
        load_strict(model, data["state_dict"], str(path))
        spec = InputSpec.from_json(data["input_spec"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{path} is a damaged vit-edge checkpoint: {str(exc).splitlines()[0]}") from exc
    return model.eval(), spec, dict(data.get("extra", {}))


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """load_state_dict with every mismatch turned into one readable ModelLoadError line."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        key = wrong[0]
        problems.append(f"{len(wrong)} shape mismatches (e.g. {key}: file {tuple(state[key].shape)}, "
                        f"model {tuple(own[key].shape)})")
    if problems:
        hint = weights_hint(unexpected)
        raise ModelLoadError(f"weights in {origin} do not fit the architecture: {'; '.join(problems)}{hint}")
    check_finite(state, origin)
    model.load_state_dict({k: v.float() for k, v in state.items()})


def check_finite(state: dict[str, torch.Tensor], origin: str) -> None:
    """NaN or infinite weights refused at load, naming the first such tensor: they surfaced later as 'cannot convert
    float NaN to integer' or as a parity failure that offered --no-verify, never naming the tensor."""
    for key, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelLoadError(f"{key} in {origin} has {bad} non-finite values (NaN or infinite) of "
                                 f"{tensor.numel()}: the weights are damaged, or were saved after training diverged; "
                                 "give weights saved before that")
