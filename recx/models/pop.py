"""Pop: the most-popular baseline and the zero-shot floor (models/baselines.md §5).

`window: all` scores item i by its number of training events divided by the maximum count
(RecBole-equivalent, without RecBole's per-batch saturation). `window: recent` counts events of
i in [t_q − recent_days, t_q) over the whole domain before the query time t_q, which is causal.
Pop is fitted by counting on whatever domain it is given, so it transfers to any target.
"""

from __future__ import annotations

import numpy as np
import torch

from recx.data.sequences import SeqBatch
from recx.errors import ConfigError
from recx.models.base import Capabilities, RecModel


class Pop(RecModel):
    """Parameters (values: conf/model/pop.yaml)
    ----------
    window : str
        all (training counts) | recent (events in the last `recent_days` before the query).
    recent_days : float
        Window of the recent variant, in days.
    """

    name = "pop"
    capabilities = Capabilities(zero_shot=True, sequential=False, trainable=False)

    def __init__(self, n_items: int = 0, *, window: str, recent_days: float):
        super().__init__(n_items)
        if window not in ("all", "recent"):
            raise ConfigError(f"model.window={window!r}", hint="use all or recent")
        self.window, self.recent_days = window, recent_days
        self.register_buffer("counts", torch.zeros(1), persistent=False)

    def fit_inputs(self, domain) -> None:
        super().fit_inputs(domain)
        self.fit_nonparametric(domain)

    def fit_nonparametric(self, domain, users: np.ndarray | None = None) -> None:
        self.domain = domain
        mask = domain.train_mask
        if users is not None:
            keep = np.zeros(domain.n_users + 1, dtype=bool)
            keep[users] = True
            mask = mask & keep[domain.user]
        counts = np.bincount(domain.item[mask], minlength=domain.n_items + 1).astype(np.float32)
        counts[0] = 0.0
        self.counts = torch.from_numpy(counts / max(1.0, counts.max()))
        if self.window == "recent":
            order = np.argsort(domain.ts, kind="stable")
            self._ts_sorted = domain.ts[order]
            self._items_by_time = domain.item[order]

    def score_all(self, batch: SeqBatch) -> torch.Tensor:
        if self.window == "all":
            return self.counts.to(batch.items.device).expand(len(batch), -1)
        return self._recent(batch).to(batch.items.device)

    def _recent(self, batch: SeqBatch) -> torch.Tensor:
        t_q = batch.query_ts.cpu().numpy()
        span = int(self.recent_days * 86400)
        hi = np.searchsorted(self._ts_sorted, t_q, side="left")
        lo = np.searchsorted(self._ts_sorted, t_q - span, side="left")
        n1 = self.domain.n_items + 1
        out = np.empty((len(t_q), n1), dtype=np.float32)
        cache: dict[tuple[int, int], np.ndarray] = {}
        for row, key in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
            if key not in cache:
                c = np.bincount(self._items_by_time[key[0]:key[1]], minlength=n1)
                cache[key] = c.astype(np.float32) / max(1, key[1] - key[0])
            out[row] = cache[key]
        return torch.from_numpy(out)
