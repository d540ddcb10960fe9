"""Data parallelism under ``torchrun``: process group setup and gradient averaging.

Why explicit gradient all-reduce instead of wrapping the models in ``DistributedDataParallel``: the recipes
switch which parameters train from stage to stage, the alternate stage sends each image through one of two
paths and the discrete-only generator never calls its diffusion head. DDP needs ``find_unused_parameters``
and re-wrapping for each of those; averaging the gradients of the trainable parameters after the backward
passes is the same arithmetic (sum over ranks / world size) with none of the bookkeeping. The backend is
``gloo`` on CPU and ``nccl`` on CUDA.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: torch.device) -> DistInfo:
    """Join the ``torchrun`` process group when ``WORLD_SIZE`` > 1 (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local)


def all_reduce_mean_(tensors: list[torch.Tensor], info: DistInfo) -> None:
    """In place: each tensor becomes its mean over the ranks (one flat buffer per call)."""
    if not info.enabled or not tensors:
        return
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t).to(t.dtype))
        offset += n


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Average ``.grad`` over ranks; a parameter without a gradient on this rank contributes zeros."""
    if not info.enabled:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    all_reduce_mean_([p.grad for p in params], info)


def broadcast_module_(module: torch.nn.Module, info: DistInfo) -> None:
    """Every rank starts from rank 0's parameters and buffers."""
    if not info.enabled:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
