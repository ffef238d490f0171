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
    ddp = D.active()
    rank = D.current().rank if ddp else 0
    if ddp:
        users = [D.shard_users(u, seed) for u in users]
        model.optim = D.per_rank_optim(optim, D.current().world)
    try:
        trainer = _Trainer(
            model, domains, users, train_cfg=train_cfg, seed=seed, label=label,
            validate=validate, max_epochs=int(max_epochs or train_cfg.max_epochs
                                              or optim["max_epochs"]),
            eval_every=int(eval_every or optim["eval_every"]),
            patience=int(patience or optim["patience"]), batch_fraction=batch_fraction,
            keep_best=keep_best, sampling=sampling, ddp=ddp, rank=rank,
            last=Path(work_dir) / "last.pt")
        return trainer.run(progress if rank == 0 else "false")
    finally:
        model.optim = optim


class _Trainer:
    """One fit, in the steps of RecBole's Trainer: resume from last.pt, then per epoch train,
    validate (and stop early), save last.pt; at the end the best weights come back."""

    def __init__(self, model, domains, users, *, train_cfg, seed, label, validate, max_epochs,
                 eval_every, patience, batch_fraction, keep_best, sampling, ddp, rank, last):
        self.model, self.domains, self.users = model, domains, users
        self.train_cfg, self.seed, self.label, self.validate = train_cfg, seed, label, validate
        self.max_epochs, self.eval_every, self.patience = max_epochs, eval_every, patience
        self.batch_fraction, self.keep_best, self.sampling = batch_fraction, keep_best, sampling
        self.ddp, self.rank, self.main, self.last = ddp, rank, rank == 0, last
        self.device = model.device
        self.opt = make_optimizer(model, model.optim)
        self.amp_dtype, self.scaler = _amp(train_cfg, self.device)
        # the running state: what last.pt holds
        self.res = FitResult()
        self.best_state = None
        self.bad = 0  # validations without improvement
        self.start = 0  # epochs already done
        self.stop = False

    def run(self, progress: str) -> FitResult:
        self.resume()
        self.step = D.wrap(self.model, self.train_cfg.ddp) if self.ddp else self.model.loss
        if self.train_cfg.compile:
            self.step = torch.compile(self.step)
        t_start = time.time()
        n_samples_total = 0
        self.stop = self.start >= self.max_epochs
        saved = self.start  # epochs that last.pt holds: the same command resumes after them
        with _resume_point(lambda: saved + 1), progress_bar(progress) as bar:
            for epoch in range(self.start, self.max_epochs):
                if self.stop:
                    break
                row, n_samples = self.train_epoch(epoch, bar)
                n_samples_total += n_samples
                if self.validate is not None and ((epoch + 1) % self.eval_every == 0
                                                  or epoch + 1 == self.max_epochs):
                    row["valid"] = self.validate_and_stop(epoch)
                row["elapsed"] = time.time() - t_start  # since fit start (time-to-accuracy)
                self.res.history.append(row)
                log.info("%s epoch %d: loss %.4f%s (%.1fs, %.0f samples/s)", self.label,
                         epoch + 1, row["loss"],
                         f", valid {row['valid']:.4f}" if "valid" in row else "",
                         row["seconds"], row["samples_per_s"])
                if self.main and ((epoch + 1) % int(self.train_cfg.checkpoint_every) == 0
                                  or self.stop):
                    self.save_last(epoch)
                    saved = epoch + 1
        if self.best_state is not None and self.keep_best:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        D.barrier()
        res = self.res
        res.epochs_run = len(res.history)
        res.seconds = time.time() - t_start
        res.samples_per_s = n_samples_total / max(res.seconds, 1e-9)
        return res

    # -- resume / save ------------------------------------------------------------------------
    def resume(self) -> None:
        """Continue from last.pt (resume=auto; a damaged one is dropped), on every rank."""
        ck = None
        if self.main and self.last.exists() and self.train_cfg.resume == "auto":
            try:
                ck = checkpoint.load(self.last)
            except CheckpointError as e:  # e.g. a copy cut short: the resume point is lost
                log.warning("%s; training %s starts again from epoch 1", e.message, self.label)
                self.last.unlink()
        elif self.main and self.last.exists():
            self.last.unlink()
        if self.ddp:  # every rank resumes from rank 0's checkpoint (weights and optimiser)
            ck = D.broadcast_object(ck)
        if ck is None:
            return
        checkpoint.load_state(self.model, ck["state_dict"])
        self.opt.load_state_dict(ck["optimizer"])
        self.start = int(ck["epoch"])
        self.best_state = ck.get("best_state") if self.main else None
        self.res.best_epoch, self.res.best_score = int(ck["best_epoch"]), float(ck["best_score"])
        self.bad, self.res.history = int(ck["bad"]), list(ck["history"])
        log.info("resuming %s from %s at epoch %d", self.label, self.last, self.start)

    def save_last(self, epoch: int) -> None:
        checkpoint.save(self.last, {
            "state_dict": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "epoch": epoch + 1, "best_state": self.best_state,
            "best_epoch": self.res.best_epoch, "best_score": self.res.best_score,
            "bad": self.bad, "history": self.res.history})

    # -- one epoch ----------------------------------------------------------------------------
    def train_epoch(self, epoch: int, bar) -> tuple[dict, int]:
        """One pass over the epoch's batch schedule: (history row, samples seen)."""
        model, domains, device = self.model, self.domains, self.device
        model.train()
        torch.manual_seed(epoch_seed(self.seed, epoch, self.rank))
        rng = np.random.default_rng(epoch_seed(self.seed, epoch, 1) if self.rank == 0
                                    else [epoch_seed(self.seed, epoch, 1), self.rank])
        per_domain = []
        for d, u in zip(domains, self.users, strict=True):
            if len(domains) > 1:
                model.fit_inputs(d)
            per_domain.append(model.train_batches(d, rng, u))
        schedule = self.schedule(epoch, rng, per_domain)
        iters = [iter(b) for b in per_domain]
        task = bar.add_task(f"{self.label} epoch {epoch + 1}/{self.max_epochs}",
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
            if device.type == "cuda":
                batch = to_device(batch, device)
            loss = self.forward(batch)
            loss_sum += loss.detach().to(acc)
            n_steps += 1
            # a finiteness check syncs with the GPU: every step on CPU, every 50 on CUDA
            if (device.type != "cuda" or n_steps % 50 == 0) and not torch.isfinite(loss_sum):
                _diverged(self.label, epoch)
            self.backward_and_step(loss)
            n_samples += _batch_size(batch)
            if task is not None:
                rate = n_samples / max(1e-9, time.time() - t0)
                bar.update(task, advance=1, rate=f"{rate:,.0f} samples/s")
        if task is not None:
            bar.remove_task(task)
        if len(domains) > 1:
            model.fit_inputs(domains[0])
        if not torch.isfinite(loss_sum):
            _diverged(self.label, epoch)
        dt = time.time() - t0
        epoch_loss = float(loss_sum) / max(1, n_steps)
        if self.ddp:  # the epoch's loss and throughput over all ranks
            total, n_samples = D.all_sum([epoch_loss, float(n_samples)])
            epoch_loss, n_samples = total / D.current().world, int(n_samples)
        return {"epoch": epoch + 1, "loss": epoch_loss, "seconds": dt,
                "samples_per_s": n_samples / max(dt, 1e-9)}, n_samples

    def schedule(self, epoch: int, rng, per_domain: list) -> np.ndarray:
        """Which domain each of the epoch's batches comes from (cut at train.limit_batches)."""
        counts = [max(1, int(len(b) * self.batch_fraction)) for b in per_domain]
        if self.ddp:  # the same steps on every rank: the smallest shard's count per domain
            counts = D.all_min(counts)
        # ranks share one domain schedule (their own rng would reorder it)
        sched_rng = np.random.default_rng(epoch_seed(self.seed, epoch, 2)) if self.ddp else rng
        schedule = _domain_schedule(sched_rng, counts, self.sampling)
        if self.train_cfg.limit_batches:
            schedule = schedule[: int(self.train_cfg.limit_batches)]
        return schedule

    def forward(self, batch) -> torch.Tensor:
        """The batch's loss, under autocast when AMP is on (gradients zeroed first)."""
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                            enabled=self.amp_dtype is not None):
            return self.step(batch)

    def backward_and_step(self, loss: torch.Tensor) -> None:
        """Gradients (scaled under fp16), clipping, one optimiser step."""
        opt, scaler = self.opt, self.scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if self.train_cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                           float(self.train_cfg.grad_clip))
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()

    # -- validation ---------------------------------------------------------------------------
    def validate_and_stop(self, epoch: int) -> float | None:
        """Rank 0 validates; every rank learns whether it improved (keeping a deep copy of the
        best weights) or whether patience ran out. The validation score."""
        self.model.eval()
        score = improved = None
        if self.main:
            score = float(self.validate())
            # the first validation always counts (a NaN score included); with keep_best=False
            # patience still runs, only the weights stay the last's
            improved = score > self.res.best_score or self.res.best_epoch < 0
        if self.ddp:  # rank 0's validation and early-stopping decision, for every rank
            score, improved = D.broadcast_object((score, improved))
        if improved:
            self.res.best_score, self.res.best_epoch, self.bad = score, epoch + 1, 0
            self.best_state = copy.deepcopy(self.model.state_dict()) \
                if self.main and self.keep_best else None
        else:
            self.bad += 1
            if self.bad >= self.patience:
                self.stop = True
                self.res.stopped_early = True
        return score


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
