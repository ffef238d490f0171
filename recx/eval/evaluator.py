"""One evaluator for every model (EVALUATION §2–§5).

Models only return scores; the evaluator does candidate selection, masking, ranking with tie
handling and the metrics, so no model can get the protocol subtly wrong. Users are scored in
batches small enough that `batch × items` stays under `eval.max_scores`, so the whole score
matrix is never held in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from recx.data.domain import Queries
from recx.data.scenarios import SPLIT_CODES
from recx.data.sequences import SeqBatch, query_batch
from recx.errors import ConfigError, EvalError
from recx.eval import metrics as M
from recx.eval.protocols import negatives_for, protocol_string

log = logging.getLogger(__name__)

# score_fn(batch, candidates or None) → [B, N+1] (full) or [B, C]; or [V, B, ·] for V variants
ScoreFn = Callable[[SeqBatch, torch.Tensor | None], torch.Tensor]
# count(scores [V, B, C] with -inf at masked entries, masked [B, C], target columns [B],
#       strict) → [V', B]: how many candidates score above each target (strict) or at least as
# high (the target included). Ranks come from these counts, so a scorer with many variants
# (an interpolation's α grid) can count them without holding every variant's scores.
CountFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], torch.Tensor]


def target_counts(s: torch.Tensor, masked: torch.Tensor, tcol: torch.Tensor,
                  strict: bool) -> torch.Tensor:
    """The plain CountFn: one rank per score variant."""
    t = s[:, torch.arange(s.shape[1], device=s.device), tcol].unsqueeze(-1)
    return ((s > t) if strict else (s >= t)).sum(-1)


@dataclass
class SplitResult:
    split: str
    ranks: np.ndarray  # [V, Q] 0-based ranks (V = the count's variants, 1 for a plain model)
    users: np.ndarray
    targets: np.ndarray
    n_candidates: np.ndarray
    history_len: np.ndarray
    n_repeat_targets: int
    slices: dict[str, np.ndarray] = field(default_factory=dict)  # name → bool mask over Q

    def metrics(self, metrics, ks, variant: int = 0) -> dict[str, dict]:
        """{slice: {metric@k: value, n_users: n}}"""
        out = {}
        for name, sel in self.slices.items():
            r = self.ranks[variant][sel]
            out[name] = {**M.compute(r, metrics, ks, self.n_candidates[sel]),
                         "n_users": int(sel.sum())}
        return out


def resolve_mask(ev, sequential: bool) -> bool:
    m = str(ev.mask_history).lower()
    if m == "auto":
        return not sequential
    if m in ("true", "on", "1"):
        return True
    if m in ("false", "off", "0"):
        return False
    raise ConfigError(f"eval.mask_history={ev.mask_history!r}", hint="use auto, true or false")


# query_order(domain, pos) → a permutation of the split's queries to score them in; the results
# come back in the natural order, so it only affects speed (e.g. PrepRec groups queries by period
# so each period's all-item table is built once)
QueryOrder = Callable[[object, np.ndarray], np.ndarray]


class Evaluator:
    def __init__(self, domain, ev, *, mask_history: bool, cache_root, max_len: int = 50,
                 device: str | torch.device = "cpu", label: str = "model", progress=None,
                 query_order: QueryOrder | None = None):
        self.domain, self.ev = domain, ev
        self.query_order = query_order
        self.mask = bool(mask_history) and ev.candidates == "full"
        self.cache_root = cache_root
        self.max_len = max_len
        self.device = torch.device(device)
        self.label = label
        self.progress = progress
        if ev.candidates not in ("full", "sampled"):
            raise ConfigError(f"eval.candidates={ev.candidates!r}", hint="use full or sampled")
        if ev.ties not in ("pessimistic", "random", "optimistic"):
            raise ConfigError(f"eval.ties={ev.ties!r}",
                              hint="use pessimistic, random or optimistic")

    @property
    def protocol(self) -> str:
        return protocol_string(self.ev, self.mask)

    def _batch_size(self, variants: int = 1) -> int:
        width = self.domain.n_items + 1 if self.ev.candidates == "full" else self.ev.n_negatives + 1
        width *= max(1, variants)
        return max(1, min(int(self.ev.batch_users), int(self.ev.max_scores) // width))

    def run(self, score_fn: ScoreFn, split: str, count: CountFn = target_counts,
            variants: int = 1, sample: int | None = None,
            cache_key: str | None = None) -> SplitResult:
        """Rank every query of `split`. `count` turns the masked score tensor [V, B, C] into the
        counts that give the ranks (e.g. of every blend of two models); `variants` is V, the
        number of score rows per user score_fn returns, used to bound memory. `sample` ranks
        only that many queries, drawn with `eval.negatives_seed` (the same ones at every call);
        without it, `eval.sample_users` (null = every query) does the same for every split.
        `cache_key` (`recx.eval.cache.scorer_key`: what identifies score_fn and count) reuses
        the ranks of an identical earlier call."""
        if sample is None and getattr(self.ev, "sample_users", None):
            sample = int(self.ev.sample_users)
        if cache_key is None:
            return self._run(score_fn, split, count, variants, sample)
        from recx.eval import cache

        path = cache.split_path(self.cache_root, cache_key, self.domain.data_hash, split,
                                sample, variants, self.max_len, self.mask, self.protocol)
        hit = cache.load(path)
        if hit is not None:
            log.info("%s %s: ranks from the evaluation cache (%s)", self.label, split, path.name)
            res = SplitResult(split, hit["ranks"].astype(np.int64), hit["users"], hit["targets"],
                              hit["n_candidates"], hit["history_len"], hit["n_repeat_targets"])
            res.slices = self._slices(res)
            return res
        res = self._run(score_fn, split, count, variants, sample)
        cache.save(path, res)
        return res

    def _run(self, score_fn, split, count, variants, sample) -> SplitResult:
        d = self.domain
        natural = d.queries(split)
        n_q = len(natural.users)
        negs = None
        if self.ev.candidates == "sampled":
            negs = negatives_for(d, natural.users, split, self.ev, self.cache_root)
        if sample is not None and 0 < int(sample) < n_q:
            keep = np.sort(np.random.default_rng(int(self.ev.negatives_seed)).choice(
                n_q, int(sample), replace=False))
            natural = Queries(natural.users[keep], natural.pos[keep], natural.targets[keep],
                              natural.query_ts[keep])
            negs = negs[keep] if negs is not None else None
            n_q = len(keep)
        q, perm = natural, None
        if self.query_order is not None and n_q:
            perm = np.asarray(self.query_order(d, natural.pos), dtype=np.int64)
            q = Queries(natural.users[perm], natural.pos[perm], natural.targets[perm],
                        natural.query_ts[perm])
            negs = negs[perm] if negs is not None else None
        bs = self._batch_size(variants)
        ranks_parts, ncand_parts = [], []
        n_repeat = 0
        task = None
        if self.progress is not None and n_q > bs:
            task = self.progress.add_task(f"eval {self.label} {split}", total=n_q)
        pin = self.device.type == "cuda"  # pinned host batches copy asynchronously
        lo = 0
        while lo < n_q:
            sl = slice(lo, min(lo + bs, n_q))
            batch = query_batch(d, q.pos[sl], self.max_len, pin=pin).to(self.device)
            try:
                with torch.no_grad():
                    if negs is None:
                        s, masked, tcol, rep = self._full(score_fn, batch, q, sl, split)
                    else:
                        s, masked, tcol, rep = self._sampled(score_fn, batch, negs[sl], split, sl)
                    ranks = self._ranks(count, s, masked, tcol, split, q.users[sl])
            except torch.cuda.OutOfMemoryError:
                # ARCHITECTURE §9: halve the user batch and retry; ranks are per user, so the
                # result does not change
                if bs == 1:
                    raise
                s = masked = None
                bs = max(1, bs // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                log.warning("%s: out of memory evaluating %s; retrying with %d users per batch",
                            self.label, split, bs)
                continue
            ranks_parts.append(ranks)
            ncand_parts.append((~masked).sum(1).cpu().numpy())
            n_repeat += rep
            if task is not None:
                self.progress.advance(task, sl.stop - sl.start)
            lo = sl.stop
        if task is not None:
            self.progress.remove_task(task)
        ranks = np.concatenate(ranks_parts, axis=1) if ranks_parts else np.zeros((1, 0), np.int64)
        ncand = np.concatenate(ncand_parts) if ncand_parts else np.zeros(0, np.int64)
        if perm is not None:  # back to the natural order of the queries
            inv = np.empty_like(perm)
            inv[perm] = np.arange(len(perm))
            ranks, ncand, q = ranks[:, inv], ncand[inv], natural
        hist_len = q.pos - d.indptr[q.users]
        res = SplitResult(split, ranks, q.users, q.targets, ncand, hist_len, n_repeat)
        res.slices = self._slices(res)
        return res

    # ----------------------------------------------------------------------------- ranking
    def _scores(self, score_fn, batch, cand, split, lo) -> torch.Tensor:
        scores = score_fn(batch, cand)
        if scores.dim() == 2:
            scores = scores.unsqueeze(0)
        scores = scores.float()
        if torch.isnan(scores).any():
            raise EvalError(f"{self.label} produced NaN scores on {split} (users {lo}…)",
                            hint="the model diverged: lower the learning rate or check inputs")
        return scores

    def _full(self, score_fn, batch, q, sl, split):
        """All items are candidates; padding (and the history, when masking) are masked."""
        d = self.domain
        s = self._scores(score_fn, batch, None, split, sl.start)
        n1 = s.shape[-1]
        if n1 != d.n_items + 1:
            raise EvalError(f"{self.label} returned {n1} scores per user, expected "
                            f"{d.n_items + 1} (items + padding column)")
        b = s.shape[1]
        tgt = batch.targets.to(s.device)
        masked = torch.zeros(b, n1, dtype=torch.bool, device=s.device)
        masked[:, 0] = True
        rep = 0
        if self.mask:
            rows, items = d.user_items(q.users[sl], upto_pos=q.pos[sl])
            rows_t = torch.from_numpy(rows).to(s.device)
            items_t = torch.from_numpy(items.astype(np.int64)).to(s.device)
            rep = int((items_t == tgt[rows_t]).sum())
            masked[rows_t, items_t] = True
            masked[torch.arange(b, device=s.device), tgt] = False  # the target is never masked
        return s.masked_fill(masked, -torch.inf), masked, tgt, rep

    def _sampled(self, score_fn, batch, negs, split, sl):
        """Candidates = [target, negatives…]; -1 marks negatives that could not be drawn."""
        tgt = batch.targets.cpu().numpy()[:, None]
        cand = np.concatenate([tgt, negs], axis=1)
        valid = cand >= 0
        cand_t = torch.from_numpy(np.where(valid, cand, 0)).to(self.device)
        s = self._scores(score_fn, batch, cand_t, split, sl.start)
        masked = torch.from_numpy(~valid).to(s.device)
        tcol = torch.zeros(len(cand), dtype=torch.long, device=s.device)
        return s.masked_fill(masked, -torch.inf), masked, tcol, 0

    def _ranks(self, count, s, masked, tcol, split, users) -> np.ndarray:
        """0-based rank of the target: greater (+ equal, by the tie rule), EVALUATION §4."""
        if self.ev.ties == "optimistic":
            return count(s, masked, tcol, True).cpu().numpy().astype(np.int64)
        at_least = count(s, masked, tcol, False).cpu().numpy()  # the target counts itself
        if self.ev.ties == "pessimistic":
            return (at_least - 1).astype(np.int64)
        greater = count(s, masked, tcol, True).cpu().numpy()
        code = SPLIT_CODES[split]
        rng = np.random.default_rng([int(self.ev.negatives_seed), code])
        u = rng.random(self.domain.n_users + 1)[users]
        return (greater + np.floor(u * (at_least - greater))).astype(np.int64)

    # ----------------------------------------------------------------------------- slices
    def _slices(self, res: SplitResult) -> dict[str, np.ndarray]:
        out = {}
        counts = self.domain.train_item_counts
        for name in self.ev.slices:
            if name == "all":
                out[name] = np.ones(len(res.users), dtype=bool)
            elif name == "cold_target":
                out[name] = counts[res.targets] == 0
            elif name in ("long_tail", "head"):
                n_head = max(1, round(0.2 * self.domain.n_items))
                order = np.argsort(-counts[1:], kind="stable") + 1
                head = np.zeros_like(counts, dtype=bool)
                head[order[:n_head]] = True
                out[name] = head[res.targets] if name == "head" else ~head[res.targets]
            elif name.startswith("activity_q"):
                qn = int(name[-1])
                edges = np.quantile(res.history_len, [0, 0.25, 0.5, 0.75, 1.0])
                lo, hi = edges[qn - 1], edges[qn]
                sel = (res.history_len >= lo) & (
                    res.history_len <= hi if qn == 4 else res.history_len < hi)
                out[name] = sel
            else:
                raise ConfigError(f"unknown eval.slices entry {name!r}",
                                  hint="use all, cold_target, long_tail, head, activity_q1..q4")
        return out
