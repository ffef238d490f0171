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

Sampling (`recx.data.synthetic_choice`)
---------------------------------------
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
from recx.data.synthetic_choice import choose_exact, choose_pooled

GENERATOR_VERSION: int = 1
N_TOPICS = 32
LATENT_DIM = 16
WORLD_SEED = 20_240_613  # fixed: domains must share topics whatever their own seed
GROUP_SHARE = 0.3  # ω: share of a topic centroid that its group has in common
START_TS = 1_577_836_800  # 2020-01-01T00:00:00Z
DAY = 86_400
MIN_GAP_DAYS = 60 / DAY
VOCAB_PATH = Path(__file__).with_name("synthetic_vocab.json")

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
    from recx.errors import ConfigError

    out = _with_defaults(params)
    problems = _problems(out)
    if problems:
        raise ConfigError(
            "invalid synthetic parameters: " + "; ".join(problems),
            hint="fix the dataset.synthetic.* values named above",
        )
    return out


def _with_defaults(params: Any) -> dict[str, Any]:
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
    return out


_SIGMAS = ("sigma_item", "sigma_appeal", "lifetime_sigma", "activity_sigma", "gap_sigma",
           "gap_user_sigma", "pref_noise")


def _problems(p: dict[str, Any]) -> list[str]:
    """What is wrong with the parameters, one phrase each (nothing when they are valid)."""
    topics = p["topics"]
    medians = ("span_days", "lifetime_median_days", "gap_median_days", "activity_median")
    checks = [
        (p["seed"] >= 0, "seed must be >= 0"),
        (p["n_users"] >= 1 and p["n_items"] >= 1, "n_users and n_items must be >= 1"),
        (len(topics) >= 1 and len(set(topics)) == len(topics),
         "topics must be a non-empty list of distinct topic ids"),
        (all(0 <= t < N_TOPICS for t in topics), f"topics must lie in 0..{N_TOPICS - 1}"),
        (p["kappa"] > 1, "kappa must be > 1"),
        (1 <= p["min_len"] <= p["max_len"], "need 1 <= min_len <= max_len"),
        (all(p[k] > 0 for k in medians), "span, lifetime, gap and activity medians must be > 0"),
        (0 <= p["prerelease_fraction"] <= 1, "prerelease_fraction must lie in [0, 1]"),
        (0 <= p["repeat_prob"] < 1, "repeat_prob must lie in [0, 1)"),
        (0 <= p["drift"] <= 1, "drift must lie in [0, 1]"),
        (0 <= p["rho_topic"] <= 1, "rho_topic must lie in [0, 1]"),
        (0 <= p["two_topic_prob"] <= 1, "two_topic_prob must lie in [0, 1]"),
        (p["alpha_cat"] > 0, "alpha_cat must be > 0"),
        (p["gamma"] >= 0, "gamma must be >= 0"),
        (min(p[k] for k in _SIGMAS) >= 0, "sigmas and pref_noise must be >= 0"),
        (p["pool_size"] >= 1 and p["pool_events"] >= 1 and p["bucket_days"] > 0,
         "pool_size, pool_events and bucket_days must be positive"),
    ]
    return [msg for ok, msg in checks if not ok]


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
        choose = choose_exact if exact else choose_pooled
        chosen = choose(p, items, users, _rng(p["seed"], _CHOICE))

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
    truth = _truth(p, w, items, users, id_base, categories, activity,
                   "exact" if exact else "pooled")
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


def _truth(p: dict, w: World, items: _Items, users: _Users, id_base: int,
           categories: list[str], activity: np.ndarray, sampling: str) -> dict:
    """The ground truth of a generated domain (JSON-serialisable), for diagnostics only."""
    item_ids = id_base + 1 + np.arange(p["n_items"], dtype=np.int64)
    release_ts = START_TS + np.floor(items.release * DAY).astype(np.int64)
    return {
        "generator_version": GENERATOR_VERSION,
        "world_seed": WORLD_SEED,
        "start": "2020-01-01T00:00:00Z",
        "sampling": sampling,
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
