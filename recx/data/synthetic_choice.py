"""How each event of the synthetic generator picks its item (`recx.data.synthetic`, section
"Choice" and "Sampling" of its docstring): the exact path evaluates the full distribution per
step; the pooled path samples it by stratified sampling-importance-resampling for large
catalogues. Both return the item index of every event (user-major), -1 where dropped."""

from __future__ import annotations

import math

import numpy as np

EXACT_BLOCK_CELLS = 2_000_000  # users x items per block of the exact path (memory bound)


class _LifeCycle:
    """log a_i(t)^gamma = gamma·(c_i + (κ−1)·log x − x), x = (t − r_i)/L_i; -inf for x ≤ 0."""

    def __init__(self, release, lifetime, log_appeal, kappa: float, gamma: float, dtype=np.float64):
        km1 = kappa - 1.0
        self.km1, self.gamma, self.dtype = km1, gamma, dtype
        self.release = release.astype(dtype)
        self.inv_life = (1.0 / lifetime).astype(dtype)
        self.const = (log_appeal - km1 * math.log(km1) + km1).astype(dtype)

    def __call__(self, t) -> np.ndarray:
        x = np.asarray(t, dtype=self.dtype)[..., None] - self.release
        x *= self.inv_life
        np.maximum(x, 0, out=x)  # before release: log 0 = -inf
        with np.errstate(divide="ignore"):
            la = np.log(x)
        if self.km1 != 1.0:
            la *= self.km1
        la -= x
        la += self.const
        if self.gamma == 0.0:  # a^0 = 1 once released
            return np.where(la > -np.inf, 0.0, -np.inf).astype(self.dtype)
        if self.gamma != 1.0:
            la *= self.gamma
        return la


def _last_positive(w: np.ndarray) -> np.ndarray:
    """Index of the last positive entry of each row (0 when none)."""
    return w.shape[1] - 1 - np.argmax(w[:, ::-1] > 0, axis=1)


def _sample_rows(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of one column per row ∝ exp(logits), in place (logits is destroyed).

    `u` lies in (0, 1]. Rows without a finite entry get -1. The CDF is taken in two stages
    (blocks of ~√n columns, then one block) because a full row-wise cumsum is the slowest pass.
    """
    n_rows, n = logits.shape
    top = logits.max(axis=1, keepdims=True)
    dead = top[:, 0] == -np.inf
    top[dead] = 0.0
    logits -= top
    np.exp(logits, out=logits)
    rows = np.arange(n_rows)
    width = max(8, math.isqrt(n))
    starts = np.arange(0, n, width)
    block = np.add.reduceat(logits, starts, axis=1)  # [rows, blocks]
    cdf = np.cumsum(block, axis=1)
    threshold = u * cdf[:, -1]
    blk = np.minimum((cdf < threshold[:, None]).sum(axis=1), _last_positive(block))
    rest = threshold - (cdf[rows, blk] - block[rows, blk])  # mass to go inside the block
    cols = starts[blk][:, None] + np.arange(width)
    inside = np.take_along_axis(logits, np.minimum(cols, n - 1), axis=1)
    inside[cols >= n] = 0.0
    inner = np.cumsum(inside, axis=1)
    off = np.minimum((inner < rest[:, None]).sum(axis=1), _last_positive(inside))
    pick = starts[blk] + off
    pick[dead] = -1
    return pick


def choose_exact(p: dict, items, users, rng: np.random.Generator) -> np.ndarray:
    """Item index of every event (user-major), -1 where dropped; full distribution per step."""
    n_items, eta = p["n_items"], p["drift"]
    scale = _scale(p, items)
    # float32 halves the cost of the [users, items] passes; times are < 1e4 days, so the
    # rounding of t - r stays below a minute
    life = _LifeCycle(
        items.release, items.lifetime, items.log_appeal, float(p["kappa"]), p["gamma"], np.float32
    )
    q = items.q.astype(np.float32)
    q_scaled_t = np.ascontiguousarray((scale * q).T)
    out = np.full(len(users.times), -1, dtype=np.int64)
    repeat = rng.random(len(users.times)) < p["repeat_prob"]
    repeat[users.offsets] = False

    order = np.argsort(-users.n, kind="stable")  # heavy users first: active users are a prefix
    block = max(16, min(1024, EXACT_BLOCK_CELLS // n_items))
    for b0 in range(0, len(order), block):
        ub = order[b0 : b0 + block]
        nb = users.n[ub]
        pref = users.pref[ub].astype(np.float32)
        hist = np.zeros((len(ub), int(nb[0])), dtype=np.int64)  # consumed items, per step
        n_hist = np.zeros(len(ub), dtype=np.int64)
        for j in range(int(nb[0])):
            a = int(np.searchsorted(-nb, -j, side="left"))  # users with n > j
            ev = users.offsets[ub[:a]] + j
            logits = life(users.times[ev])
            logits += pref[:a] @ q_scaled_t
            rep = repeat[ev]
            if j > 0:
                filled = np.arange(j)[None, :] < n_hist[:a, None]  # [a, j]: real entries
                r_idx = np.broadcast_to(np.arange(a)[:, None], filled.shape)
                if rep.any():  # repeats: only consumed items, unless none is admissible
                    cons = np.zeros((a, n_items), dtype=bool)
                    cons[r_idx[filled], hist[:a, :j][filled]] = True
                    only = np.where(cons, logits, -np.inf)
                    rep &= only.max(axis=1) > -np.inf
                    logits[rep] = only[rep]
                    filled &= ~rep[:, None]
                logits[r_idx[filled], hist[:a, :j][filled]] = -np.inf  # not yet consumed
            pick = _sample_rows(logits, 1.0 - rng.random(a))
            out[ev] = pick
            rows = np.flatnonzero(pick >= 0)
            chosen = pick[rows]
            fresh = rows[~rep[rows]]  # history holds distinct items; a repeat adds nothing
            hist[fresh, n_hist[fresh]] = pick[fresh]
            n_hist[fresh] += 1
            pref[rows] = (1 - eta) * pref[rows] + eta * q[chosen]
    return out


def _in_history(users_idx, cand, hist, offsets, count) -> np.ndarray:
    """For each event (user, candidate item): did the user already consume the item?"""
    lens = count[users_idx]
    total = int(lens.sum())
    hit = np.zeros(len(users_idx), dtype=bool)
    if total == 0:
        return hit
    row = np.repeat(np.arange(len(users_idx)), lens)
    pos = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    match = hist[offsets[users_idx][row] + pos] == cand[row]
    hit[row[match]] = True
    return hit


def choose_pooled(p: dict, items, users, rng: np.random.Generator) -> np.ndarray:
    """Item index of every event (user-major), -1 where dropped; stratified SIR per bucket."""
    eta, scale = p["drift"], _scale(p, items)
    repeat = rng.random(len(users.times)) < p["repeat_prob"]
    repeat[users.offsets] = False
    any_repeat = bool(repeat.any())
    pool = _Pool(p, items, scale)
    width = float(p["bucket_days"])
    order, starts, ends, bucket, owner = _event_rounds(users, width)
    h = _History(users, items)  # after the ordering's temporaries are gone (peak memory)
    current = None
    for g0, g1 in zip(starts, ends, strict=True):
        b = int(bucket[order[g0]])
        if b != current:  # new bucket: a^gamma at its midpoint; released before its start
            current = b
            pool.enter_bucket(b * width, width, keep_item_order=any_repeat)
        for c0 in range(g0, g1, p["pool_events"]):
            ev = order[c0 : min(g1, c0 + p["pool_events"])]
            _choose_chunk(ev, owner[ev], repeat, pool, h, scale, eta, rng)
    return h.out


def _scale(p: dict, items) -> float:
    """beta/√k: the preference term of the choice logits."""
    return p["beta"] / math.sqrt(items.q.shape[1])


def _event_rounds(users, width: float):
    """Event order: by time bucket, then by the event's rank among its user's events in the
    bucket (a user's several events in one bucket go to successive rounds). Returns (order,
    round starts, round ends, bucket of each event, user of each event)."""
    n_events, n_users = len(users.times), len(users.n)
    bucket = np.floor(users.times / width).astype(np.int64)
    owner = np.repeat(np.arange(n_users), users.n)
    new_group = np.ones(n_events, dtype=bool)
    new_group[1:] = (bucket[1:] != bucket[:-1]) | (owner[1:] != owner[:-1])
    rank = np.arange(n_events) - np.maximum.accumulate(np.where(new_group, np.arange(n_events), 0))
    key = bucket * (int(rank.max()) + 1) + rank
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    return order, np.r_[0, cuts], np.r_[cuts, n_events], bucket, owner


class _Pool:
    """The catalogue as the pooled path samples it: items sorted by topic, so each domain topic
    is one segment of the cumulative weights, with a^gamma evaluated once per time bucket."""

    def __init__(self, p: dict, items, scale: float):
        domain_topics = np.asarray(p["topics"])
        self.by_topic = by_topic = np.argsort(items.topic, kind="stable")
        seg_topic = items.topic[by_topic]
        self.seg_start = np.searchsorted(seg_topic, domain_topics, side="left")
        self.seg_end = np.searchsorted(seg_topic, domain_topics, side="right")
        self.m = max(1, p["pool_size"] // len(domain_topics))
        self.entry_topic = np.repeat(np.arange(len(domain_topics)), self.m)
        self.entry_lo = self.seg_start[self.entry_topic]
        self.entry_hi = np.maximum(self.seg_end[self.entry_topic] - 1, 0)
        self.life = _LifeCycle(
            items.release[by_topic],
            items.lifetime[by_topic],
            items.log_appeal[by_topic],
            float(p["kappa"]),
            p["gamma"],
            np.float32,  # per-bucket passes over the catalogue: float32 log/exp are ~4x faster
        )
        self.rel = items.release[by_topic]
        self.q_sorted_scaled = (scale * items.q[by_topic]).astype(np.float32)
        self.la_item = np.empty(len(by_topic))  # log a^gamma in item order, for repeats

    def enter_bucket(self, t0: float, width: float, keep_item_order: bool) -> None:
        """a^gamma at the bucket's midpoint; only items released before `t0` are admissible."""
        la = self.life(t0 + width / 2)
        la[self.rel >= t0] = -np.inf
        top = float(la.max()) if len(la) else 0.0
        top = top if np.isfinite(top) else 0.0
        self.weight = np.exp(la - top)  # relative to the bucket's best item: no underflow
        self.cum = np.cumsum(self.weight, dtype=np.float64)  # float64: 1M-item sums stay exact
        seg_start, seg_end = self.seg_start, self.seg_end
        lo = np.where(seg_start > 0, self.cum[np.maximum(seg_start - 1, 0)], 0.0)
        hi = np.where(seg_end > 0, self.cum[np.maximum(seg_end - 1, 0)], 0.0)
        with np.errstate(divide="ignore"):
            z = np.where(seg_end > seg_start, hi - lo, 0.0)
            self.log_z = np.log(z) + top - math.log(self.m)  # log importance weight of an entry
        self.entry_base, self.entry_span = lo[self.entry_topic], (hi - lo)[self.entry_topic]
        if keep_item_order:
            self.la_item[self.by_topic] = la

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One candidate pool, m entries per topic, each ∝ a^gamma inside its topic: (items,
        entry log weights, scaled latent factors [k, entries])."""
        target = self.entry_base + rng.random(len(self.entry_topic)) * self.entry_span
        pos = np.clip(np.searchsorted(self.cum, target, side="right"), self.entry_lo,
                      self.entry_hi)
        pool_items = self.by_topic[pos]
        # a zero-weight entry (topic without released item, rounding at a segment's
        # edge) is inadmissible: release causality must hold exactly
        entry_w = np.where(self.weight[pos] > 0, self.log_z[self.entry_topic], -np.inf)
        entry_w = entry_w.astype(np.float32)
        pool_q = np.ascontiguousarray(self.q_sorted_scaled[pos].T)
        return pool_items, entry_w, pool_q


class _History:
    """What the users consumed so far (distinct items at `users.offsets`), their drifting
    preferences, and the choice of every event (-1 until chosen, or dropped)."""

    def __init__(self, users, items):
        n_events = len(users.times)
        self.offsets = users.offsets
        self.hist = np.full(n_events, -1, dtype=np.int64)
        self.count = np.zeros(len(users.n), dtype=np.int64)
        self.pref = users.pref.astype(np.float32)
        self.q_all = items.q.astype(np.float32)
        self.out = np.full(n_events, -1, dtype=np.int64)


def _choose_chunk(ev, uid, repeat, pool: _Pool, h: _History, scale: float, eta: float,
                  rng: np.random.Generator) -> None:
    """The events of one pool: repeats among the history first, then new items from the pool;
    then the histories and preferences move on."""
    rep = repeat[ev] & (h.count[uid] > 0)
    n_rep = 0
    if rep.any():
        _choose_repeats(ev[rep], uid[rep], h.hist, h.offsets, h.count, h.pref, h.q_all,
                        pool.la_item, scale, rng, h.out)
        ev, uid = np.concatenate([ev[rep], ev[~rep]]), np.concatenate([uid[rep], uid[~rep]])
        n_rep = int(rep.sum())
    ev_new, uid_new = ev[n_rep:], uid[n_rep:]
    if len(ev_new):
        pick = _pick_from_pool(uid_new, pool, h, rng)
        h.out[ev_new] = pick  # rows still undecided stay -1 (dropped)
        keep = np.r_[np.ones(n_rep, dtype=bool), pick >= 0]
        ev, uid = ev[keep], uid[keep]
    _record(ev, uid, n_rep, h.out, h.hist, h.offsets, h.count, h.pref, h.q_all, eta)


def _pick_from_pool(uid, pool: _Pool, h: _History, rng: np.random.Generator) -> np.ndarray:
    """A new item per event from a fresh pool (-1: no admissible entry)."""
    pool_items, entry_w, pool_q = pool.draw(rng)
    logits = h.pref[uid] @ pool_q
    logits += entry_w
    col = _sample_rows(logits, 1.0 - rng.random(len(uid)))
    pick = np.where(col >= 0, pool_items[col], -1)
    _reject_consumed(pick, uid, h.pref, pool_q, entry_w, pool_items, h.hist, h.offsets,
                     h.count, rng)
    return pick


def _reject_consumed(
    pick, uid, pref, pool_q, entry_w, pool_items, hist, offsets, count, rng
) -> None:
    """Redraw (in place) the picks that the user already consumed.

    A rejected row is redrawn once with every pool entry that its user consumed masked: exact
    rejection sampling from the pool restricted to new items (-1 if none is left).
    """
    valid = pick >= 0
    seen = np.zeros(len(pick), dtype=bool)
    seen[valid] = _in_history(uid[valid], pick[valid], hist, offsets, count)
    rows = np.flatnonzero(seen)
    if len(rows) == 0:
        return
    users = uid[rows]
    lens = count[users]
    owner = np.repeat(np.arange(len(rows)), lens)
    pos = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    span = int(pool_items.max()) + 1
    consumed = owner * span + hist[offsets[users][owner] + pos]  # (row, item) keys
    keys = np.arange(len(rows))[:, None] * span + pool_items[None, :]
    logits = pref[users] @ pool_q + entry_w
    logits[np.isin(keys, consumed)] = -np.inf
    col = _sample_rows(logits, 1.0 - rng.random(len(rows)))
    pick[rows] = np.where(col >= 0, pool_items[col], -1)


def _choose_repeats(ev, uid, hist, offsets, count, pref, q_all, la_item, scale, rng, out) -> None:
    """Exact repeat choice among each user's consumed items (ragged, vectorised)."""
    lens = count[uid]
    row = np.repeat(np.arange(len(ev)), lens)
    pos = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    cand = hist[offsets[uid][row] + pos]
    logit = scale * np.einsum("ij,ij->i", pref[uid][row], q_all[cand]) + la_item[cand]
    keyed = logit - np.log(-np.log(rng.random(len(cand))))  # Gumbel-max
    best = np.maximum.reduceat(keyed, np.cumsum(lens) - lens)
    first = np.full(len(ev), -1, dtype=np.int64)
    idx = np.flatnonzero(keyed == best[row])[::-1]  # the first winner of each row wins ties
    first[row[idx]] = idx
    out[ev] = cand[first]


def _record(ev, uid, n_rep: int, out, hist, offsets, count, pref, q_all, eta) -> None:
    """Append the chosen items to the users' histories and drift their preferences.

    The first `n_rep` events are repeats: they do not grow the (distinct-item) history.
    """
    if len(ev) == 0:
        return
    chosen = out[ev]
    new_uid = uid[n_rep:]
    hist[offsets[new_uid] + count[new_uid]] = chosen[n_rep:]
    count[new_uid] += 1
    pref[uid] = (1 - eta) * pref[uid] + eta * q_all[chosen]
