"""Multi-process training under torchrun: DistributedDataParallel (ARCHITECTURE §9).

    torchrun --standalone --nproc_per_node=4 -m recx pretrain model=sasrec 'source=[…]' train=ddp

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; recx reads them, and joins the process group the
first time a stage trains (`ensure_initialized`). The contract:

- every rank trains on its shard of the training users (a seeded permutation dealt round-robin),
  with the per-rank batch = the model's global batch / world size, and the same number of steps
  per epoch on every rank (the smallest rank's count), so gradients average over the global batch;
- only rank 0 validates, writes checkpoints, metrics and store entries; it broadcasts the
  validation result, and every rank applies the same early-stopping rule to it;
- the backend is nccl on CUDA and gloo on CPU (`train.ddp.backend`); rank r uses cuda:<LOCAL_RANK>.

Outside torchrun (WORLD_SIZE unset or 1) every function here is a cheap no-op.
"""

from __future__ import annotations

import atexit
import datetime
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recx.errors import ConfigError

log = logging.getLogger(__name__)

BATCH_KEYS = ("batch_size", "batch_users")  # the global-batch keys of the models' optim dicts


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> DistInfo:
    """This process's place in the torchrun job (from the environment; 1 process without it)."""
    return DistInfo(rank=int(os.environ.get("RANK", 0)),
                    world=int(os.environ.get("WORLD_SIZE", 1)),
                    local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def is_main() -> bool:
    return current().is_main


def active() -> bool:
    """True once this process has joined a process group of more than one rank."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def ensure_initialized(ddp_cfg, device: torch.device) -> DistInfo:
    """Join the process group torchrun describes; a no-op for one process or when joined."""
    info = current()
    if info.world <= 1 or active():
        return info
    import torch.distributed as dist

    backend = str(getattr(ddp_cfg, "backend", "auto"))
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError("train.ddp.backend=nccl needs CUDA devices",
                          hint="use train.ddp.backend=gloo (or auto) on CPU")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(seconds=float(getattr(ddp_cfg, "timeout_s", 1800)))
    dist.init_process_group(backend, timeout=timeout)
    atexit.register(_destroy)
    log.info("DDP: rank %d of %d (%s, %s)", info.rank, info.world, backend, device)
    return info


def _destroy() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- collectives
def barrier() -> None:
    if active():
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """`obj` of rank `src` on every rank (pickled; fine for decisions and checkpoints)."""
    if not active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _all_reduce(values: list[float], op: str) -> list[float]:
    if not active():
        return values
    import torch.distributed as dist

    # gloo and nccl both reduce float64 tensors; nccl needs them on the rank's GPU
    dev = torch.device("cuda", torch.cuda.current_device()) \
        if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN}[op])
    return t.cpu().tolist()


def all_sum(values: list[float]) -> list[float]:
    return _all_reduce(values, "sum")


def all_min(values: list[int]) -> list[int]:
    return [int(v) for v in _all_reduce([float(v) for v in values], "min")]


# ----------------------------------------------------------------------------- data
def shard_users(users: np.ndarray, seed: int, info: DistInfo | None = None) -> np.ndarray:
    """This rank's share of the training users: a permutation seeded by `seed` (the same on
    every rank), dealt round-robin, so shards differ in size by at most one user."""
    info = info or current()
    if info.world <= 1:
        return users
    perm = np.random.default_rng([seed, 0xDD9]).permutation(len(users))
    return np.sort(users[perm[info.rank::info.world]])


def per_rank_optim(optim: dict, world: int) -> dict:
    """The model's recipe with each global batch key divided by the world size."""
    out = dict(optim)
    for key in BATCH_KEYS:
        if out.get(key):
            glob = int(out[key])
            if glob < world:
                raise ConfigError(f"model.optim.{key}={glob} is smaller than the {world} ranks",
                                  hint=f"raise model.optim.{key} to at least {world}")
            if glob % world:
                log.warning("model.optim.%s=%d is not divisible by %d ranks: each rank uses "
                            "%d (global batch %d)", key, glob, world, glob // world,
                            glob // world * world)
            out[key] = glob // world
    return out


# ----------------------------------------------------------------------------- model
class LossModule(nn.Module):
    """`forward(batch) = model.loss(batch)`, so DDP sees the loss as its forward pass."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


def wrap(model: nn.Module, ddp_cfg) -> nn.Module:
    """DistributedDataParallel around the model's loss. Domain buffers are rebuilt identically
    on every rank, so they are not re-broadcast before every forward pass."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    device = model.device
    # newer torch renamed the switch; its init-time sync of identical buffers is harmless
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(
        DistributedDataParallel).parameters else {"broadcast_buffers": False}
    return DistributedDataParallel(
        LossModule(model), device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=bool(getattr(ddp_cfg, "find_unused_parameters", False)),
        **no_sync)
