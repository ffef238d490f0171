"""PrepRec (Wang, Rathi, Sundaram 2024): popularity dynamics for zero-shot transfer
(models/preprec.md).

Items have no ID parameters: an item at a moment is its popularity-percentile vector (coarse and
fine periods, `recx/data/features/popularity.py`), mapped by an MLP. Everything domain-specific
(the percentile tables and the per-event period indices) is a non-persistent buffer rebuilt by
`fit_inputs`, so a checkpoint trained on one domain scores any other: zero-shot transfer is "swap
the tables, keep the weights".

History items use their own event's periods; candidates and training targets use the periods of
the query (target) event. Full ranking groups the users of a batch by their query periods (P, F)
and embeds all items once per group.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from recx.data.features.popularity import (
    PAD,
    AdjustedFine,
    PopularityConfig,
    encode,
    popularity_tables,
)
from recx.data.sequences import SeqBatch, gather_windows
from recx.errors import ConfigError
from recx.models.base import Batches, Capabilities, RecModel, config_block
from recx.models.modules.preprec_net import PrepRecNet, relative_time_codes

log = logging.getLogger(__name__)

COMPAT_SWITCHES = ("year_reset_periods", "argsort_time", "coarse_index_for_target_fine",
                   "last_epoch_as_best")
_CACHE_FLOATS = 64_000_000  # bound on cached item-embedding tables (floats)
_ADJ_CHUNK = 1 << 20  # users × items scored at once with the adjusted fine feature


class PrepRec(RecModel):
    """Parameters (values: conf/model/preprec.yaml)
    ----------
    max_len : int
        Longest history window.
    hidden : int
        Width of the item embeddings and of the transformer.
    mlp_hidden : int
        Hidden width of the item-popularity MLP (138 → mlp_hidden → hidden).
    blocks : int
        Transformer blocks.
    heads : int
        Attention heads (the original ignored `--num_heads`; honoured here, same parameter count).
    dropout : float
        Attention and feed-forward dropout.
    learned_positions : bool
        A learned position table instead of the fixed sinusoid (the original `--no_fixed_emb`).
    relative_time : str
        Relative-time code: causal_rank | window_rank (§2.8); paper_compat.argsort_time replaces it.
    features : dict
        Popularity features (`PopularityConfig`): coarse_days, fine_days, coarse_history,
        coarse_decay, coarse_truncate, fine_window, coarse_anchors, fine_anchors, encoding,
        popularity_source, skip_empty_periods, periods. A dataset's `time_scale` overrides the
        lengths.
    eval_fine : str
        Candidates' fine feature at evaluation: period (as in training) | adjusted (§2.7).
    optim : dict
        Training recipe: the shared keys (loss bce_1neg | ce, sampler every_position) plus
        batch_users and betas (Adam's).
    multi_source : dict
        sampling (proportional | round_robin): which source each batch comes from.
    finetune : dict
        Few-shot defaults read by the finetune stage: epochs, batch_fraction.
    paper_compat : dict or bool
        Original-code switches (§6): year_reset_periods, argsort_time,
        coarse_index_for_target_fine, last_epoch_as_best; `true` turns all of them on.
    """

    name = "preprec"
    capabilities = Capabilities(zero_shot=True, needs_time=True, sequential=True, finetune=True)
    recipe_keys = ("batch_users", "betas")

    def __init__(self, n_items: int = 0, *, max_len: int, hidden: int, mlp_hidden: int,
                 blocks: int, heads: int, dropout: float, learned_positions: bool,
                 relative_time: str, features: dict, eval_fine: str, optim: dict,
                 multi_source: dict, finetune: dict, paper_compat: dict | bool):
        super().__init__(n_items, self.read_recipe(optim))
        self.compat = _compat_switches(paper_compat)
        self.paper_compat = {k: True for k, v in self.compat.items() if v}
        if relative_time not in ("causal_rank", "window_rank"):
            raise ConfigError(f"model.relative_time={relative_time!r}",
                              hint="use causal_rank or window_rank (the original argsort code is "
                              "model.paper_compat.argsort_time=true)")
        if eval_fine not in ("period", "adjusted"):
            raise ConfigError(f"model.eval_fine={eval_fine!r}", hint="use period or adjusted")
        if self.optim["loss"] not in ("bce_1neg", "ce"):
            raise ConfigError(f"model.optim.loss={self.optim['loss']!r} for preprec",
                              hint="use bce_1neg (the paper) or ce (full softmax)")
        if self.optim["sampler"] != "every_position":
            raise ConfigError(f"model.optim.sampler={self.optim['sampler']!r} for preprec",
                              hint="preprec trains with sampler=every_position")
        self.sampling = config_block("multi_source", multi_source, ("sampling",))["sampling"]
        if self.sampling not in ("proportional", "round_robin"):
            raise ConfigError(f"model.multi_source.sampling={self.sampling!r}",
                              hint="use proportional or round_robin")
        self.finetune_defaults = config_block("finetune", finetune, ("epochs", "batch_fraction"))
        self.max_len = max_len
        self.time_mode = "argsort" if self.compat["argsort_time"] else relative_time
        self.eval_fine = eval_fine
        self.features = dict(features)
        # the domain-free part of the feature config: fixes the input width of the MLP
        self.feat = PopularityConfig.from_dict(
            self.features, year_reset_periods=self.compat["year_reset_periods"])
        self.net = PrepRecNet(self.feat.input_dim, mlp_hidden, hidden, max_len, blocks, heads,
                              dropout, learned_positions)
        for name in ("event_item", "event_ts", "event_P", "event_F"):
            self.register_buffer(name, torch.zeros(1, dtype=torch.long), persistent=False)
        for name in ("pop_coarse", "pop_fine"):
            self.register_buffer(name, torch.full((1, 1), PAD), persistent=False)
        self._inputs: dict = {}  # per-domain tensors, keyed by (data_hash, feat_hash)
        self._current: dict | None = None
        self._emb_cache: dict = {}
        self._emb_version = None

    # ------------------------------------------------------------------ domain inputs
    def fit_inputs(self, domain) -> None:
        super().fit_inputs(domain)
        cfg = PopularityConfig.from_dict(self.features, domain.time_scale, ts=domain.ts,
                                         year_reset_periods=self.compat["year_reset_periods"])
        key = (domain.data_hash, cfg.table_key().__repr__())
        entry = self._inputs.get(key)
        if entry is None:
            tables = popularity_tables(domain, cfg)
            if tables.n_coarse < cfg.coarse_history + 1:
                log.warning(
                    "%s spans only %d coarse periods of %g days (< coarse_history + 1 = %d): most "
                    "coarse blocks are zero. Check dataset.timestamp.unit, or scale the periods "
                    "to the domain (model.features.periods=auto, or the dataset's own "
                    "time_scale).", domain.name, tables.n_coarse, cfg.coarse_days,
                    cfg.coarse_history + 1)
            t = torch.from_numpy
            entry = {"tables": tables, "domain": domain,
                     "event_item": t(domain.item.astype(np.int64)),
                     "event_ts": t(domain.ts.astype(np.int64)),
                     "event_P": t(tables.event_coarse.astype(np.int64)),
                     "event_F": t(tables.event_fine.astype(np.int64)),
                     "pop_coarse": t(tables.coarse), "pop_fine": t(tables.fine)}
            self._inputs[key] = entry
        dev = self.device
        for name in ("event_item", "event_ts", "event_P", "event_F", "pop_coarse", "pop_fine"):
            if entry[name].device != dev:
                entry[name] = entry[name].to(dev)
            setattr(self, name, entry[name])
        if self.eval_fine == "adjusted" and "adjusted" not in entry:
            entry["adjusted"] = AdjustedFine(domain, entry["tables"])
        self._current = entry

    @property
    def tables(self):
        """The popularity tables of the current domain."""
        if self._current is None:
            raise RuntimeError("preprec: call fit_inputs(domain) first")
        return self._current["tables"]

    # ------------------------------------------------------------------ features
    def item_inputs(self, items: torch.Tensor, P: torch.Tensor, F: torch.Tensor,
                    fine_perc: torch.Tensor | None = None) -> torch.Tensor:
        """Popularity vectors [..., 138] of `items` at coarse/fine period indices (P, F): coarse
        percentiles of periods P − H … P − 1 and the fine percentile of period F − 1 (or the
        given `fine_perc`, e.g. the adjusted test-time feature)."""
        cfg = self.feat
        rows = P.unsqueeze(-1) + torch.arange(cfg.coarse_history, device=P.device)
        pc = self.pop_coarse[rows, items.unsqueeze(-1)]
        pf = self.pop_fine[F, items] if fine_perc is None else fine_perc
        return torch.cat([encode(pc, cfg.coarse_anchors, cfg.encoding).flatten(-2),
                          encode(pf, cfg.fine_anchors, cfg.encoding, fine=True)], dim=-1)

    def encode_history(self, idx: torch.Tensor, next_ts: torch.Tensor | None = None):
        """Hidden states [B, L, D] of left-padded event-index windows (−1 = padding)."""
        real = idx >= 0
        e = idx.clamp(min=0)
        items = torch.where(real, self.event_item[e], torch.zeros_like(e))
        x = self.item_inputs(items, self.event_P[e], self.event_F[e])
        ts = torch.where(real, self.event_ts[e], torch.zeros_like(e))
        codes = relative_time_codes(ts, real, self.time_mode, next_ts)
        return self.net.encode(x, real, codes)

    # ------------------------------------------------------------------ training batches
    def train_batches(self, domain, rng: np.random.Generator, users: np.ndarray) -> Batches:
        """⌊#users / batch_users⌋ batches of users drawn uniformly with replacement; each row is
        the user's last max_len + 1 training events (inputs and next-item targets)."""
        bs = int(self.optim["batch_users"])
        n_batches = max(1, len(users) // bs)
        need_neg = self.optim["loss"] == "bce_1neg"
        width = self.max_len + 1

        def gen():
            for _ in range(n_batches):
                u = users[rng.integers(0, len(users), size=bs)]
                start = domain.indptr[u]
                end = start + domain.n_train[u]
                idx = gather_windows(domain, end, start, width)
                batch = {"idx": torch.from_numpy(idx.astype(np.int64))}
                if need_neg:
                    batch["neg"] = torch.from_numpy(
                        negatives_excluding(domain, rng, u, end, (bs, width - 1)))
                yield batch

        return Batches(n_batches, gen, n_samples=n_batches * bs)

    # ------------------------------------------------------------------ maths
    def loss(self, batch: dict) -> torch.Tensor:
        dev = self.device
        idx, first = _trim_left(batch["idx"].to(dev))
        inp, tgt = idx[:, :-1], idx[:, 1:]
        t = tgt.clamp(min=0)
        next_ts = torch.where(tgt >= 0, self.event_ts[t], torch.zeros_like(t))
        h = self.encode_history(inp, next_ts)
        sel = (inp >= 0) & (tgt >= 0)
        hs = h[sel]
        P_t, F_t = self.event_P[t][sel], self.event_F[t][sel]
        if self.compat["coarse_index_for_target_fine"]:  # bug 4 of the original
            F_t = P_t.clamp(max=self.pop_fine.shape[0] - 1)
        pos = self.event_item[t][sel]
        if self.optim["loss"] == "ce":
            return self._full_softmax(hs, pos, P_t, F_t)
        neg = batch["neg"].to(dev)[:, first:][sel]
        e_pos = self.net.embed(self.item_inputs(pos, P_t, F_t))
        e_neg = self.net.embed(self.item_inputs(neg, P_t, F_t))
        pos_logit = (hs * e_pos).sum(-1)
        neg_logit = (hs * e_neg).sum(-1)
        return (F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit))
                + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit)))

    def _full_softmax(self, hs, pos, P_t, F_t) -> torch.Tensor:
        """Cross-entropy over every item of the domain, embedded at each target's periods
        (once per distinct (P, F) pair of the batch)."""
        key = P_t * (self.pop_fine.shape[0] + 1) + F_t
        uniq, inv = torch.unique(key, return_inverse=True)
        total = hs.new_zeros(())
        for k in range(len(uniq)):
            rows = (inv == k).nonzero(as_tuple=True)[0]
            emb = self._all_items(int(P_t[rows[0]]), int(F_t[rows[0]]))
            logits = hs[rows] @ emb.T
            logits[:, 0] = -torch.inf
            total = total + F.cross_entropy(logits, pos[rows], reduction="sum")
        return total / max(1, len(hs))

    def _all_items(self, P: int, F: int) -> torch.Tensor:
        """Embeddings [N + 1, D] of every item of the current domain at periods (P, F); cached
        across calls while the MLP weights are unchanged (evaluation)."""
        cache = not torch.is_grad_enabled()
        if cache:
            version = (id(self._current), *(p._version for p in self.net.item_mlp.parameters()))
            if version != self._emb_version:
                self._emb_cache.clear()
                self._emb_version = version
            hit = self._emb_cache.get((P, F))
            if hit is not None:
                return hit
        n1 = self.pop_coarse.shape[1]
        h = self.feat.coarse_history
        pc = self.pop_coarse[P:P + h].T  # [N + 1, H]
        cfg = self.feat
        x = torch.cat([encode(pc, cfg.coarse_anchors, cfg.encoding).flatten(-2),
                       encode(self.pop_fine[F], cfg.fine_anchors, cfg.encoding, fine=True)], -1)
        emb = self.net.embed(x)
        if cache:
            if (len(self._emb_cache) + 1) * n1 * emb.shape[1] > _CACHE_FLOATS:
                self._emb_cache.clear()
            self._emb_cache[(P, F)] = emb
        return emb

    def _query(self, batch: SeqBatch):
        """History states [B, D] and the query periods (P, F) of every user."""
        dev = self.device
        idx = torch.as_tensor(np.asarray(batch.event_idx), dtype=torch.long, device=dev)
        cut = max(0, idx.shape[1] - self.max_len)  # at most the last max_len events
        idx, first = _trim_left(idx[:, cut:])
        next_ts = None
        if self.time_mode == "argsort":
            ts = batch.ts.to(dev)[:, cut + first:]
            next_ts = torch.cat([ts[:, 1:], batch.query_ts.to(dev)[:, None]], dim=1)
        h = self.encode_history(idx, next_ts)[:, -1]
        qpos = np.asarray(batch.query_pos, dtype=np.int64)
        if (qpos >= 0).all():
            q = torch.as_tensor(qpos, device=dev)
            P, Fq = self.event_P[q], self.event_F[q]
        else:  # no target event: periods from the query time (completed periods only)
            p_np, f_np = self.tables.periods_at(batch.query_ts.cpu().numpy())
            P, Fq = torch.as_tensor(p_np, device=dev), torch.as_tensor(f_np, device=dev)
        return h, P, Fq

    def user_state(self, batch: SeqBatch) -> torch.Tensor:
        return self._query(batch)[0]

    def query_order(self, domain, pos: np.ndarray) -> np.ndarray:
        """Evaluation order (an evaluator hook; results keep their natural order): queries
        grouped by their (coarse, fine) periods, so each period's all-item embedding table is
        built once per split. At 1M items the cache holds a single table, and user order would
        rebuild tables in almost every batch."""
        if self.domain is not domain:
            return np.arange(len(pos))
        q = torch.as_tensor(pos, device=self.device)
        key = self.event_P[q] * (self.pop_fine.shape[0] + 1) + self.event_F[q]
        return np.argsort(key.cpu().numpy(), kind="stable")

    def score_all(self, batch: SeqBatch) -> torch.Tensor:
        h, P, Fq = self._query(batch)
        if self.eval_fine == "adjusted" and not self.training:
            return self._score_adjusted(h, P, Fq, batch)
        out = h.new_empty(h.shape[0], self.pop_coarse.shape[1])
        key = P * (self.pop_fine.shape[0] + 1) + Fq
        uniq, inv = torch.unique(key, return_inverse=True)
        for k in range(len(uniq)):
            rows = (inv == k).nonzero(as_tuple=True)[0]
            r0 = int(rows[0])
            out[rows] = h[rows] @ self._all_items(int(P[r0]), int(Fq[r0])).T
        return out

    def score_candidates(self, batch: SeqBatch, cand: torch.Tensor) -> torch.Tensor:
        h, P, Fq = self._query(batch)
        cand = cand.to(self.device)
        fine = None
        if self.eval_fine == "adjusted" and not self.training:
            adj = self._adjusted_percentiles(Fq, batch)
            fine = adj.gather(1, cand)
        x = self.item_inputs(cand, P[:, None].expand_as(cand), Fq[:, None].expand_as(cand), fine)
        return (self.net.embed(x) * h[:, None, :]).sum(-1)

    # ------------------------------------------------------------------ adjusted fine (§2.7)
    def _adjusted_percentiles(self, Fq: torch.Tensor, batch: SeqBatch) -> torch.Tensor:
        adj = self._current["adjusted"]
        perc = adj.percentiles(Fq.cpu().numpy(), batch.query_ts.cpu().numpy())
        return torch.from_numpy(perc).to(self.device)

    def _score_adjusted(self, h, P, Fq, batch) -> torch.Tensor:
        """Full ranking with a per-user fine feature: every (user, item) pair is embedded."""
        adj = self._adjusted_percentiles(Fq, batch)
        n1 = adj.shape[1]
        items = torch.arange(n1, device=self.device)
        out = h.new_empty(h.shape[0], n1)
        step = max(1, _ADJ_CHUNK // n1)
        for lo in range(0, h.shape[0], step):
            sl = slice(lo, lo + step)
            b = h[sl].shape[0]
            x = self.item_inputs(items.expand(b, n1), P[sl, None].expand(b, n1),
                                 Fq[sl, None].expand(b, n1), adj[sl])
            out[sl] = (self.net.embed(x) * h[sl, None, :]).sum(-1)
        return out


def _trim_left(idx: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Drop the leading columns that are padding in every row of a left-padded window. The
    result is unchanged: padding is masked everywhere and positions count from the right."""
    real_cols = (idx >= 0).any(0)
    first = int(real_cols.int().argmax()) if bool(real_cols.any()) else idx.shape[1] - 1
    return idx[:, first:], first


def _compat_switches(paper_compat) -> dict:
    """Every switch on (`true`) or off (`false`), or the mapping of each switch."""
    if isinstance(paper_compat, bool):
        return dict.fromkeys(COMPAT_SWITCHES, paper_compat)
    if not isinstance(paper_compat, dict):
        raise ConfigError(f"model.paper_compat={paper_compat!r}",
                          hint="use true, false or a mapping of switches")
    return {k: bool(v) for k, v in config_block("paper_compat", paper_compat,
                                                 COMPAT_SWITCHES).items()}


def negatives_excluding(domain, rng: np.random.Generator, users: np.ndarray, ends: np.ndarray,
                        shape: tuple[int, int], rounds: int = 10) -> np.ndarray:
    """Uniform item ids in 1..N per row, resampled where they hit the row's training items
    (vectorised membership on (row, item) keys)."""
    n1 = domain.n_items + 1
    rows, items = domain.user_items(users, upto_pos=ends)
    seen = np.unique(rows.astype(np.int64) * n1 + items)
    neg = rng.integers(1, domain.n_items + 1, size=shape)
    row_key = np.arange(shape[0], dtype=np.int64)[:, None] * n1
    for _ in range(rounds):
        bad = np.isin(row_key + neg, seen)
        if not bad.any():
            break
        neg[bad] = rng.integers(1, domain.n_items + 1, size=int(bad.sum()))
    return neg.astype(np.int64)
