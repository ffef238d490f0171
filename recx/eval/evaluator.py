"""One evaluator for every model (EVALUATION §2–§5).

Models only return scores; the evaluator does candidate selection, masking, ranking with tie
handling and the metrics, so no model can get the protocol subtly wrong. Users are scored in
batches small enough that `batch × items` stays under `eval.max_scores`, so the whole score
matrix is never held in memory.

The candidate set is the target domain's, the same for every model (EVALUATION §3): the user's
history is masked when the domain holds no repeated (user, item) pair, and nothing is masked when
it keeps repeats (`eval.mask_history=auto`; `true`/`false` force one rule for all). Full ranking
counts both candidate sets from one scoring pass: the masked count differs from the unmasked one
only by the history items above the target, so each split's result carries the policy's ranks
and the other rule's (`SplitResult.other`).
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
from recx.eval.counting import CountFn, history_above, target_counts
from recx.eval.protocols import negatives_for, protocol_string

log = logging.getLogger(__name__)

# score_fn(batch, candidates or None) → [B, N+1] (full) or [B, C]; or [V, B, ·] for V variants
ScoreFn = Callable[[SeqBatch, torch.Tensor | None], torch.Tensor]
@dataclass
class SplitResult:
    split: str
    ranks: np.ndarray  # [V, Q] 0-based ranks (V = the count's variants, 1 for a plain model)
    users: np.ndarray
    targets: np.ndarray
    n_candidates: np.ndarray
    history_len: np.ndarray
    n_repeat_targets: int  # queries whose target repeats one of the user's history items
    slices: dict[str, np.ndarray] = field(default_factory=dict)  # name → bool mask over Q
    mask: bool | None = None  # the history masked (None: sampled candidates, no mask applies)
    policy: bool = True  # the candidate set of the domain's policy (False: the other rule)
    other: SplitResult | None = None  # the other rule's ranks of the same scores (full only)

    def metrics(self, metrics, ks, variant: int = 0) -> dict[str, dict]:
        """{slice: {metric@k: value, n_users: n}}"""
        out = {}
        for name, sel in self.slices.items():
            r = self.ranks[variant][sel]
            out[name] = {**M.compute(r, metrics, ks, self.n_candidates[sel]),
                         "n_users": int(sel.sum())}
        return out

    def candidate_sets(self) -> list[SplitResult]:
        """The policy's result first, then the other rule's where it was counted."""
        return [self] if self.other is None else [self, self.other]


def resolve_mask(ev, domain) -> bool:
    """The history rule for every model on `domain` (EVALUATION §3): `auto` masks exactly when
    the domain's data hold no repeated (user, item) pair, so a target is never a history item."""
    m = str(ev.mask_history).lower()
    if m == "auto":
        return bool(domain.repeat_free)
    if m in ("true", "on", "1"):
        return True
    if m in ("false", "off", "0"):
        return False
    raise ConfigError(f"eval.mask_history={ev.mask_history!r}",
                      hint="use auto (the domain's policy), true or false")


# query_order(domain, pos) → a permutation of the split's queries to score them in, or None for
# their natural order; the results come back in the natural order, so it only affects speed
# (e.g. PrepRec groups queries by period so each period's all-item table is built once)
QueryOrder = Callable[[object, np.ndarray], np.ndarray | None]


def _take(q: Queries, idx: np.ndarray) -> Queries:
    return Queries(q.users[idx], q.pos[idx], q.targets[idx], q.query_ts[idx])


class Evaluator:
    def __init__(self, domain, ev, *, cache_root, mask_history: bool | None = None,
                 max_len: int = 50, device: str | torch.device = "cpu", label: str = "model",
                 progress=None, query_order: QueryOrder | None = None):
        """`mask_history` None: the domain's policy (`resolve_mask`)."""
        self.domain, self.ev = domain, ev
        self.query_order = query_order
        if ev.candidates not in ("full", "sampled"):
            raise ConfigError(f"eval.candidates={ev.candidates!r}", hint="use full or sampled")
        if ev.ties not in ("pessimistic", "random", "optimistic"):
            raise ConfigError(f"eval.ties={ev.ties!r}",
                              hint="use pessimistic, random or optimistic")
        both = str(ev.get("mask_variants", "both"))
        if both not in ("both", "policy"):
            raise ConfigError(f"eval.mask_variants={both!r}", hint="use both or policy")
        self.full = ev.candidates == "full"
        rule = resolve_mask(ev, domain) if mask_history is None else bool(mask_history)
        self.mask = rule and self.full
        # the candidate sets counted per pass: the policy's first, then the other rule's
        self.masks = (self.mask, not self.mask) if self.full and both == "both" else (self.mask,)
        self.cache_root = cache_root
        self.max_len = max_len
        self.device = torch.device(device)
        self.label = label
        self.progress = progress

    @property
    def protocol(self) -> str:
        return protocol_string(self.ev, self.mask)

    def protocol_of(self, res: SplitResult) -> str:
        return protocol_string(self.ev, res.mask)

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
                                sample, variants, self.max_len, self.masks, self.protocol)
        hit = cache.load(path, len(self.masks))
        if hit is not None:
            log.info("%s %s: ranks from the evaluation cache (%s)", self.label, split, path.name)
            res = self._result(split, hit["ranks"], hit["users"], hit["targets"],
                               hit["n_candidates"], hit["history_len"], hit["n_repeat_targets"])
            self._warn_masked_targets(res)
            return res
        res = self._run(score_fn, split, count, variants, sample)
        cache.save(path, res)
        return res

    def _result(self, split, ranks, users, targets, n_candidates, history_len,
                n_repeat) -> SplitResult:
        """One SplitResult per candidate set counted (ranks and n_candidates are per mask),
        the policy's first with the other's as `.other`."""
        out = None
        for m in reversed(range(len(self.masks))):
            res = SplitResult(split, ranks[m], users, targets, n_candidates[m], history_len,
                              n_repeat, mask=self.masks[m] if self.full else None,
                              policy=m == 0, other=out)
            res.slices = self._slices(res)
            out = res
        return out

    def _run(self, score_fn, split, count, variants, sample) -> SplitResult:
        d = self.domain
        natural, negs = self._queries(split, sample)
        q, perm = natural, None
        if self.query_order is not None and len(natural.users):
            perm = self.query_order(d, natural.pos)
        if perm is not None:
            perm = np.asarray(perm, dtype=np.int64)
            q, negs = _take(natural, perm), (negs[perm] if negs is not None else None)
        parts = self._rank_batches(score_fn, count, q, negs, split, variants)
        n_m = len(self.masks) if negs is None else 1
        ranks = [np.concatenate([p[0][m] for p in parts], axis=1) if parts
                 else np.zeros((1, 0), np.int64) for m in range(n_m)]
        ncand = [np.concatenate([p[1][m] for p in parts]) if parts else np.zeros(0, np.int64)
                 for m in range(n_m)]
        if perm is not None:  # back to the natural order of the queries
            inv = np.argsort(perm)  # the inverse permutation
            ranks, ncand, q = [r[:, inv] for r in ranks], [c[inv] for c in ncand], natural
        hist_len = q.pos - d.indptr[q.users]
        n_repeat = int(d.repeat_event[q.pos].sum()) if len(q.users) else 0
        res = self._result(split, ranks, q.users, q.targets, ncand, hist_len, n_repeat)
        self._warn_masked_targets(res)
        return res

    def _queries(self, split: str, sample: int | None) -> tuple[Queries, np.ndarray | None]:
        """The split's queries in their natural order (a seeded `sample` of them) and, under
        sampled candidates, each query's negatives."""
        natural = self.domain.queries(split)
        n_q = len(natural.users)
        negs = None if self.ev.candidates != "sampled" else negatives_for(
            self.domain, natural.users, split, self.ev, self.cache_root)
        if sample is not None and 0 < int(sample) < n_q:
            keep = np.sort(np.random.default_rng(int(self.ev.negatives_seed)).choice(
                n_q, int(sample), replace=False))
            natural, negs = _take(natural, keep), (negs[keep] if negs is not None else None)
        return natural, negs

    def _rank_batches(self, score_fn, count, q: Queries, negs, split: str,
                      variants: int) -> list[tuple[list, list]]:
        """Per batch of users: (ranks per mask, n_candidates per mask). CUDA out of memory
        halves the batch and retries (ARCHITECTURE §9): ranks are per user, results unchanged."""
        n_q, bs = len(q.users), self._batch_size(variants)
        parts: list[tuple[list, list]] = []
        task = self.progress.add_task(f"eval {self.label} {split}", total=n_q) \
            if self.progress is not None and n_q > bs else None
        pin = self.device.type == "cuda"  # pinned host batches copy asynchronously
        lo = 0
        while lo < n_q:
            sl = slice(lo, min(lo + bs, n_q))
            batch = query_batch(self.domain, q.pos[sl], self.max_len, pin=pin).to(self.device)
            try:
                with torch.no_grad():
                    if negs is None:
                        part = self._full(score_fn, count, batch, q, sl, split)
                    else:
                        part = self._sampled(score_fn, count, batch, negs[sl], split, sl, q)
            except torch.cuda.OutOfMemoryError:
                if bs == 1:
                    raise
                bs = max(1, bs // 2)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                log.warning("%s: out of memory evaluating %s; retrying with %d users per batch",
                            self.label, split, bs)
                continue
            parts.append(part)
            if task is not None:
                self.progress.advance(task, sl.stop - sl.start)
            lo = sl.stop
        if task is not None:
            self.progress.remove_task(task)
        return parts

    def _warn_masked_targets(self, res: SplitResult) -> None:
        """A forced mask on data with repeats masks the targets that are history items too."""
        if res.mask and res.n_repeat_targets:
            log.warning("%s %s: eval.mask_history=true on data that keep repeats: %d of %d "
                        "targets (%.1f %%) are history items, masked like the rest of the "
                        "history and counted as misses", self.label, res.split,
                        res.n_repeat_targets, len(res.users),
                        100 * res.n_repeat_targets / max(1, len(res.users)))

    # ----------------------------------------------------------------------------- ranking
    def _scores(self, score_fn, batch, cand, split, lo) -> torch.Tensor:
        scores = score_fn(batch, cand)
        if scores.dim() == 2:
            scores = scores.unsqueeze(0)
        if scores.dtype != torch.float64:  # a model may break its ties below float32's step
            scores = scores.float()
        if torch.isnan(scores).any():
            raise EvalError(f"{self.label} produced NaN scores on {split} (users {lo}…)",
                            hint="the model diverged: lower the learning rate or check inputs")
        return scores

    def _full(self, score_fn, count, batch, q, sl, split) -> tuple[list, list]:
        """All items are candidates; padding is masked, and the history under a masking rule
        (the target too where it is a history item: a miss, never an exemption). Returns the
        ranks [V, B] and candidate counts [B] of every rule in `self.masks`, the policy's first.

        The policy's rule is counted; the other's counts differ only by the history items that
        enter (or leave) the candidates, so they come from the values the count compared
        (`count.values`): the same scores, ranked over the other candidate set. A count without
        them (a blend normalised by rank) is counted again under the other rule."""
        d = self.domain
        s = self._scores(score_fn, batch, None, split, sl.start)
        n1 = s.shape[-1]
        if n1 != d.n_items + 1:
            raise EvalError(f"{self.label} returned {n1} scores per user, expected "
                            f"{d.n_items + 1} (items + padding column)")
        b = s.shape[1]
        tcol = batch.targets.to(s.device)
        pad = torch.zeros(b, n1, dtype=torch.bool, device=s.device)
        pad[:, 0] = True
        rows = items = None
        masked = {False: pad}
        if any(self.masks):  # the distinct history items other than the target
            rows, items = self._history(q, sl, s.device)
            n_masked = torch.bincount(rows, minlength=b).cpu().numpy()  # the target included
            keep = items != tcol[rows]
            rows, items = rows[keep], items[keep]
            masked[True] = pad.clone()
            masked[True][rows, items] = True

        def counted(rule):
            sm = s.masked_fill(masked[rule], -torch.inf)
            return self._counts(lambda strict: count(sm, masked[rule], tcol, strict))

        policy = self.masks[0]
        counts = {policy: counted(policy)}
        if len(self.masks) > 1:
            other = self.masks[1]
            values = getattr(count, "values", None)
            # the values at targets and history items only: the padding column is never read
            values = values(s, masked[policy], tcol, rows, items) if values is not None else None
            if values is None:
                counts[other] = counted(other)
            else:  # masking removes the history items above the target; unmasking adds them
                sign = -1 if other else 1
                delta = history_above(values, b, rows)
                counts[other] = tuple(None if c is None else c + sign * dc
                                      for c, dc in zip(counts[policy], delta, strict=True))
        in_hist = d.repeat_event[q.pos[sl]]
        ranks, ncand = [], []
        for rule in self.masks:
            r = self._tie_ranks(*counts[rule], split, q.users[sl])
            if rule:
                r[:, in_hist] = M.MISS
            ranks.append(r)
            ncand.append(d.n_items - n_masked if rule else np.full(b, d.n_items, np.int64))
        return ranks, ncand

    def _history(self, q, sl, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, item) of each distinct history item of the batch's users."""
        rows, items = self.domain.user_items(q.users[sl], upto_pos=q.pos[sl])
        if not self.domain.repeat_free and len(rows):
            key = np.unique(rows.astype(np.int64) * (self.domain.n_items + 1) + items)
            rows, items = key // (self.domain.n_items + 1), key % (self.domain.n_items + 1)
        return (torch.from_numpy(rows.astype(np.int64)).to(device),
                torch.from_numpy(items.astype(np.int64)).to(device))

    def _counts(self, count_at) -> tuple:
        """(greater, at least) as the tie rule needs them; `count_at(strict)` → [V, B]."""
        ties = self.ev.ties
        greater = count_at(True) if ties in ("optimistic", "random") else None
        at_least = count_at(False) if ties in ("pessimistic", "random") else None
        return greater, at_least

    def _sampled(self, score_fn, count, batch, negs, split, sl, q) -> tuple[list, list]:
        """Candidates = [target, negatives…]; -1 marks negatives that could not be drawn."""
        tgt = batch.targets.cpu().numpy()[:, None]
        cand = np.concatenate([tgt, negs], axis=1)
        valid = cand >= 0
        cand_t = torch.from_numpy(np.where(valid, cand, 0)).to(self.device)
        s = self._scores(score_fn, batch, cand_t, split, sl.start)
        masked = torch.from_numpy(~valid).to(s.device)
        tcol = torch.zeros(len(cand), dtype=torch.long, device=s.device)
        s = s.masked_fill(masked, -torch.inf)
        c = self._counts(lambda strict: count(s, masked, tcol, strict))
        return [self._tie_ranks(*c, split, q.users[sl])], [valid.sum(1)]

    def _tie_ranks(self, greater, at_least, split, users) -> np.ndarray:
        """0-based rank of the target: greater (+ equal, by the tie rule), EVALUATION §4.
        `at_least` counts the target itself."""
        if self.ev.ties == "optimistic":
            return greater.cpu().numpy().astype(np.int64)
        at_least = at_least.cpu().numpy()
        if self.ev.ties == "pessimistic":
            return (at_least - 1).astype(np.int64)
        greater = greater.cpu().numpy()
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
                out[name] = (res.history_len >= lo) & (
                    res.history_len <= hi if qn == 4 else res.history_len < hi)
            else:
                raise ConfigError(f"unknown eval.slices entry {name!r}",
                                  hint="use all, cold_target, long_tail, head, activity_q1..q4")
        return out
