"""Train a small ViT from scratch on a labelled image set (how the shipped Fashion-MNIST model was made)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vit_edge.core.types import InputSpec
from vit_edge.data.datasets import LabelledImages
from vit_edge.data.preprocess import preprocess_uint8
from vit_edge.models.vit import VisionTransformer
from vit_edge.reading.checkpoint import save_checkpoint

__all__ = ["TrainConfig", "train_small_vit", "train_classifier", "evaluate_top1", "augment", "warmup_cosine"]


@dataclass(frozen=True)
class TrainConfig:
    """Defaults reproduce the shipped model (87.78 % after 10 epochs; 77.8 % after the first)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 0.2
    label_smoothing: float = 0.0
    seed: int = 0
    threads: int | None = None
    shift_augment: bool = False


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def augment(images: np.ndarray, rng: np.random.Generator, shift: bool = False) -> np.ndarray:
    """Random horizontal flip and (optionally) a ±2 px shift: cheap augmentations that suit clothing images."""
    flip = rng.random(len(images)) < 0.5
    images = images.copy()
    images[flip] = images[flip, :, ::-1]
    if not shift:
        return images
    dy, dx = rng.integers(-2, 3, size=2)
    return np.roll(images, shift=(int(dy), int(dx)), axis=(1, 2))


def evaluate_top1(model: torch.nn.Module, data: LabelledImages, spec: InputSpec, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent of a PyTorch model on uint8 labelled images."""
    from vit_edge.reading.torch_session import torch_runner
    from vit_edge.runtime.accuracy import predict_logits, top1_accuracy

    return top1_accuracy(predict_logits(torch_runner(model), data, spec, batch_size), data.labels)


def train_classifier(
    model: VisionTransformer,
    spec: InputSpec,
    train: LabelledImages,
    test: LabelledImages,
    cfg: TrainConfig,
    out: Path,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """AdamW with warm-up and cosine decay; saves the final model to `out` and returns its metrics."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total, warmup))
    metrics: dict[str, float] = {}
    for epoch in range(cfg.epochs):
        model.train()
        started, order, losses = time.time(), rng.permutation(len(train)), []
        for start in range(0, len(train), cfg.batch_size):
            index = order[start : start + cfg.batch_size]
            inputs = torch.from_numpy(preprocess_uint8(augment(train.images[index], rng, cfg.shift_augment), spec))
            labels = torch.from_numpy(train.labels[index])
            loss = F.cross_entropy(model(inputs), labels, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        accuracy = evaluate_top1(model, test, spec)
        metrics = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "test_top1": accuracy}
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {metrics['train_loss']:.4f}  test top-1 {accuracy:.2f}%  "
            f"({time.time() - started:.0f} s)")
    save_checkpoint(out, model.eval(), spec, extra={"train": {**metrics, "config": cfg.__dict__,
                                                              "train_data": train.source,
                                                              "train_fingerprint": train.fingerprint()}})
    return metrics


def train_small_vit(data: str, eval_data: str, img_size: int | None, config: TrainConfig, out: Path,
                    log: Callable[[str], None] = print) -> dict[str, float]:
    """The small ViT (patch 4, dim 64, depth 4) trained from scratch on `data`, scored each epoch on `eval_data`."""
    from vit_edge.core.errors import ConfigError
    from vit_edge.reading.registry import FMNIST_TINY_CONFIG

    train_set, eval_set, spec = _training_sets(data, eval_data, img_size)
    if spec.height % 4:
        raise ConfigError(f"image size {spec.height} must be a multiple of the patch size 4")
    model_config = FMNIST_TINY_CONFIG.with_(img_size=spec.height, in_chans=spec.channels,
                                            num_classes=len(spec.class_names))
    torch.manual_seed(config.seed)
    return train_classifier(VisionTransformer(model_config), spec, train_set, eval_set, config, out, log=log)


def _training_sets(data: str, eval_data: str, img_size: int | None) -> tuple[LabelledImages, LabelledImages,
                                                                           InputSpec]:
    """Training and evaluation images for a model trained from scratch: Fashion-MNIST as it is, or any labelled
    source (class folders, a list file, an .npz) squashed to `img_size` (default 32) whose classes become the
    model's."""
    from vit_edge.core.errors import DataError
    from vit_edge.data.datasets import folder_training_spec, load_dataset, load_image_folder
    from vit_edge.reading.registry import FMNIST_SPEC

    if data.startswith("fashion-mnist"):
        spec = FMNIST_SPEC
        train_set = load_dataset(data, spec, num_classes=len(spec.class_names))
    else:
        train_set = load_image_folder(data, channels=3, size=img_size or 32)
        spec = folder_training_spec(img_size or 32, 3, train_set.class_names)
    if len(spec.class_names) < 2:
        raise DataError(f"training needs ≥ 2 classes; {train_set.source} has {len(spec.class_names)}")
    eval_set = load_dataset(eval_data, spec, num_classes=len(spec.class_names),
                            hint="rename them to the training data's class names")
    return train_set, eval_set, spec
