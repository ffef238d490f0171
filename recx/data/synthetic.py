"""The synthetic multi-domain generator (ARCHITECTURE §6.3): `dataset=synth_a` … `tiny_b`.

The generated domains carry the signals that every recx model is built to exploit: item
life-cycles (popularity dynamics), sequential preference drift (SASRec-like models) and item text
that depends on a latent topic shared across domains (text-based transfer).

World (shared by every domain)
------------------------------
G = 32 global topics (names, ~20 topic words and 4 brand tokens each, from `synthetic_vocab.json`)
in 8 groups of 4 related topics, and ~300 generic words. Each topic has a latent centroid
μ_g ∈ R^k, k = 16: μ_g = √(1−ω)·z_g + √ω·z_group(g), z ~ N(0, I), ω = 0.3, so topics of a group
are related in behaviour as their words are in meaning. The world is drawn from the fixed
`WORLD_SEED`, never from the domain's seed, so that every domain sees the same topics.

Domain (parameters: `SyntheticSchema` in recx/config/schema.py, the `synthetic:` node)
------------------------------------------------------------------------------------
Times t are in days from the start, 2020-01-01 00:00 UTC, over a span of `span_days`.

Items i = 1..N (`n_items`):
  π ~ Dirichlet(alpha_cat) over the domain's `topics`;  c_i ~ Categorical(π)
  q_i = μ_{c_i} + sigma_item·ε_i                              latent factor
  A_i ~ LogNormal(0, sigma_appeal)                            base appeal (heavy tail)
  L_i ~ LogNormal(log lifetime_median_days, lifetime_sigma)   lifetime
  r_i ~ Uniform(0, span); a fraction `prerelease_fraction` is released before the start instead,
        r_i = −u·(κ+1)·L_i, u ~ U(0, 1), so the catalogue at t = 0 is at every life-cycle phase.
  a_i(t) = A_i·(x/(κ−1))^(κ−1)·exp(−(x−(κ−1))),  x = (t − r_i)/L_i > 0;  a_i(t) = 0 for t ≤ r_i.
        A gamma-shaped rise and decay peaking at A_i when x = κ−1 (κ = `kappa` > 1).

Users u = 1..U (`n_users`):
  n_u = clip(round(LogNormal(log activity_median, activity_sigma)), min_len, max_len)
  preference p_u = w·μ_a + (1−w)·μ_b + pref_noise·ε with topics a, b ~ π (b = a, i.e. one topic,
        unless a second topic is drawn, probability `two_topic_prob`), w ~ U(0.5, 1)
  gaps: s_u ~ LogNormal(log gap_median_days, gap_user_sigma) is the user's own scale, each gap
        ~ LogNormal(log s_u, gap_sigma), at least one minute (so timestamps strictly increase);
        when the n_u − 1 gaps exceed 98% of the span they are scaled down to fit.
  start ~ Uniform(0, span − duration), so every event lies inside the span.

Choice, at each event time t of user u:
  P(i) ∝ exp(beta·⟨p_u, q_i⟩/√k) · a_i(t)^gamma over items released before t and not yet consumed
  by u. With probability `repeat_prob` (never for a first event) the event is a repeat: the same
  weights restricted to the items u already consumed. After the choice the preference drifts,
  p_u ← (1−drift)·p_u + drift·q_i, which is the sequential signal. An event with no admissible
  item (every released item consumed) is dropped; `info["dropped_events"]` counts them.

Item text: `title` has 3–8 words, each drawn from the item's topic word list with probability
`rho_topic`, otherwise from the generic list; `category` is the topic name; `brand` is one of the
topic's 4 brand tokens (uniform).

Sampling
--------
Exact path (n_items ≤ `exact_max_items`): users are processed in blocks (sorted by activity, so the
active users of a block at step j are a prefix); each event step evaluates the full distribution
above for all items and all active users of the block at once (one [users, items] array).

Pooled path (larger catalogues, e.g. 1M items and 10M events in a few minutes): exact-in-the-limit
sampling-importance-resampling. Events are processed in time order, by buckets of `bucket_days`
(a user's several events inside one bucket go to successive rounds, so each user's events stay
sequential). In a bucket, a_i is evaluated once at the bucket's midpoint, with only items released
before the bucket's start admissible (so release causality holds exactly). Every `pool_events`
events of a round share one candidate pool: m = pool_size / C entries per domain topic c, each
drawn ∝ a_i^gamma within the topic; entry j of topic c carries the importance weight Z_c/m, where
Z_c = Σ_{i∈c} a_i^gamma. Each event then picks an entry ∝ exp(beta·⟨p_u, q_j⟩/√k)·Z_c/m (a dense
matrix product); a pick that the user already consumed is rejected and redrawn from the pool with
all of the user's consumed entries masked. As m → ∞ this is the exact distribution; the topic
stratification keeps every topic represented, so strongly topical users still see many
candidates. Repeats choose among the user's history exactly. Defaults: pool_size 1024,
pool_events 256, bucket_days 1 (1M items, 10M events: ~2 CPU-minutes, 1.5 GB peak).

Determinism: the output depends only on (parameters, `seed`, GENERATOR_VERSION); the domain's
`name` is not used. Separate random streams drive items, users, choices and text, so changing
e.g. `rho_topic` leaves the interactions unchanged.

Output (`RawData`, recx/data/canonical.py): interactions `user`, `item` (int64 raw ids), `ts`
(int64 seconds), user-major and time-ordered; an item frame (`item` as string, `title`,
`category`, `brand`) with every generated item; `info["truth"]`: JSON-serialisable ground truth
(topics, per-item category/release/lifetime/appeal, per-user topics/activity/gap scale) for
diagnostics and plots only — no model may read it. Raw ids are `seed·10^9 + index` (index from 1),
so domains with different seeds never share raw ids.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recx.data.canonical import RawData

GENERATOR_VERSION: int = 1
N_TOPICS = 32
LATENT_DIM = 16
WORLD_SEED = 20_240_613  # fixed: domains must share topics whatever their own seed
GROUP_SHARE = 0.3  # ω: share of a topic centroid that its group has in common
START_TS = 1_577_836_800  # 2020-01-01T00:00:00Z
DAY = 86_400
MIN_GAP_DAYS = 60 / DAY
VOCAB_PATH = Path(__file__).with_name("synthetic_vocab.json")
EXACT_BLOCK_CELLS = 2_000_000  # users x items per block of the exact path (memory bound)

# Random streams, one per part, so that e.g. text parameters do not move the interactions.
_ITEMS, _USERS, _CHOICE, _TEXT = 1, 2, 3, 4


# ------------------------------------------------------------------------------------ the world
@dataclass(frozen=True)
class World:
    names: list[str]
    groups: np.ndarray  # [G] group of each topic
    centroids: np.ndarray  # [G, k]
    words: list[list[str]]  # per topic
    brands: list[list[str]]  # per topic
    generic: list[str]


@lru_cache(maxsize=1)
def world() -> World:
    """The shared world: topic names, words, brands and latent centroids (fixed seed)."""
    vocab = json.loads(VOCAB_PATH.read_text(encoding="utf-8"))
    topics = vocab["topics"]
    if len(topics) != N_TOPICS:
        raise ValueError(f"{VOCAB_PATH} must list {N_TOPICS} topics, found {len(topics)}")
    groups = np.array([t["group"] for t in topics], dtype=np.int64)
    rng = np.random.default_rng(WORLD_SEED)
    own = rng.standard_normal((N_TOPICS, LATENT_DIM))
    shared = rng.standard_normal((int(groups.max()) + 1, LATENT_DIM))
    centroids = math.sqrt(1 - GROUP_SHARE) * own + math.sqrt(GROUP_SHARE) * shared[groups]
    return World(
        names=[t["name"] for t in topics],
        groups=groups,
        centroids=centroids,
        words=[list(t["words"]) for t in topics],
        brands=[list(t["brands"]) for t in topics],
        generic=list(vocab["generic"]),
    )


# ---------------------------------------------------------------------------------- parameters
def _params(params: Any) -> dict[str, Any]:
    """Plain dict of the `SyntheticSchema` fields: defaults filled in, unknown keys refused."""
    from dataclasses import MISSING, fields

    from recx.config.schema import SyntheticSchema
    from recx.errors import ConfigError

    if params is None:
        params = {}
    elif not isinstance(params, Mapping):  # DictConfig is not a Mapping subclass
        from omegaconf import OmegaConf

        params = OmegaConf.to_container(params, resolve=True)
    out: dict[str, Any] = {}
    for f in fields(SyntheticSchema):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    unknown = sorted(set(params) - set(out))
    if unknown:
        raise ConfigError(
            f"unknown synthetic parameter(s) {unknown}",
            hint=f"dataset.synthetic takes only {sorted(out)}",
        )
    out.update(params)
    out["topics"] = [int(t) for t in out["topics"]]

    checks = [
        (out["seed"] >= 0, "seed must be >= 0"),
        (out["n_users"] >= 1 and out["n_items"] >= 1, "n_users and n_items must be >= 1"),
        (
            len(out["topics"]) >= 1 and len(set(out["topics"])) == len(out["topics"]),
            "topics must be a non-empty list of distinct topic ids",
        ),
        (all(0 <= t < N_TOPICS for t in out["topics"]), f"topics must lie in 0..{N_TOPICS - 1}"),
        (out["kappa"] > 1, "kappa must be > 1"),
        (1 <= out["min_len"] <= out["max_len"], "need 1 <= min_len <= max_len"),
        (
            out["span_days"] > 0
            and out["lifetime_median_days"] > 0
            and out["gap_median_days"] > 0
            and out["activity_median"] > 0,
            "span, lifetime, gap and activity medians must be > 0",
        ),
        (0 <= out["prerelease_fraction"] <= 1, "prerelease_fraction must lie in [0, 1]"),
        (0 <= out["repeat_prob"] < 1, "repeat_prob must lie in [0, 1)"),
        (0 <= out["drift"] <= 1, "drift must lie in [0, 1]"),
        (0 <= out["rho_topic"] <= 1, "rho_topic must lie in [0, 1]"),
        (0 <= out["two_topic_prob"] <= 1, "two_topic_prob must lie in [0, 1]"),
        (out["alpha_cat"] > 0, "alpha_cat must be > 0"),
        (out["gamma"] >= 0, "gamma must be >= 0"),
        (
            min(
                out[k]
                for k in (
                    "sigma_item",
                    "sigma_appeal",
                    "lifetime_sigma",
                    "activity_sigma",
                    "gap_sigma",
                    "gap_user_sigma",
                    "pref_noise",
                )
            )
            >= 0,
            "sigmas and pref_noise must be >= 0",
        ),
        (
            out["pool_size"] >= 1 and out["pool_events"] >= 1 and out["bucket_days"] > 0,
            "pool_size, pool_events and bucket_days must be positive",
        ),
    ]
    problems = [msg for ok, msg in checks if not ok]
    if problems:
        raise ConfigError(
            "invalid synthetic parameters: " + "; ".join(problems),
            hint="fix the dataset.synthetic.* values named above",
        )
    return out


def _single_thread_blas():
    """One BLAS thread: the products here are small (threads cost more than they save: 40x on
    a 16x1024 float32 product) and the result must not depend on the machine's core count."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it, BLAS keeps its own setting
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([stream, seed])


# ------------------------------------------------------------------------------------ sampling
@dataclass
class _Items:
    topic: np.ndarray  # [N] global topic id
    q: np.ndarray  # [N, k]
    log_appeal: np.ndarray  # [N]
    lifetime: np.ndarray  # [N] days
    release: np.ndarray  # [N] days (negative: before the start)
    mix: np.ndarray  # [C] π over the domain's topics


@dataclass
class _Users:
    n: np.ndarray  # [U] planned events
    topics: np.ndarray  # [U, 2] global topic ids (equal when one topic)
    pref: np.ndarray  # [U, k]
    gap_scale: np.ndarray  # [U] days
    offsets: np.ndarray  # [U] start of the user's events in the event arrays
    times: np.ndarray  # [E] event times (days), user-major


def _make_items(p: dict, w: World) -> _Items:
    rng = _rng(p["seed"], _ITEMS)
    n, topics = p["n_items"], np.asarray(p["topics"])
    mix = rng.dirichlet(np.full(len(topics), float(p["alpha_cat"])))
    topic = topics[rng.choice(len(topics), size=n, p=mix)]
    q = w.centroids[topic] + p["sigma_item"] * rng.standard_normal((n, LATENT_DIM))
    log_appeal = p["sigma_appeal"] * rng.standard_normal(n)
    lifetime = np.exp(
        math.log(p["lifetime_median_days"]) + p["lifetime_sigma"] * rng.standard_normal(n)
    )
    release = rng.uniform(0.0, p["span_days"], n)
    pre = rng.random(n) < p["prerelease_fraction"]
    release[pre] = -rng.random(int(pre.sum())) * (p["kappa"] + 1) * lifetime[pre]
    return _Items(topic, q, log_appeal, lifetime, release, mix)


def _make_users(p: dict, w: World, items: _Items) -> _Users:
    rng = _rng(p["seed"], _USERS)
    n_users, topics, span = p["n_users"], np.asarray(p["topics"]), float(p["span_days"])
    n = np.rint(
        np.exp(math.log(p["activity_median"]) + p["activity_sigma"] * rng.standard_normal(n_users))
    )
    n = np.clip(n, p["min_len"], p["max_len"]).astype(np.int64)

    first = topics[rng.choice(len(topics), size=n_users, p=items.mix)]
    second = topics[rng.choice(len(topics), size=n_users, p=items.mix)]
    second = np.where(rng.random(n_users) < p["two_topic_prob"], second, first)
    share = rng.uniform(0.5, 1.0, n_users)[:, None]
    pref = (
        share * w.centroids[first]
        + (1 - share) * w.centroids[second]
        + p["pref_noise"] * rng.standard_normal((n_users, LATENT_DIM))
    )

    gap_scale = np.exp(
        math.log(p["gap_median_days"]) + p["gap_user_sigma"] * rng.standard_normal(n_users)
    )
    offsets = np.concatenate([[0], np.cumsum(n)[:-1]])
    total = int(n.sum())
    owner = np.repeat(np.arange(n_users), n)
    gaps = np.maximum(
        gap_scale[owner] * np.exp(p["gap_sigma"] * rng.standard_normal(total)), MIN_GAP_DAYS
    )
    gaps[offsets] = 0.0  # the first event has no gap
    within = np.cumsum(gaps)
    within -= np.repeat(within[offsets], n)  # per-user cumulative gaps
    duration = within[offsets + n - 1]
    fit = np.minimum(1.0, 0.98 * span / np.maximum(duration, 1e-12))  # squeeze very long users
    within *= fit[owner]
    duration *= fit
    start = rng.uniform(0.0, 1.0, n_users) * (span - duration)
    times = start[owner] + within
    return _Users(n, np.stack([first, second], 1), pref, gap_scale, offsets, times)


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


def _choose_exact(p: dict, items: _Items, users: _Users) -> np.ndarray:
    """Item index of every event (user-major), -1 where dropped; full distribution per step."""
    rng = _rng(p["seed"], _CHOICE)
    n_items, eta = p["n_items"], p["drift"]
    scale = p["beta"] / math.sqrt(LATENT_DIM)
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


def _choose_pooled(p: dict, items: _Items, users: _Users) -> np.ndarray:
    """Item index of every event (user-major), -1 where dropped; stratified SIR per bucket."""
    rng = _rng(p["seed"], _CHOICE)
    eta, scale = p["drift"], p["beta"] / math.sqrt(LATENT_DIM)
    n_events, n_users = len(users.times), len(users.n)
    repeat = rng.random(n_events) < p["repeat_prob"]
    repeat[users.offsets] = False
    any_repeat = bool(repeat.any())

    # items sorted by topic, so each topic is one segment of the cumulative weights
    domain_topics = np.asarray(p["topics"])
    by_topic = np.argsort(items.topic, kind="stable")
    seg_topic = items.topic[by_topic]
    seg_start = np.searchsorted(seg_topic, domain_topics, side="left")
    seg_end = np.searchsorted(seg_topic, domain_topics, side="right")
    m = max(1, p["pool_size"] // len(domain_topics))
    entry_topic = np.repeat(np.arange(len(domain_topics)), m)
    entry_lo, entry_hi = seg_start[entry_topic], np.maximum(seg_end[entry_topic] - 1, 0)
    life = _LifeCycle(
        items.release[by_topic],
        items.lifetime[by_topic],
        items.log_appeal[by_topic],
        float(p["kappa"]),
        p["gamma"],
        np.float32,  # per-bucket passes over the catalogue: float32 log/exp are ~4x faster
    )
    rel = items.release[by_topic]
    q_sorted_scaled = (scale * items.q[by_topic]).astype(np.float32)
    q_all = items.q.astype(np.float32)
    pref = users.pref.astype(np.float32)
    la_item = np.empty(len(by_topic))  # log a^gamma in item order, for repeats

    # event order: by time bucket, then by the event's rank among its user's events in the bucket
    width = float(p["bucket_days"])
    bucket = np.floor(users.times / width).astype(np.int64)
    owner = np.repeat(np.arange(n_users), users.n)
    new_group = np.ones(n_events, dtype=bool)
    new_group[1:] = (bucket[1:] != bucket[:-1]) | (owner[1:] != owner[:-1])
    rank = np.arange(n_events) - np.maximum.accumulate(np.where(new_group, np.arange(n_events), 0))
    key = bucket * (int(rank.max()) + 1) + rank
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    del key, rank, new_group

    hist = np.full(n_events, -1, dtype=np.int64)  # consumed items, at users.offsets
    count = np.zeros(n_users, dtype=np.int64)
    out = np.full(n_events, -1, dtype=np.int64)
    current = None
    for g0, g1 in zip(np.r_[0, cuts], np.r_[cuts, n_events], strict=True):
        b = int(bucket[order[g0]])
        if b != current:  # new bucket: a^gamma at its midpoint; released before its start
            current, t0 = b, b * width
            la = life(t0 + width / 2)
            la[rel >= t0] = -np.inf
            top = float(la.max()) if len(la) else 0.0
            top = top if np.isfinite(top) else 0.0
            weight = np.exp(la - top)  # relative to the bucket's best item: no underflow
            cum = np.cumsum(weight, dtype=np.float64)  # float64: 1M-item sums stay exact
            lo = np.where(seg_start > 0, cum[np.maximum(seg_start - 1, 0)], 0.0)
            hi = np.where(seg_end > 0, cum[np.maximum(seg_end - 1, 0)], 0.0)
            with np.errstate(divide="ignore"):
                z = np.where(seg_end > seg_start, hi - lo, 0.0)
                log_z = np.log(z) + top - math.log(m)  # log importance weight of an entry
            entry_base, entry_span = lo[entry_topic], (hi - lo)[entry_topic]
            if any_repeat:
                la_item[by_topic] = la
        for c0 in range(g0, g1, p["pool_events"]):
            ev = order[c0 : min(g1, c0 + p["pool_events"])]
            uid = owner[ev]
            rep = repeat[ev] & (count[uid] > 0)
            if rep.any():
                _choose_repeats(
                    ev[rep],
                    uid[rep],
                    hist,
                    users.offsets,
                    count,
                    pref,
                    q_all,
                    la_item,
                    scale,
                    rng,
                    out,
                )
                ev, uid = np.concatenate([ev[rep], ev[~rep]]), np.concatenate([uid[rep], uid[~rep]])
                n_rep = int(rep.sum())
            else:
                n_rep = 0
            ev_new, uid_new = ev[n_rep:], uid[n_rep:]
            if len(ev_new):
                # the chunk's pool: m entries per topic, each ∝ a^gamma inside its topic
                target = entry_base + rng.random(len(entry_topic)) * entry_span
                pos = np.clip(np.searchsorted(cum, target, side="right"), entry_lo, entry_hi)
                pool_items = by_topic[pos]
                # a zero-weight entry (topic without released item, rounding at a segment's
                # edge) is inadmissible: release causality must hold exactly
                entry_w = np.where(weight[pos] > 0, log_z[entry_topic], -np.inf)
                entry_w = entry_w.astype(np.float32)
                pool_q = np.ascontiguousarray(q_sorted_scaled[pos].T)
                logits = pref[uid_new] @ pool_q
                logits += entry_w
                col = _sample_rows(logits, 1.0 - rng.random(len(ev_new)))
                pick = np.where(col >= 0, pool_items[col], -1)  # -1: no admissible entry
                _reject_consumed(
                    pick,
                    uid_new,
                    pref,
                    pool_q,
                    entry_w,
                    pool_items,
                    hist,
                    users.offsets,
                    count,
                    rng,
                )
                out[ev_new] = pick  # rows still undecided stay -1 (dropped)
                keep = np.r_[np.ones(n_rep, dtype=bool), pick >= 0]
                ev, uid = ev[keep], uid[keep]
            _record(ev, uid, n_rep, out, hist, users.offsets, count, pref, q_all, eta)
    return out


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


# ---------------------------------------------------------------------------------------- text
def _distinct_draws(rng: np.random.Generator, sizes: np.ndarray, width: int) -> np.ndarray:
    """Per row, `width` indices into a list of `sizes[row]` words, distinct while width <= size.

    idx_j = (start + j·step) mod size with step coprime to size: a random walk through the list
    that repeats no word (titles read better without "tent tent").
    """
    n = len(sizes)
    start = (rng.random(n) * sizes).astype(np.int64)
    u = rng.random(n)
    step = np.ones(n, dtype=np.int64)
    for size in np.unique(sizes):  # a handful of list lengths
        coprime = np.flatnonzero(np.gcd(np.arange(size), size) == 1)  # [1] when size is 1
        rows = np.flatnonzero(sizes == size)
        step[rows] = coprime[(u[rows] * len(coprime)).astype(np.int64)]
    return (start[:, None] + np.arange(width) * step[:, None]) % sizes[:, None]


def _make_text(p: dict, w: World, items: _Items) -> tuple[list[str], list[str], list[str]]:
    rng = _rng(p["seed"], _TEXT)
    n, width = len(items.topic), 8
    lens = rng.integers(3, width + 1, size=n)  # 3..8 words
    n_words = np.array([len(x) for x in w.words])
    table = np.array([x + [""] * (n_words.max() - len(x)) for x in w.words], dtype=object)
    generic = np.array(w.generic, dtype=object)
    topical = rng.random((n, width)) < p["rho_topic"]
    t_idx = _distinct_draws(rng, n_words[items.topic], width)
    g_idx = _distinct_draws(rng, np.full(n, len(generic)), width)
    words = np.where(topical, table[items.topic[:, None], t_idx], generic[g_idx])
    titles = [" ".join(row[:k]) for row, k in zip(words.tolist(), lens.tolist(), strict=True)]
    titles = [t[:1].upper() + t[1:] for t in titles]
    n_brands = np.array([len(x) for x in w.brands])
    b_idx = (rng.random(n) * n_brands[items.topic]).astype(np.int64)
    brand_table = np.array([x + [""] * (n_brands.max() - len(x)) for x in w.brands], dtype=object)
    names = np.array(w.names, dtype=object)
    return titles, names[items.topic].tolist(), brand_table[items.topic, b_idx].tolist()


# ------------------------------------------------------------------------------------ generate
def generate(params: Any, name: str) -> RawData:
    """Generate one synthetic domain; `params` has the fields of `SyntheticSchema`.

    `name` only labels `info`; the data depend on (params, params.seed, GENERATOR_VERSION).
    """
    p = _params(params)
    w = world()
    items = _make_items(p, w)
    users = _make_users(p, w, items)
    exact = p["n_items"] <= p["exact_max_items"]
    with _single_thread_blas():
        chosen = (_choose_exact if exact else _choose_pooled)(p, items, users)

    id_base = int(p["seed"]) * 10**9
    owner = np.repeat(np.arange(len(users.n), dtype=np.int64), users.n)
    keep = chosen >= 0
    interactions = pd.DataFrame(
        {
            "user": id_base + 1 + owner[keep],
            "item": id_base + 1 + chosen[keep],
            "ts": START_TS + np.floor(users.times[keep] * DAY).astype(np.int64),
        }
    )
    item_ids = id_base + 1 + np.arange(p["n_items"], dtype=np.int64)
    titles, categories, brands = _make_text(p, w, items)
    items_frame = pd.DataFrame(
        {
            "item": item_ids.astype(str),
            "title": titles,
            "category": categories,
            "brand": brands,
        }
    )
    activity = np.bincount(owner[keep], minlength=len(users.n))
    release_ts = START_TS + np.floor(items.release * DAY).astype(np.int64)
    truth = {
        "generator_version": GENERATOR_VERSION,
        "world_seed": WORLD_SEED,
        "start": "2020-01-01T00:00:00Z",
        "sampling": "exact" if exact else "pooled",
        "params": p,
        "topics": {
            "ids": list(p["topics"]),
            "names": [w.names[t] for t in p["topics"]],
            "groups": [int(w.groups[t]) for t in p["topics"]],
            "mix": np.round(items.mix, 6).tolist(),
        },
        "items": {
            "item": item_ids.tolist(),
            "topic": items.topic.tolist(),
            "category": categories,
            "release_ts": release_ts.tolist(),
            "release_days": np.round(items.release, 4).tolist(),
            "lifetime_days": np.round(items.lifetime, 4).tolist(),
            "appeal": np.round(np.exp(items.log_appeal), 6).tolist(),
        },
        "users": {
            "user": (id_base + 1 + np.arange(len(users.n), dtype=np.int64)).tolist(),
            "topics": users.topics.tolist(),
            "activity": activity.tolist(),
            "gap_scale_days": np.round(users.gap_scale, 4).tolist(),
        },
    }
    info = {
        "reader": "synthetic",
        "name": name,
        "generator_version": GENERATOR_VERSION,
        "sampling": truth["sampling"],
        "events": int(keep.sum()),
        "dropped_events": int((~keep).sum()),
        "truth": truth,
    }
    return RawData(interactions=interactions, items=items_frame, info=info)
