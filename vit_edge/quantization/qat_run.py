"""A QAT job end to end: checks that need no model, PTQ for the starting scales, training with checkpoints,
and torch.distributed set-up and shutdown (under torchrun only rank 0 returns the model that ships)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from vit_edge.core.errors import ConfigError
from vit_edge.data.datasets import LabelledImages, load_dataset
from vit_edge.models.loaders import LoadedModel
from vit_edge.quantization.calibration import Calibration
from vit_edge.quantization.ptq import QuantizedViT
from vit_edge.quantization.qat import QatTraining
from vit_edge.quantization.recipe import Recipe

__all__ = ["check_qat_request", "run_qat"]


def check_qat_request(recipe: Recipe, qat: QatTraining | None, eval_data: str | None) -> QatTraining:
    """Everything QAT needs that can be checked before loading anything."""
    if qat is None or qat.data is None:
        raise ConfigError("QAT trains on labelled images: pass --data (a dataset name or DIR/class_name/*.png)")
    if eval_data is None:
        raise ConfigError("QAT evaluates on held-out labelled images each epoch: pass --eval")
    if recipe.max_drop is not None:
        raise ConfigError("--max-drop is PTQ's budget; QAT trains all the selected matmuls instead")
    return qat


def run_qat(loaded: LoadedModel, recipe: Recipe, calibration: Calibration, evaluation: LabelledImages | None,
            qat: QatTraining, out_dir: Path, log: Callable[[str], None]) -> tuple[QuantizedViT | None, dict[str, Any]]:
    """PTQ for the starting scales, then the training run; (None, {}) on ranks other than 0 under torchrun."""
    from vit_edge.quantization import distributed
    from vit_edge.quantization.checkpoints import QatCheckpoints
    from vit_edge.quantization.ptq import quantize_model
    from vit_edge.quantization.qat import train_qat

    distributed.init_from_env()
    num_classes = loaded.model.cfg.num_classes
    if num_classes == 0:
        raise ConfigError("QAT trains on labels, and this model is an encoder without a head (its output is an "
                          "embedding); use PTQ (--method ptq)")
    train_set = load_dataset(str(qat.data), loaded.spec, num_classes=num_classes, progress=log)
    _check_qat_data(train_set, qat.config.batch_size * distributed.world_size())
    quant = quantize_model(loaded.model, recipe, calibration.batch)
    identity = {"weights_sha256": loaded.weights_sha256, "recipe": recipe.to_json(),
                "calibration": calibration.fingerprint, "train_data": train_set.fingerprint(),
                "qat": qat.config.__dict__, "world_size": distributed.world_size()}
    directory = Path(qat.checkpoint_dir) if qat.checkpoint_dir else Path(f"{out_dir}-qat-checkpoints")
    checkpoints = QatCheckpoints(directory, identity)
    if not qat.resume:
        checkpoints.check_fresh_start(qat.force)
    log(f"QAT on {len(train_set)} images of {train_set.source}; checkpoints in {directory}")
    if evaluation is None:
        raise ConfigError("QAT evaluates on held-out labelled images each epoch: pass --eval")
    main = distributed.is_main()  # asked before shutdown: afterwards every process counts as rank 0
    trained, metrics = train_qat(quant, loaded.model, train_set, evaluation, loaded.spec, qat.config, checkpoints,
                                 resume=qat.resume, log=log if main else lambda _: None)
    distributed.shutdown()
    if not main:
        return None, {}
    return trained, {"qat": {**metrics, "checkpoints": str(directory)}}


def _check_qat_data(train_set: LabelledImages, global_batch: int) -> None:
    """QAT trains a classifier's loss on labelled batches: refuse data that cannot give one."""
    if len(set(train_set.labels.tolist())) < 2:
        raise ConfigError(f"{train_set.source} holds images of one class only; QAT needs labelled images of "
                          "several classes")
    if len(train_set) < global_batch:
        raise ConfigError(f"{train_set.source} has {len(train_set)} images, fewer than one batch of "
                          f"{global_batch}; lower --batch-size or add images")
