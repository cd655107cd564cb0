"""A QAT job end to end: checks that need no model, PTQ for the starting scales, training with checkpoints,
and torch.distributed set-up and shutdown (under torchrun only rank 0 returns the model that ships)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from vit_edge.core.errors import ConfigError
from vit_edge.core.summaries import QatSummary
from vit_edge.data.datasets import ImageData, LabelledImages, load_dataset
from vit_edge.quantization.calibration import CalibData
from vit_edge.quantization.ptq import QuantizedViT
from vit_edge.quantization.qat import QatTraining
from vit_edge.quantization.recipe import Recipe
from vit_edge.reading.loaders import LoadedModel

__all__ = ["check_qat_request", "run_qat"]


def check_qat_request(recipe: Recipe, qat: QatTraining | None, eval_data: ImageData | None,
                      out_dir: Path) -> QatTraining:
    """Everything QAT needs that can be checked before loading anything, its checkpoint folder included."""
    if qat is None or qat.data is None:
        raise ConfigError("QAT trains on labelled images: pass --data (a dataset name or DIR/class_name/*.png)")
    if eval_data is None:
        raise ConfigError("QAT evaluates on held-out labelled images each epoch: pass --eval")
    if recipe.max_drop is not None:
        raise ConfigError("--max-drop is PTQ's budget; QAT trains all the selected matmuls instead")
    _check_checkpoint_folder(qat, checkpoint_folder(qat, out_dir), out_dir, eval_data)
    return qat


def checkpoint_folder(qat: QatTraining, out_dir: Path) -> Path:
    return Path(qat.checkpoint_dir) if qat.checkpoint_dir else Path(f"{out_dir}-qat-checkpoints")


def _check_checkpoint_folder(qat: QatTraining, folder: Path, out_dir: Path, eval_data: ImageData | None) -> None:
    """QAT writes last.pt and best.pt: into a new or empty folder, or with --force over a folder of vit-edge QAT
    checkpoints only; --resume needs one. Never the artifact's own folder, never over the user's files."""
    from vit_edge.core.outputs import OutputKind, check_output, check_writable
    from vit_edge.core.recognise import is_qat_folder

    target = out_dir.resolve()
    if folder.resolve() == target or target in folder.resolve().parents:
        raise ConfigError(f"--checkpoint-dir {folder} is, or is inside, the artifact's folder {out_dir}; choose a "
                          "folder beside it")
    if qat.resume:
        if not (folder / "last.pt").is_file() or not is_qat_folder(folder):
            raise ConfigError(f"nothing to resume: {folder} is not a folder of vit-edge QAT checkpoints with a "
                              "last.pt (run without --resume first)")
        return
    check_output(folder, OutputKind.QAT_CHECKPOINTS, qat.force,
                 [("the training data", qat.data), ("the evaluation data", eval_data)])
    check_writable(folder.parent)


def run_qat(loaded: LoadedModel, recipe: Recipe, calib: CalibData, evaluation: LabelledImages | None,
            qat: QatTraining, out_dir: Path,
            log: Callable[[str], None]) -> tuple[QuantizedViT | None, QatSummary | None]:
    """PTQ for the starting scales, then the training run; (None, None) on ranks other than 0 under torchrun."""
    from vit_edge.quantization import distributed
    from vit_edge.quantization.checkpoints import QatCheckpoints
    from vit_edge.quantization.ptq import quantize_model
    from vit_edge.quantization.qat import train_qat

    distributed.init_from_env()
    num_classes = loaded.model.cfg.num_classes  # > 0: quantize_loaded's output-kind check refused embeddings
    train_set = load_dataset(str(qat.data), loaded.spec, num_classes=num_classes, progress=log)
    _check_qat_data(train_set, qat.config.batch_size * distributed.world_size())
    quant = quantize_model(loaded.vit, recipe, calib.batch)
    identity = {"weights_sha256": loaded.weights_sha256, "recipe": recipe.to_json(),
                "calibration": calib.fingerprint, "train_data": train_set.fingerprint(),
                "qat": qat.config.__dict__, "world_size": distributed.world_size()}
    directory = checkpoint_folder(qat, out_dir)
    checkpoints = QatCheckpoints(directory, identity)
    if not qat.resume and distributed.is_main():
        checkpoints.start_fresh(qat.force)
    log(f"QAT on {len(train_set)} images of {train_set.source}; checkpoints in {directory}")
    if evaluation is None:
        raise ConfigError("QAT evaluates on held-out labelled images each epoch: pass --eval")
    main = distributed.is_main()  # asked before shutdown: afterwards every process counts as rank 0
    trained, metrics = train_qat(quant, loaded.model, train_set, evaluation, loaded.spec, qat.config, checkpoints,
                                 resume=qat.resume, log=log if main else lambda _: None)
    distributed.shutdown()
    if not main:
        return None, None
    return trained, replace(metrics, checkpoints=str(directory))


def _check_qat_data(train_set: LabelledImages, global_batch: int) -> None:
    """QAT trains a classifier's loss on labelled batches: refuse data that cannot give one."""
    if len(set(train_set.labels.tolist())) < 2:
        raise ConfigError(f"{train_set.source} holds images of one class only; QAT needs labelled images of "
                          "several classes")
    if len(train_set) < global_batch:
        raise ConfigError(f"{train_set.source} has {len(train_set)} images, fewer than one batch of "
                          f"{global_batch}; lower --batch-size or add images")
