"""Activity diagnostics: how users and items behave in the training data.

Profile of one domain (training events only): the distribution of user activity (training
events per user, users with at least one) and of item popularity (training events per item over
the whole catalogue, zeros included), as value → count tables, plus the counts behind density
and repeats. Several sources pool into one mixture: their tables add up (each user and item
counts once), as do the counts.

Pair diagnostics (`activity.*` and `size.*` keys of diagnostics.json):

- `activity.user_log_activity_w1`, `activity.item_log_popularity_w1`: the Wasserstein-1
  (earth mover's) distance between the log10 distributions of sources and target, in decades:
  1.0 = every user (item) would have to become ten times more (or less) active to match;
- `activity.item_gini.*`: Gini coefficient of the items' training counts (0 = every item equally
  popular, → 1 = all events on one item);
- `activity.log10_density.*`: log10 of distinct training (user, item) pairs / (users × items);
- `activity.repeat_share.*`: share of training events that repeat an earlier (user, item) pair;
- `size.log10_train_events.*`: log10 of the number of training events (for "the largest source").

`<name>.source`, `<name>.target` and `<name>.dist` = |target − source| (see `cache.triple`).
"""

from __future__ import annotations

import numpy as np

from recx.diagnostics.cache import Profile, cached_profile, triple


def activity_profile(domain) -> Profile:
    return cached_profile(domain, "activity", {}, lambda: build_activity_profile(domain))


def build_activity_profile(domain) -> Profile:
    train = domain.train_mask
    user, item = domain.user[train], domain.item[train]
    per_user = np.bincount(user, minlength=domain.n_users + 1)[1:]
    per_item = np.bincount(item, minlength=domain.n_items + 1)[1:]
    uv, uc = np.unique(per_user[per_user > 0], return_counts=True)
    iv, ic = np.unique(per_item, return_counts=True)
    pairs = len(np.unique(user.astype(np.int64) * (domain.n_items + 1) + item))
    return {"user_values": uv, "user_counts": uc, "item_values": iv, "item_counts": ic,
            "train_events": np.int64(len(user)), "train_pairs": np.int64(pairs),
            "cells": np.float64(domain.n_users) * domain.n_items,
            "repeat_events": np.int64(domain.repeat_event[train].sum())}


def pool(profiles: list[Profile]) -> Profile:
    """The mixture of several domains: value tables and counts add up."""
    if len(profiles) == 1:
        return profiles[0]
    out: Profile = {}
    for side in ("user", "item"):
        values = np.concatenate([p[f"{side}_values"] for p in profiles])
        counts = np.concatenate([p[f"{side}_counts"] for p in profiles])
        uniq, inv = np.unique(values, return_inverse=True)
        out[f"{side}_values"] = uniq
        out[f"{side}_counts"] = np.bincount(inv, weights=counts).astype(np.int64)
    for key in ("train_events", "train_pairs", "cells", "repeat_events"):
        out[key] = np.sum([p[key] for p in profiles])
    return out


def gini(values: np.ndarray, counts: np.ndarray) -> float:
    """Gini coefficient of a population where `counts[k]` members hold `values[k]` each
    (1 − the Lorenz curve's trapezoid area × 2; exact with ties, as every tie group is one
    straight segment of the curve)."""
    order = np.argsort(values)
    v = np.asarray(values, dtype=np.float64)[order]
    c = np.asarray(counts, dtype=np.float64)[order]
    total = (v * c).sum()
    if total <= 0:
        return 0.0
    lorenz = np.concatenate([[0.0], np.cumsum(v * c) / total])
    share = c / c.sum()
    return float(1.0 - (share * (lorenz[:-1] + lorenz[1:])).sum())


def log_w1(a_values, a_counts, b_values, b_counts) -> float:
    """Wasserstein-1 distance between two log10 value distributions (values > 0 only)."""
    from scipy.stats import wasserstein_distance

    a = np.asarray(a_values) > 0
    b = np.asarray(b_values) > 0
    if not a.any() or not b.any():
        return float("nan")
    return float(wasserstein_distance(np.log10(a_values[a]), np.log10(b_values[b]),
                                      a_counts[a], b_counts[b]))


def summary(p: Profile) -> dict[str, float]:
    events = float(p["train_events"])
    return {"item_gini": gini(p["item_values"], p["item_counts"]),
            "log10_density": float(np.log10(max(float(p["train_pairs"]), 1.0) / p["cells"])),
            "repeat_share": float(p["repeat_events"]) / events if events else 0.0,
            "log10_train_events": float(np.log10(max(events, 1.0)))}


def activity_diagnostics(sources: list[Profile], target: Profile) -> dict[str, float]:
    src = pool(sources)
    out = {"activity.user_log_activity_w1": log_w1(src["user_values"], src["user_counts"],
                                                   target["user_values"], target["user_counts"]),
           "activity.item_log_popularity_w1": log_w1(src["item_values"], src["item_counts"],
                                                     target["item_values"],
                                                     target["item_counts"])}
    s, t = summary(src), summary(target)
    for name in ("item_gini", "log10_density", "repeat_share"):
        out.update(triple(f"activity.{name}", s[name], t[name]))
    out.update(triple("size.log10_train_events", s["log10_train_events"],
                      t["log10_train_events"]))
    return out
