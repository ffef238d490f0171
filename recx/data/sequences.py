"""Batches of sequences, built lazily from a domain's flat event arrays.

`SeqBatch` is what every model scores: left-padded history windows (most recent item at position
L − 1), their timestamps and event indices (for per-event features such as PrepRec's periods),
the query time (the held-out event's timestamp), users and targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SeqBatch:
    items: torch.Tensor  # [B, L] int64, 0 = padding, left-padded
    ts: torch.Tensor  # [B, L] int64 (0 at padding)
    lengths: torch.Tensor  # [B]
    query_ts: torch.Tensor  # [B] timestamp of the event to predict
    users: torch.Tensor  # [B]
    targets: torch.Tensor  # [B] (0 when unknown)
    event_idx: np.ndarray  # [B, L] index into the domain's event arrays, -1 = padding
    query_pos: np.ndarray  # [B] index of the target event (or -1)

    def to(self, device) -> SeqBatch:
        if str(device) == "cpu":
            return self
        nb = True
        return SeqBatch(self.items.to(device, non_blocking=nb), self.ts.to(device, non_blocking=nb),
                        self.lengths.to(device, non_blocking=nb),
                        self.query_ts.to(device, non_blocking=nb),
                        self.users.to(device, non_blocking=nb),
                        self.targets.to(device, non_blocking=nb), self.event_idx, self.query_pos)

    def __len__(self) -> int:
        return self.items.shape[0]


def query_batch(domain, pos: np.ndarray, max_len: int, pin: bool = False) -> SeqBatch:
    """Histories before the events at `pos` (the targets), as a SeqBatch."""
    items, idx = domain.history_windows(pos, max_len)
    return _batch(domain, items, idx, domain.ts[pos], domain.user[pos], domain.item[pos], pos,
                  pin)


def next_item_batch(domain, users: np.ndarray, max_len: int, query_ts: np.ndarray,
                    pin: bool = False) -> SeqBatch:
    """Each user's whole sequence (its last `max_len` events, every split) to predict the event
    after it at `query_ts`: what recommendations score. No target (0) and no target event
    (query_pos −1)."""
    users = np.asarray(users, dtype=np.int64)
    items, idx = domain.history_windows(domain.indptr[users + 1], max_len, users=users)
    none = np.zeros(len(users), dtype=np.int64)
    return _batch(domain, items, idx, np.asarray(query_ts), users, none, none - 1, pin)


def _batch(domain, items, idx, query_ts, users, targets, pos, pin) -> SeqBatch:
    ts = np.where(idx >= 0, domain.ts[np.maximum(idx, 0)], 0)
    t = torch.from_numpy
    batch = SeqBatch(
        items=t(items), ts=t(ts.astype(np.int64)),
        lengths=t((idx >= 0).sum(1).astype(np.int64)),
        query_ts=t(query_ts.astype(np.int64)), users=t(users.astype(np.int64)),
        targets=t(targets.astype(np.int64)), event_idx=idx, query_pos=pos,
    )
    if pin and torch.cuda.is_available():
        batch.items, batch.ts = batch.items.pin_memory(), batch.ts.pin_memory()
    return batch


def windows_every_position(domain, users: np.ndarray, max_len: int,
                           stride: int | None = None) -> tuple[np.ndarray, ...]:
    """Cut each user's training sequence, from its end, into windows of ≤ max_len + 1 events
    (models/baselines.md §1). Each window predicts its last `stride` events (default max_len:
    every event of the window); the events before them are context only. Consecutive windows
    therefore overlap by max_len + 1 − stride events, and every training event after the user's
    first is a target exactly once per epoch. A smaller stride gives every target a longer
    history (at least max_len − stride + 1 events when the user has them) at the cost of
    encoding more positions per target.

    Returns (window_end, window_start, first_target): event indices, end exclusive.
    """
    # a stride beyond max_len would skip targets: it is capped (short windows, e.g. IDP's)
    stride = max_len if stride is None else min(int(stride), max_len)
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    starts = domain.indptr[users]
    ends = starts + domain.n_train[users]
    n_targets = ends - starts - 1  # events that have a predecessor
    n_win = np.maximum(1, -(-n_targets // stride))  # ceil
    win_user = np.repeat(np.arange(len(users)), n_win)
    k = np.arange(n_win.sum()) - np.repeat(np.cumsum(n_win) - n_win, n_win)  # 0 = newest window
    w_end = ends[win_user] - k * stride
    w_start = np.maximum(starts[win_user], w_end - max_len - 1)
    first_target = np.maximum(w_start + 1, w_end - stride)
    return w_end, w_start, first_target


def window_batches(domain, rng: np.random.Generator, users: np.ndarray, max_len: int,
                   stride: int | None, batch_size: int):
    """The windows of `windows_every_position` in shuffled batches (SASRec's, GRU4Rec's).

    Returns (number of batches, a generator function, number of targets); each batch is
    (items [B, max_len + 1] int64 with 0 padding, target_mask [B, max_len]: which next-item
    targets carry loss, users [B]). The shuffle is drawn now, so `rng` is used in call order.
    """
    w_end, w_start, w_first = windows_every_position(domain, users, max_len, stride)
    order = rng.permutation(len(w_end))
    n = -(-len(order) // batch_size)

    def batches():
        for b in range(n):
            sel = order[b * batch_size:(b + 1) * batch_size]
            idx = gather_windows(domain, w_end[sel], w_start[sel], max_len + 1)
            items = np.where(idx >= 0, domain.item[np.maximum(idx, 0)], 0).astype(np.int64)
            # only targets at or after the window's first target carry loss
            yield items, idx[:, 1:] >= w_first[sel, None], domain.user[w_end[sel] - 1]

    return n, batches, int((w_end - w_first).sum())


def gather_windows(domain, w_end: np.ndarray, w_start: np.ndarray, width: int):
    """Right-aligned windows [B, width] of event indices (-1 = padding)."""
    idx = w_end[:, None] - width + np.arange(width)[None, :]
    return np.where(idx >= w_start[:, None], idx, -1)


def prefix_samples(domain, users: np.ndarray) -> np.ndarray:
    """RecBole's scheme: one sample per training prefix; returns the target event indices
    (every training event except each user's first)."""
    starts = domain.indptr[users]
    n = domain.n_train[users]
    lens = np.maximum(n - 1, 0)
    offs = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
    return np.repeat(starts + 1, lens) + offs


def prefix_batches(domain, rng: np.random.Generator, users: np.ndarray, max_len: int,
                   batch_size: int):
    """The samples of `prefix_samples` in shuffled batches.

    Returns (number of batches, a generator function, number of samples); each batch is
    (history [B, max_len] int64, left-padded; target event indices [B]). The shuffle is drawn
    now, so `rng` is used in call order.
    """
    targets = prefix_samples(domain, users)
    order = rng.permutation(len(targets))
    n = -(-len(order) // batch_size)

    def batches():
        for b in range(n):
            pos = targets[order[b * batch_size:(b + 1) * batch_size]]
            yield domain.history_windows(pos, max_len)[0], pos

    return n, batches, len(targets)
