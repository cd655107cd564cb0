"""QAT checkpoints: `last.pt` (everything to resume exactly) and `best.pt` (the best held-out model).

Each write goes to a temporary file and is renamed into place, so an interrupted write leaves the previous
checkpoint intact. Each file carries the run's identity (model weights, recipe, calibration, QAT settings), and a
checkpoint of another run is refused instead of silently loaded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vit_edge.core.errors import ArtifactError, ConfigError
from vit_edge.core.outputs import OutputKind, clear_output, make_folder
from vit_edge.core.records import as_json, from_json
from vit_edge.core.summaries import EpochScore
from vit_edge.quantization import distributed
from vit_edge.reading.checkpoint import save_torch

__all__ = ["QatCheckpoints", "QatState", "QAT_CHECKPOINT_FORMAT"]

QAT_CHECKPOINT_FORMAT = "vit-edge-qat-checkpoint/1"


@dataclass(frozen=True)
class QatState:
    """Where a QAT run stands, saved in last.pt to resume exactly: the epoch and step to go on from, each finished
    epoch's scores, the best so far, and the current epoch's losses so far (its mean is the epoch's loss)."""

    epoch: int = 0
    next_step: int = 0
    history: tuple[EpochScore, ...] = ()
    best: EpochScore | None = None
    epoch_losses: tuple[float, ...] = ()


class QatCheckpoints:
    def __init__(self, directory: str | Path, identity: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.identity = json.loads(json.dumps(identity, sort_keys=True, default=str))
        self.last, self.best = self.directory / "last.pt", self.directory / "best.pt"

    def start_fresh(self, force: bool) -> None:
        """An empty folder for a new run: a folder of vit-edge QAT checkpoints is emptied only with `force`."""
        clear_output(self.directory, OutputKind.QAT_CHECKPOINTS, force)
        make_folder(self.directory)

    def save_last(self, model: nn.Module, optimizer: Any, scheduler: Any, state: QatState) -> None:
        if distributed.is_main():  # the state as plain JSON values: torch.load(weights_only=True) reads them
            save_torch({"format": QAT_CHECKPOINT_FORMAT, "identity": self.identity,
                               "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "state": as_json(state)}, self.last)

    def save_best(self, model: nn.Module, best: EpochScore) -> None:
        save_torch({"format": QAT_CHECKPOINT_FORMAT, "identity": self.identity,
                           "model": model.state_dict(), "best": as_json(best)}, self.best)

    def load_last(self, model: nn.Module, optimizer: Any, scheduler: Any) -> QatState:
        if not self.last.exists():
            raise ConfigError(f"nothing to resume: {self.last} does not exist (run without --resume first)")
        payload = self._read(self.last)
        self._load_model(model, payload, self.last)
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        try:
            return from_json(QatState, payload["state"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"QAT checkpoint {self.last} is damaged ({exc}); start over with --force") from exc

    def load_best(self, model: nn.Module) -> None:
        if self.best.exists():
            self._load_model(model, self._read(self.best), self.best)

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or foreign files raise many types
            raise ArtifactError(f"QAT checkpoint {path} is unreadable ({str(exc).splitlines()[0][:80]}); "
                                "start over with --force") from exc
        if not isinstance(payload, dict) or payload.get("format") != QAT_CHECKPOINT_FORMAT:
            raise ArtifactError(f"{path} is not a vit-edge QAT checkpoint")
        if payload["identity"] != self.identity:
            different = sorted(k for k in self.identity if payload["identity"].get(k) != self.identity[k])
            raise ConfigError(f"QAT checkpoint {path} belongs to another run (different {', '.join(different)}); "
                              "use the same model, recipe and settings, or start over with --force")
        return payload

    @staticmethod
    def _load_model(model: nn.Module, payload: dict[str, Any], path: Path) -> None:
        try:
            model.load_state_dict(payload["model"])
        except RuntimeError as exc:
            raise ConfigError(f"QAT checkpoint {path} does not fit this model: {str(exc).splitlines()[0]}") from exc
