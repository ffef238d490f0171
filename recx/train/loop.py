"""A plain PyTorch training loop (ARCHITECTURE §9).

Adam with the model's recipe, optional AMP and gradient clipping, validation every
`eval_every` epochs, early stopping on the validation metric with a deep copy of the best weights,
`last.pt` after every `checkpoint_every` epochs, and resume from it.

Determinism across interruptions: every epoch re-seeds torch and derives its sampler generator
from (seed, epoch, rank), so an epoch's randomness does not depend on what ran before it. A run
killed mid-epoch and resumed from `last.pt` therefore ends with the same weights as an
uninterrupted run.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from recx.console import progress_bar
from recx.errors import CheckpointError, ConfigError, DataFormatError, EvalError, Interrupted
from recx.train import checkpoint
from recx.train import distributed as D

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    best_epoch: int = -1
    best_score: float = -math.inf
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    samples_per_s: float = 0.0
    history: list[dict] = field(default_factory=list)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def make_optimizer(model: torch.nn.Module, optim: dict) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"{getattr(model, 'name', 'model')} has no trainable parameters")
    betas = {"betas": tuple(optim["betas"])} if "betas" in optim else {}  # else Adam's own
    return torch.optim.Adam(params, lr=float(optim["lr"]),
                            weight_decay=float(optim["weight_decay"]), **betas)


def _domain_schedule(rng, n_batches: list[int], sampling: str) -> np.ndarray:
    """Which domain each batch comes from: proportional (shuffled) or round-robin."""
    if len(n_batches) == 1:
        return np.zeros(n_batches[0], dtype=np.int64)
    if sampling == "round_robin":
        order = []
        for k in range(max(n_batches)):
            order += [d for d, n in enumerate(n_batches) if k < n]
        return np.asarray(order, dtype=np.int64)
    return rng.permutation(np.repeat(np.arange(len(n_batches)), n_batches))


def fit(model, domains: list, users: list[np.ndarray], *, train_cfg, seed: int, work_dir: Path,
        validate: Callable[[], float] | None, max_epochs: int | None = None,
        eval_every: int | None = None, patience: int | None = None,
        batch_fraction: float = 1.0, keep_best: bool = True, progress: str = "auto",
        label: str = "train", sampling: str = "proportional") -> FitResult:
    """Train `model` on `domains` (each with its training users) and return the fit summary.

    `validate()` returns the validation select metric (higher is better); None disables early
    stopping (e.g. few-shot fine-tuning with a fixed number of epochs).

    Under torchrun (`recx.train.distributed`) every rank calls `fit`: users are sharded, the
    batch is split, DDP averages the gradients, and only rank 0 validates and writes `last.pt`.
    """
    for d, u in zip(domains, users, strict=True):
        if len(u) == 0:
            _no_training_users(d)
    optim = model.optim
    max_epochs = int(max_epochs or train_cfg.max_epochs or optim["max_epochs"])
    eval_every = int(eval_every or optim["eval_every"])
    patience = int(patience or optim["patience"])
    device = model.device
    ddp = D.active()
    rank = D.current().rank if ddp else 0
    main = rank == 0
    if ddp:
        users = [D.shard_users(u, seed) for u in users]
        model.optim = D.per_rank_optim(optim, D.current().world)
    try:
        return _fit(model, domains, users, train_cfg=train_cfg, seed=seed, work_dir=work_dir,
                    validate=validate, max_epochs=max_epochs, eval_every=eval_every,
                    patience=patience, batch_fraction=batch_fraction, keep_best=keep_best,
                    progress=progress if main else "false", label=label, sampling=sampling,
                    ddp=ddp, rank=rank, device=device)
    finally:
        model.optim = optim


def _fit(model, domains, users, *, train_cfg, seed, work_dir, validate, max_epochs, eval_every,
         patience, batch_fraction, keep_best, progress, label, sampling, ddp, rank, device):
    main = rank == 0
    opt = make_optimizer(model, model.optim)
    amp_dtype, scaler = _amp(train_cfg, device)
    work_dir = Path(work_dir)
    last = work_dir / "last.pt"
    res = FitResult()
    best_state = None
    bad = 0
    start = 0

    ck = None
    if main and last.exists() and train_cfg.resume == "auto":
        try:
            ck = checkpoint.load(last)
        except CheckpointError as e:  # e.g. a copy cut short: the resume point is lost
            log.warning("%s; training %s starts again from epoch 1", e.message, label)
            last.unlink()
    elif main and last.exists():
        last.unlink()
    if ddp:  # every rank resumes from rank 0's checkpoint (weights and optimiser state)
        ck = D.broadcast_object(ck)
    if ck is not None:
        checkpoint.load_state(model, ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        start = int(ck["epoch"])
        best_state = ck.get("best_state") if main else None
        res.best_epoch, res.best_score = int(ck["best_epoch"]), float(ck["best_score"])
        bad, res.history = int(ck["bad"]), list(ck["history"])
        log.info("resuming %s from %s at epoch %d", label, last, start)
    step = D.wrap(model, train_cfg.ddp) if ddp else model.loss
    if train_cfg.compile:
        step = torch.compile(step)
    cuda = device.type == "cuda"

    t_start = time.time()
    n_samples_total = 0
    stop = start >= max_epochs
    saved = start  # epochs that last.pt holds: the same command resumes after them
    with _resume_point(lambda: saved + 1), progress_bar(progress) as bar:
        for epoch in range(start, max_epochs):
            if stop:
                break
            model.train()
            torch.manual_seed(epoch_seed(seed, epoch, rank))
            rng = np.random.default_rng(epoch_seed(seed, epoch, 1) if rank == 0
                                        else [epoch_seed(seed, epoch, 1), rank])
            per_domain = []
            for d, u in zip(domains, users, strict=True):
                if len(domains) > 1:
                    model.fit_inputs(d)
                per_domain.append(model.train_batches(d, rng, u))
            counts = [max(1, int(len(b) * batch_fraction)) for b in per_domain]
            if ddp:  # the same steps on every rank: the smallest shard's count per domain
                counts = D.all_min(counts)
            # ranks share one domain schedule (their own rng would reorder it)
            sched_rng = np.random.default_rng(epoch_seed(seed, epoch, 2)) if ddp else rng
            schedule = _domain_schedule(sched_rng, counts, sampling)
            if train_cfg.limit_batches:
                schedule = schedule[: int(train_cfg.limit_batches)]
            iters = [iter(b) for b in per_domain]
            task = bar.add_task(f"{label} epoch {epoch + 1}/{max_epochs}",
                                total=len(schedule)) if bar else None
            t0 = time.time()
            # float64 sum (float32 on MPS, which has no float64)
            acc = torch.float32 if device.type == "mps" else torch.float64
            loss_sum, n_steps, n_samples = torch.zeros((), dtype=acc, device=device), 0, 0
            current = -1
            for d_idx in schedule.tolist():
                if len(domains) > 1 and d_idx != current:
                    model.fit_inputs(domains[d_idx])
                    current = d_idx
                batch = next(iters[d_idx])
                if cuda:
                    batch = to_device(batch, device)
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16,
                                    enabled=amp_dtype is not None):
                    loss = step(batch)
                loss_sum += loss.detach().to(acc)
                n_steps += 1
                # a finiteness check syncs with the GPU: every step on CPU, every 50 on CUDA
                if (not cuda or n_steps % 50 == 0) and not torch.isfinite(loss_sum):
                    _diverged(label, epoch)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                else:
                    loss.backward()
                if train_cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), float(train_cfg.grad_clip))
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                n_samples += _batch_size(batch)
                if task is not None:
                    rate = n_samples / max(1e-9, time.time() - t0)
                    bar.update(task, advance=1, rate=f"{rate:,.0f} samples/s")
            if task is not None:
                bar.remove_task(task)
            if len(domains) > 1:
                model.fit_inputs(domains[0])
            if not torch.isfinite(loss_sum):
                _diverged(label, epoch)
            dt = time.time() - t0
            epoch_loss = float(loss_sum) / max(1, n_steps)
            if ddp:  # the epoch's loss and throughput over all ranks
                total, n_samples = D.all_sum([epoch_loss, float(n_samples)])
                epoch_loss, n_samples = total / D.current().world, int(n_samples)
            n_samples_total += n_samples
            row = {"epoch": epoch + 1, "loss": epoch_loss, "seconds": dt,
                   "samples_per_s": n_samples / max(dt, 1e-9)}
            if validate is not None and ((epoch + 1) % eval_every == 0
                                         or epoch + 1 == max_epochs):
                model.eval()
                score = improved = None
                if main:
                    score = float(validate())
                    # the first validation always counts (a NaN score included); with
                    # keep_best=False patience still runs, only the weights stay the last's
                    improved = score > res.best_score or res.best_epoch < 0
                if ddp:  # rank 0's validation and early-stopping decision, for every rank
                    score, improved = D.broadcast_object((score, improved))
                row["valid"] = score
                if improved:
                    res.best_score, res.best_epoch, bad = score, epoch + 1, 0
                    best_state = copy.deepcopy(model.state_dict()) if main and keep_best \
                        else None
                else:
                    bad += 1
                    if bad >= patience:
                        stop = True
                        res.stopped_early = True
            row["elapsed"] = time.time() - t_start  # wall time since fit start (time-to-accuracy)
            res.history.append(row)
            log.info("%s epoch %d: loss %.4f%s (%.1fs, %.0f samples/s)", label, epoch + 1,
                     row["loss"], f", valid {row['valid']:.4f}" if "valid" in row else "", dt,
                     row["samples_per_s"])
            if main and ((epoch + 1) % int(train_cfg.checkpoint_every) == 0 or stop):
                checkpoint.save(last, {
                    "state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                    "epoch": epoch + 1, "best_state": best_state, "best_epoch": res.best_epoch,
                    "best_score": res.best_score, "bad": bad, "history": res.history})
                saved = epoch + 1
    if best_state is not None and keep_best:
        model.load_state_dict(best_state)
    model.eval()
    D.barrier()
    res.epochs_run = len(res.history)
    res.seconds = time.time() - t_start
    res.samples_per_s = n_samples_total / max(res.seconds, 1e-9)
    return res


@contextlib.contextmanager
def _resume_point(next_epoch: Callable[[], int]):
    """Ctrl-C during training becomes `Interrupted`, which says where the same command goes on
    (last.pt holds the epochs before it)."""
    try:
        yield
    except KeyboardInterrupt as e:
        if isinstance(e, Interrupted):
            raise
        raise Interrupted(resume_epoch=next_epoch()) from None


def _no_training_users(domain) -> None:
    lengths = np.diff(domain.indptr)[1:]
    short = int((lengths < 4).sum())
    raise DataFormatError(
        f"no user of {domain.name} can be trained on: a training sequence needs 2 training "
        f"events, and leave-one-out keeps each user's last 2 events for valid and test, so a "
        f"user needs 4 events ({short} of {len(lengths)} users have fewer)",
        hint="keep users with at least 4 events: dataset.filters.k_core.user=4 (target.… or "
        "source.<name>.… in transfer stages)")


def _amp(train_cfg, device: torch.device):
    """(autocast dtype or None, GradScaler or None) for `train.amp` on `device`.

    auto: bf16 on CUDA devices that support it, else fp16 with a gradient scaler; off on CPU.
    bf16 / fp16 force the type (bf16 autocast also runs on CPU, for testing the path)."""
    mode = str(train_cfg.amp)
    if mode not in ("auto", "off", "bf16", "fp16"):
        raise ConfigError(f"train.amp={mode!r}", hint="use auto, off, bf16 or fp16")
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None, None
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if mode == "fp16":
        if device.type != "cuda":
            raise ConfigError("train.amp=fp16 needs CUDA", hint="use train.amp=bf16 or off")
        return torch.float16, torch.amp.GradScaler("cuda")
    return torch.bfloat16, None


def _diverged(label: str, epoch: int) -> None:
    raise EvalError(f"{label}: the loss became non-finite at epoch {epoch + 1}",
                    hint="lower model.optim.lr or check the input data")


def to_device(batch, device: torch.device):
    """Copy a batch (tensors in dicts, lists, tuples) to `device` from pinned memory, so the
    copy is asynchronous; the models' own `.to(device)` calls then do nothing."""
    if isinstance(batch, torch.Tensor):
        if batch.device.type == "cpu" and device.type == "cuda":
            batch = batch.pin_memory()
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    if hasattr(batch, "to") and hasattr(batch, "items"):  # SeqBatch
        return batch.to(device)
    return batch


def _batch_size(batch) -> int:
    if isinstance(batch, dict):
        for v in batch.values():
            if isinstance(v, torch.Tensor):
                return int(v.shape[0])
    if isinstance(batch, torch.Tensor | tuple | list):
        first = batch[0] if isinstance(batch, tuple | list) else batch
        return int(first.shape[0])
    return 0
