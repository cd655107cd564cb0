"""DDP for QAT on an existing engine: torchrun sets the environment, torch.distributed does the rest.

Without torchrun (no WORLD_SIZE) everything here is a no-op on one process. CPU processes use gloo; CUDA, NCCL.
"""
from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["init_from_env", "rank", "world_size", "is_main", "wrap", "barrier", "shutdown"]


def init_from_env() -> bool:
    """Join the process group torchrun describes; True when running distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return torch.distributed.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def world_size() -> int:
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def wrap(model: nn.Module) -> nn.Module:
    """DistributedDataParallel when distributed (gradients averaged across processes), else the model itself."""
    if not torch.distributed.is_initialized():
        return model
    return nn.parallel.DistributedDataParallel(model)


def barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def shutdown() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
