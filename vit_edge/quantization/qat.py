"""Quantization-aware training of the PTQ model: same modules, same recipe, same lowering afterwards.

QAT starts from the PTQ scales and the (smoothed) float weights, trains with fake quantization (straight-through
estimator; LSQ learnable scales as an option) and, optionally, the float model as teacher. `finish_qat` turns the
trained model back into fixed INT8 weights and scales, i.e. a QuantizedViT that every target lowers as before.
The loop (`train_qat`) checkpoints atomically, resumes exactly and runs under torchrun (DDP, gloo or NCCL).
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vit_edge.core.errors import ConfigError
from vit_edge.core.progress import tracking
from vit_edge.core.summaries import EpochScore, QatSummary
from vit_edge.core.types import InputSpec
from vit_edge.data.datasets import LabelledImages
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.models.vit import VisionTransformer
from vit_edge.quantization import distributed
from vit_edge.quantization.checkpoints import QatCheckpoints, QatState
from vit_edge.quantization.ptq import QuantizedViT, fingerprint
from vit_edge.quantization.qmodules import ActQuant, _WeightQuantMixin
from vit_edge.training import augment, evaluate_top1, warmup_cosine

__all__ = ["QatConfig", "QatTraining", "start_qat", "finish_qat", "train_qat"]


@dataclass(frozen=True)
class QatConfig:
    """What a QAT run does; `max_steps` caps each epoch (for smoke runs and tests)."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 50
    lsq: bool = False
    distill: bool = False
    distill_weight: float = 0.5
    temperature: float = 2.0
    checkpoint_every: int = 200
    max_steps: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.checkpoint_every < 1:
            raise ConfigError("QAT needs epochs, batch size and checkpoint interval ≥ 1 and a learning rate > 0")
        if not 0.0 <= self.distill_weight <= 1.0 or self.temperature <= 0:
            raise ConfigError("distillation weight must be in [0, 1] and the temperature > 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("--max-steps must be ≥ 1")


@dataclass(frozen=True)
class QatTraining:
    """A QAT request as the API takes it: the labelled training data, the settings, where checkpoints go."""

    data: str | None
    config: QatConfig = QatConfig()
    checkpoint_dir: str | Path | None = None
    resume: bool = False
    force: bool = False


def start_qat(quant: QuantizedViT, lsq: bool) -> VisionTransformer:
    """A trainable copy of the PTQ model: float weights (from before rounding) under fake quantization."""
    model = cast(VisionTransformer, copy.deepcopy(quant.model))  # QAT trains the module graph, never an NPU's
    for parameter in model.parameters():  # LayerNorms, embeddings, a float head: all fine-tuned
        parameter.requires_grad_(True)
    floats = dict(quant.smoothed_float.named_modules()) if quant.smoothed_float is not None else {}
    per_channel = not quant.recipe.per_tensor_weights
    for name, module in model.named_modules():
        if isinstance(module, _WeightQuantMixin):
            source = floats.get(name)
            weight = source.weight if source is not None else module.dequantized_weight()
            module.start_training(weight, lsq, per_channel)
    for module in model.modules():
        if isinstance(module, ActQuant) and module.enabled and not hasattr(module, "train_scale"):
            module.start_training(lsq)
    return model


def finish_qat(quant: QuantizedViT, trained: VisionTransformer) -> QuantizedViT:
    """The trained model with fixed INT8 weights and scales: what PTQ would have produced, ready for lowering."""
    model = copy.deepcopy(trained).eval()
    for module in model.modules():
        if isinstance(module, _WeightQuantMixin):
            module.finish_training()
    for module in model.modules():
        if isinstance(module, ActQuant) and hasattr(module, "train_scale"):
            module.finish_training()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return replace(quant, model=model, scales_sha256=fingerprint(model), sqnr_db={}, smoothed_float=None)


def _batch_indices(config: QatConfig, size: int, epoch: int, rank: int, world: int) -> list[np.ndarray]:
    """The epoch's batches for this rank: a permutation fixed by (seed, epoch), so a resumed run sees the same."""
    order = np.random.default_rng((config.seed, epoch)).permutation(size)
    global_batch = config.batch_size * world
    batches = [order[i : i + global_batch][rank::world] for i in range(0, size - global_batch + 1, global_batch)]
    return batches[: config.max_steps] if config.max_steps else batches


def _inputs(train: LabelledImages, index: np.ndarray, spec: InputSpec, config: QatConfig, epoch: int,
            step: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = augment(train.images[index], np.random.default_rng((config.seed, epoch, step, 1)))  # same on resume
    return torch.from_numpy(preprocess_uint8(images, spec)), torch.from_numpy(train.labels[index])


def _loss(logits: torch.Tensor, labels: torch.Tensor, teacher: nn.Module | None, inputs: torch.Tensor,
          config: QatConfig) -> torch.Tensor:
    loss = F.cross_entropy(logits, labels)
    if teacher is None:
        return loss
    with torch.no_grad():
        soft = F.softmax(teacher(inputs) / config.temperature, dim=-1)
    distill = F.kl_div(F.log_softmax(logits / config.temperature, dim=-1), soft, reduction="batchmean")
    return (1 - config.distill_weight) * loss + config.distill_weight * distill * config.temperature**2


@dataclass
class _Run:
    """Everything a step needs, so the loop's functions stay short."""

    model: nn.Module
    trainable: nn.Module  # `model`, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    teacher: nn.Module | None
    config: QatConfig
    spec: InputSpec
    log: Callable[[str], None]


def _optimizer(model: nn.Module, config: QatConfig, total_steps: int) -> tuple[Any, Any]:
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    warmup = min(config.warmup_steps, max(1, total_steps // 10))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total_steps, warmup))
    return optimizer, scheduler


def _train_epoch(run: _Run, train: LabelledImages, epoch: int, first_step: int, checkpoints: QatCheckpoints,
                 state: QatState) -> float:
    batches = _batch_indices(run.config, len(train), epoch, distributed.rank(), distributed.world_size())
    run.model.train()
    losses, started = list(state.epoch_losses) if first_step else [], time.time()
    what = f"QAT epoch {epoch + 1}/{run.config.epochs}"
    with tracking(what, len(batches), "step", least=1, quiet=not distributed.is_main()) as progress:
        if first_step:  # a resumed epoch starts where it stopped
            progress.reach(first_step)
        for step in range(first_step, len(batches)):
            inputs, labels = _inputs(train, batches[step], run.spec, run.config, epoch, step)
            loss = _loss(run.trainable(inputs), labels, run.teacher, inputs, run.config)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            run.scheduler.step()
            losses.append(float(loss.detach()))
            progress.advance(note=f"loss {np.mean(losses[-20:]):.4f}")
            if not progress.shown and ((step + 1) % 20 == 0 or step + 1 == len(batches)):  # a log has no bar
                run.log(f"epoch {epoch + 1}/{run.config.epochs} step {step + 1}/{len(batches)}  loss "
                        f"{np.mean(losses[-20:]):.4f}  ({time.time() - started:.0f} s)")
            if (step + 1) % run.config.checkpoint_every == 0 and step + 1 < len(batches):
                checkpoints.save_last(run.model, run.optimizer, run.scheduler,
                                      replace(state, epoch=epoch, next_step=step + 1, epoch_losses=tuple(losses)))
    return float(np.mean(losses)) if losses else float("nan")


def train_qat(quant: QuantizedViT, float_model: nn.Module, train: LabelledImages, evaluation: LabelledImages,
              spec: InputSpec, config: QatConfig, checkpoints: QatCheckpoints, resume: bool = False,
              log: Callable[[str], None] = print) -> tuple[QuantizedViT, QatSummary]:
    """Train, evaluate each epoch on `evaluation`, keep the best; returns the best model, frozen, and the run."""
    torch.manual_seed(config.seed)
    model = start_qat(quant, config.lsq)
    total = config.epochs * len(_batch_indices(config, len(train), 0, distributed.rank(),
                                               distributed.world_size()))
    optimizer, scheduler = _optimizer(model, config, total)
    state = QatState()
    if resume:
        state = checkpoints.load_last(model, optimizer, scheduler)
        log(f"resuming at epoch {state.epoch + 1}, step {state.next_step}" if state.epoch < config.epochs
            else f"the run finished its {config.epochs} epoch(s); taking its best model")
    teacher = float_model.eval() if config.distill else None
    run = _Run(model, distributed.wrap(model), optimizer, scheduler, teacher, config, spec, log)
    for epoch in range(state.epoch, config.epochs):
        loss = _train_epoch(run, train, epoch, state.next_step if epoch == state.epoch else 0, checkpoints, state)
        accuracy = evaluate_top1(model, evaluation, spec) if distributed.is_main() else float("nan")
        state = replace(state, history=(*state.history, EpochScore(epoch + 1, accuracy, train_loss=loss)))
        log(f"epoch {epoch + 1}/{config.epochs}: loss {loss:.4f}  held-out top-1 {accuracy:.2f}%")
        if distributed.is_main() and (state.best is None or accuracy > state.best.eval_top1):
            best = EpochScore(epoch + 1, accuracy)
            state = replace(state, best=best)
            checkpoints.save_best(model, best)
        state = replace(state, epoch=epoch + 1, next_step=0, epoch_losses=())
        checkpoints.save_last(model, optimizer, scheduler, state)
        distributed.barrier()
    checkpoints.load_best(model)
    run_summary = QatSummary(history=state.history, best=state.best, config=asdict(config), train_data=train.source,
                             train_fingerprint=train.fingerprint(), eval_data=evaluation.source,
                             world_size=distributed.world_size())
    return finish_qat(quant, model), run_summary
