"""PrepRec's popularity-dynamics features (models/preprec.md §2), vectorised with numpy.

Every event gets a coarse period index P and a fine period index F (dense ranks of the non-empty
periods since the domain's first timestamp). Two dense percentile tables describe every item in
every period:

    coarse [n_coarse + H, N + 1]   row r = perc^c(period r − H)   (rows 0..H−1: before the data)
    fine   [n_fine + 1,   N + 1]   row r = perc^f(period r − 1)   (row 0: before the data)

so the features of item i at an event with periods (P, F) are the gathers coarse[P : P + H, i]
(periods P − H … P − 1, oldest first) and fine[F, i] (period F − 1): only completed periods before
the event's own. Percentiles are stored, not their encodings: the encoding (`encode`, linear soft
one-hot or sinusoidal) is a fixed function applied at gather time, which keeps the tables 11× and
6× smaller. Column 0 (the padding item) and the rows before the data hold the sentinel −1, which
encodes to a zero vector; an inactive item has percentile 0.

Tables are cached in the store under `cache/features/<dataset>/popularity-<feat_hash>/`; domains
without a `FeatureEnv` (tests, notebooks) are computed in memory.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from recx.config.hashing import stable_hash
from recx.data.scenarios import TRAIN
from recx.errors import ConfigError

log = logging.getLogger(__name__)

FEATURE_VERSION = 1
DAY_S = 86400
PAD = -1.0  # percentile sentinel: padding item, or a period before the start of the data

# keys of the feature config that change the stored tables (the encoding is applied at gather time)
_TABLE_KEYS = ("coarse_days", "fine_days", "coarse_history", "coarse_decay", "coarse_truncate",
               "fine_window", "popularity_source", "skip_empty_periods", "year_reset_periods")


# periods=auto: the central events of a domain span at least this many coarse histories
AUTO_HISTORIES = 2
AUTO_SPAN_QUANTILES = (0.01, 0.99)  # the central 98 % of events: a few stray dates never decide


def auto_period_days(ts: np.ndarray, coarse_history: int, coarse_days: float,
                     fine_days: float) -> tuple[float, float]:
    """Period lengths scaled to a domain's time span (`features.periods=auto`).

    The coarse period is the configured one, shortened where the central 98 % of the domain's
    events span fewer than AUTO_HISTORIES × (coarse_history + 1) of them, so that a query in
    the second half of the timeline sees a full coarse history; the fine period keeps its ratio
    to the coarse one. Long domains keep the paper's 30/7 days; a one-year domain gets about
    13/3, MovieLens-100K (7 months) about 7/1.7 (the official code used 10/2 on such data)."""
    if len(ts) == 0:
        return float(coarse_days), float(fine_days)
    lo, hi = np.quantile(np.asarray(ts, dtype=np.float64), AUTO_SPAN_QUANTILES)
    span = float(hi - lo) / 86400.0
    wanted = AUTO_HISTORIES * (int(coarse_history) + 1)
    coarse = min(float(coarse_days), max(span / wanted, 1.0 / 24))  # at least an hour
    return coarse, coarse * float(fine_days) / float(coarse_days)


@dataclass(frozen=True)
class PopularityConfig:
    """The `features` block of conf/model/preprec.yaml (plus the year-reset compat switch)."""

    coarse_days: float = 30.0
    fine_days: float = 7.0
    coarse_history: int = 12
    coarse_decay: float = 0.5
    coarse_truncate: int = 32
    fine_window: int = 4
    coarse_anchors: int = 10
    fine_anchors: int = 5
    encoding: str = "linear"
    popularity_source: str = "all_causal"
    skip_empty_periods: bool = True
    year_reset_periods: bool = False
    periods: str = "fixed"

    @classmethod
    def from_dict(cls, block: dict | None, time_scale: dict | None = None,
                  ts: np.ndarray | None = None, **extra) -> PopularityConfig:
        """Build from the model's `features` block. The period lengths are a property of the
        domain, not of the weights: a domain's `time_scale` sets them where it has one; else
        `periods=auto` scales them to the domain's timestamps `ts` (`auto_period_days`)."""
        block = {**dict(block or {}), **extra}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ConfigError(f"unknown model.features key(s) {unknown}",
                              hint=f"valid keys: {', '.join(sorted(known))}")
        if block.get("periods", cls.periods) == "auto" and ts is not None:
            base = cls(**block)
            block["coarse_days"], block["fine_days"] = auto_period_days(
                ts, base.coarse_history, base.coarse_days, base.fine_days)
        for key in ("coarse_days", "fine_days"):
            value = (time_scale or {}).get(key)
            if value is not None:
                block[key] = float(value)
        cfg = cls(**block)
        cfg.check()
        return cfg

    def check(self) -> None:
        problems = []
        if self.coarse_days <= 0 or self.fine_days <= 0:
            problems.append(f"period lengths must be positive (coarse_days={self.coarse_days}, "
                            f"fine_days={self.fine_days})")
        for key in ("coarse_history", "coarse_truncate", "fine_window", "coarse_anchors",
                    "fine_anchors"):
            if int(getattr(self, key)) < 1:
                problems.append(f"features.{key}={getattr(self, key)} must be ≥ 1")
        if not 0 < self.coarse_decay <= 1:
            problems.append(f"features.coarse_decay={self.coarse_decay} must be in (0, 1]")
        if self.encoding not in ("linear", "sinusoidal"):
            problems.append(f"features.encoding={self.encoding!r} must be linear or sinusoidal")
        if self.periods not in ("fixed", "auto"):
            problems.append(f"features.periods={self.periods!r} must be fixed or auto")
        if self.popularity_source not in ("all_causal", "train_only"):
            problems.append(f"features.popularity_source={self.popularity_source!r} must be "
                            "all_causal or train_only")
        if problems:
            raise ConfigError("; ".join(problems), hint="fix the model.features.* overrides")

    @property
    def coarse_dim(self) -> int:
        return encoded_dim(self.coarse_anchors, self.encoding)

    @property
    def fine_dim(self) -> int:
        return encoded_dim(self.fine_anchors, self.encoding, fine=True)

    @property
    def input_dim(self) -> int:
        """Length of the item vector: H coarse blocks and one fine block (138 by default)."""
        return self.coarse_history * self.coarse_dim + self.fine_dim

    def table_key(self) -> dict:
        d = asdict(self)
        return {k: d[k] for k in _TABLE_KEYS}


@dataclass
class PopularityTables:
    coarse: np.ndarray  # float32 [n_coarse + H, N + 1]
    fine: np.ndarray  # float32 [n_fine + 1, N + 1]
    event_coarse: np.ndarray  # int32 [E] P of every event
    event_fine: np.ndarray  # int32 [E] F of every event
    coarse_periods: np.ndarray  # int64 raw ids of the indexed coarse periods (ts → P lookup)
    fine_periods: np.ndarray  # int64 raw ids of the indexed fine periods
    t0: int  # first timestamp of the domain (seconds)
    config: PopularityConfig
    feat_hash: str = ""

    @property
    def n_coarse(self) -> int:
        return len(self.coarse_periods)

    @property
    def n_fine(self) -> int:
        return len(self.fine_periods)

    def periods_at(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P, F) for arbitrary timestamps: for an event's own time these are its indices; for
        a time inside an empty period, the index after every completed non-empty period."""
        cfg = self.config
        raw_c = raw_periods(ts, cfg.coarse_days, self.t0, cfg.year_reset_periods)
        raw_f = raw_periods(ts, cfg.fine_days, self.t0, cfg.year_reset_periods)
        return (np.searchsorted(self.coarse_periods, raw_c, "left").astype(np.int64),
                np.searchsorted(self.fine_periods, raw_f, "left").astype(np.int64))


# ----------------------------------------------------------------------------------- periods
def raw_periods(ts: np.ndarray, days: float, t0: int, year_reset: bool = False) -> np.ndarray:
    """Raw period number of each timestamp: floor((ts − t0) / length), or the original code's
    calendar periods that restart every 1 January (`paper_compat.year_reset_periods`):
    ceil(day_of_year / days) within each UTC year."""
    ts = np.asarray(ts, dtype=np.int64)
    if not year_reset:
        length = days * DAY_S
        if float(length).is_integer():  # exact integer arithmetic (and faster)
            return (ts - t0) // int(length)
        return np.floor((ts - t0) / length).astype(np.int64)
    sec = ts.astype("datetime64[s]")
    year = sec.astype("datetime64[Y]")
    doy = (sec.astype("datetime64[D]") - year.astype("datetime64[D]")).astype(np.int64) + 1
    slots = math.ceil(366 / days) + 1  # period numbers of one year never reach the next year's
    y0 = np.datetime64(int(t0), "s").astype("datetime64[Y]").astype(np.int64)
    return (year.astype(np.int64) - y0) * slots + np.ceil(doy / days).astype(np.int64)


def dense_periods(raw: np.ndarray, skip_empty: bool) -> tuple[np.ndarray, np.ndarray]:
    """(index of each event, raw ids of the indexed periods): dense ranks of the non-empty
    periods (`skip_empty_periods`), or every period from the first one."""
    lo = int(raw.min()) if len(raw) else 0
    span = (int(raw.max()) - lo + 1) if len(raw) else 0
    if not skip_empty:
        return (raw - lo).astype(np.int32), np.arange(lo, lo + span, dtype=np.int64)
    shifted = raw - lo
    present = np.bincount(shifted, minlength=span) > 0
    if present.all():  # no empty period: the ranks are the shifted ids themselves
        return shifted.astype(np.int32), np.arange(lo, lo + span, dtype=np.int64)
    rank = np.cumsum(present) - 1
    return rank[shifted].astype(np.int32), np.flatnonzero(present).astype(np.int64) + lo


# ------------------------------------------------------------------------------- percentiles
def active_percentiles(values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Row-wise 100 · avgrank / n_active over the positive entries of `values` [T, M] (ranks are
    1-based with ties averaged); 0 where the value is 0. Returns float32 [T, M]."""
    values = np.asarray(values)
    if out is None:
        out = np.zeros(values.shape, dtype=np.float32)
    for t in range(values.shape[0]):
        _row_percentiles(values[t], out[t])
    return out


def _row_percentiles(row: np.ndarray, out: np.ndarray) -> None:
    out[...] = 0.0
    idx = np.flatnonzero(row > 0)
    if len(idx):
        out[idx] = _percentiles_1d(row[idx])


def _percentiles_1d(a: np.ndarray) -> np.ndarray:
    """100 · avgrank / n of every entry of a 1-D array (ranks 1-based, ties averaged)."""
    n = len(a)
    if np.issubdtype(a.dtype, np.integer) and int(a.max()) <= 4 * n + 1024:
        # small counts: a histogram gives #smaller and #equal without sorting
        hist = np.bincount(a, minlength=int(a.max()) + 1)
        below = np.cumsum(hist) - hist
        avg = below[a] + (hist[a] + 1) / 2.0
        return (100.0 * avg / n).astype(np.float32)
    order = np.argsort(a, kind="stable")
    s = a[order]
    start = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first index of each tie group
    size = np.diff(np.r_[start, n])
    avg = np.empty(n, dtype=np.float64)
    avg[order] = np.repeat(start + (size + 1) / 2.0, size)
    return (100.0 * avg / n).astype(np.float32)


def percentiles_among_all(counts: np.ndarray) -> np.ndarray:
    """Row-wise 100 · avgrank / M over ALL M entries of an integer matrix [B, M], zeros included
    (the adjusted test-time fine feature, §2.7). One global sort: rows are offset apart."""
    counts = np.asarray(counts, dtype=np.int64)
    b, m = counts.shape
    if m == 0:
        return np.zeros((b, 0), dtype=np.float32)
    width = int(counts.max()) + 1
    keys = counts + (np.arange(b, dtype=np.int64) * width)[:, None]
    flat = np.sort(keys, axis=None)
    base = (np.arange(b, dtype=np.int64) * m)[:, None]
    left = np.searchsorted(flat, keys, "left") - base
    right = np.searchsorted(flat, keys, "right") - base
    return (100.0 * (left + right + 1) / 2.0 / m).astype(np.float32)


# ------------------------------------------------------------------------------------ tables
def _counts(period: np.ndarray, item: np.ndarray, n_periods: int, n1: int) -> np.ndarray:
    key = period.astype(np.int64) * n1 + item
    return np.bincount(key, minlength=n_periods * n1).reshape(n_periods, n1)


def coarse_percentiles(n: np.ndarray, decay: float, truncate: int, out: np.ndarray) -> None:
    """out[p] = percentiles of c(p) = Σ_{0 ≤ p−q < truncate} decay^(p−q) n(q) over the items with
    an event in that window, for count rows n [T, M] (row by row: no [T, M] temporaries). The
    window count decides activity, so rounding in the decay never makes a stale item active."""
    tail = decay ** truncate
    c = np.zeros(n.shape[1], dtype=np.float64)
    window = np.zeros(n.shape[1], dtype=np.int64)
    for p in range(n.shape[0]):
        c *= decay
        c += n[p]
        window += n[p]
        if p >= truncate:
            c -= tail * n[p - truncate]
            window -= n[p - truncate]
        out[p] = 0.0
        idx = np.flatnonzero(window > 0)
        if len(idx):
            out[p, idx] = _percentiles_1d(c[idx])


def fine_percentiles(n: np.ndarray, width: int, out: np.ndarray) -> None:
    """out[f] = percentiles of m(f) = Σ_{f−width < g ≤ f} n(g) over the items with m > 0."""
    m = np.zeros(n.shape[1], dtype=np.int64)
    for f in range(n.shape[0]):
        m += n[f]
        if f >= width:
            m -= n[f - width]
        _row_percentiles(m, out[f])


def window_counts(n: np.ndarray, width: int) -> np.ndarray:
    """m(f) = Σ_{f−width < g ≤ f} n(g) for count rows n [T, M]."""
    cum = np.cumsum(n, axis=0, dtype=np.int64)
    out = cum.copy()
    out[width:] -= cum[:-width]
    return out


def build_popularity(domain, cfg: PopularityConfig) -> PopularityTables:
    """Compute the tables of `domain` in memory (vectorised; no cache)."""
    n1 = domain.n_items + 1
    ts = domain.ts
    t0 = int(ts.min()) if len(ts) else 0
    raw_c = raw_periods(ts, cfg.coarse_days, t0, cfg.year_reset_periods)
    raw_f = raw_periods(ts, cfg.fine_days, t0, cfg.year_reset_periods)
    ev_c, coarse_periods = dense_periods(raw_c, cfg.skip_empty_periods)
    ev_f, fine_periods = dense_periods(raw_f, cfg.skip_empty_periods)
    counted = slice(None) if cfg.popularity_source == "all_causal" else domain.split == TRAIN
    item = domain.item[counted]
    h = cfg.coarse_history

    coarse = np.full((len(coarse_periods) + h, n1), PAD, dtype=np.float32)
    n_c = _counts(ev_c[counted], item, len(coarse_periods), n1)
    coarse_percentiles(n_c[:, 1:], cfg.coarse_decay, cfg.coarse_truncate, coarse[h:, 1:])
    del n_c
    fine = np.full((len(fine_periods) + 1, n1), PAD, dtype=np.float32)
    n_f = _counts(ev_f[counted], item, len(fine_periods), n1)
    fine_percentiles(n_f[:, 1:], cfg.fine_window, fine[1:, 1:])
    return PopularityTables(coarse=coarse, fine=fine, event_coarse=ev_c, event_fine=ev_f,
                            coarse_periods=coarse_periods, fine_periods=fine_periods, t0=t0,
                            config=cfg)


def feat_hash(domain, cfg: PopularityConfig) -> str:
    """Hash of what the tables depend on: the data, the table-shaping feature keys (with the
    effective period lengths) and the feature code version."""
    return stable_hash(domain.data_hash, cfg.table_key(), FEATURE_VERSION)


_ARRAYS = ("coarse", "fine", "event_coarse", "event_fine", "coarse_periods", "fine_periods")


def popularity_tables(domain, cfg: PopularityConfig) -> PopularityTables:
    """The tables of `domain`: from the store when the domain has a `FeatureEnv`, else built in
    memory."""
    h = feat_hash(domain, cfg)
    env = getattr(domain, "env", None)
    if env is None or getattr(env, "cache_root", None) is None:
        tables = build_popularity(domain, cfg)
        tables.feat_hash = h
        return tables
    from recx.store import Store

    store = Store(env.cache_root)
    entry = store.entry("features", domain.name, f"popularity-{h}")

    def build(tmp: Path) -> None:
        t = build_popularity(domain, cfg)
        np.savez(tmp / "tables.npz", t0=np.int64(t.t0), **{k: getattr(t, k) for k in _ARRAYS})

    store.get_or_build(entry, build, meta={
        "kind": "features", "feature": "popularity", "dataset": domain.name,
        "data_hash": domain.data_hash, "feat_hash": h, "config": cfg.table_key(),
        "feature_version": FEATURE_VERSION})
    with np.load(entry / "tables.npz") as z:
        arrays = {k: z[k] for k in _ARRAYS}
        t0 = int(z["t0"])
    return PopularityTables(**arrays, t0=t0, config=cfg, feat_hash=h)


# ------------------------------------------------------------------------------ adjusted fine
class AdjustedFine:
    """The paper's test-time fine feature (§2.7): window counts ending at F − 1, plus each item's
    events of the query's own fine period strictly before the query time, ranked among ALL items
    (zero counts included). Used for validation and test queries alike when `eval_fine=adjusted`.
    """

    def __init__(self, domain, tables: PopularityTables):
        cfg = tables.config
        counted = np.ones(len(domain.item), bool) if cfg.popularity_source == "all_causal" \
            else domain.split == TRAIN
        n1 = domain.n_items + 1
        ev_f = tables.event_fine[counted]
        item = domain.item[counted]
        n_f = _counts(ev_f, item, tables.n_fine, n1)
        m = window_counts(n_f, cfg.fine_window)
        # row F = counts over fine periods F − W … F − 1 (row 0: nothing before the data)
        self.base = np.zeros((tables.n_fine + 1, n1), dtype=np.int32)
        self.base[1:] = m
        order = np.argsort(domain.ts[counted], kind="stable")
        self.ts_sorted = domain.ts[counted][order]
        self.items_sorted = item[order]
        self.period_start = np.searchsorted(ev_f[order], np.arange(tables.n_fine + 1), "left")

    def percentiles(self, fine_idx: np.ndarray, query_ts: np.ndarray) -> np.ndarray:
        """float32 [B, N + 1] percentiles among all items (column 0 = PAD)."""
        fine_idx = np.asarray(fine_idx, dtype=np.int64)
        counts = self.base[np.minimum(fine_idx, len(self.base) - 1)].astype(np.int64)
        lo = self.period_start[np.minimum(fine_idx, len(self.period_start) - 1)]
        hi = np.searchsorted(self.ts_sorted, np.asarray(query_ts, dtype=np.int64), "left")
        lens = np.maximum(hi - lo, 0)
        if lens.sum():
            rows = np.repeat(np.arange(len(fine_idx)), lens)
            offs = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
            items = self.items_sorted[np.repeat(lo, lens) + offs].astype(np.int64)
            n1 = counts.shape[1]
            counts += np.bincount(rows * n1 + items, minlength=counts.size).reshape(counts.shape)
        out = np.full(counts.shape, PAD, dtype=np.float32)
        out[:, 1:] = percentiles_among_all(counts[:, 1:])
        return out


# ---------------------------------------------------------------------------------- encoding
def encoded_dim(anchors: int, encoding: str, fine: bool = False) -> int:
    """Linear: K + 1 anchors. Sinusoidal (the original's ablation basis): a constant slot and
    sin/cos pairs at frequencies 1…k/100 — 11 dims for the coarse block (k = 5) and 7 for the
    fine block (k = 3), as in the original data script."""
    if encoding == "linear":
        return anchors + 1
    return 11 if not fine else 7


def encode(perc, anchors: int, encoding: str = "linear", fine: bool = False):
    """Encode percentiles (torch tensor [...]) → [..., dim]; the PAD sentinel (< 0) → zeros.

    linear: soft one-hot over K + 1 anchors 0, 100/K, …, 100 (v[j] = 1 − frac, v[j+1] = frac;
    percentile 0, an inactive item, → zeros). sinusoidal: [sin 0, cos f1·p, sin f1·p, …]."""
    import torch

    if encoding == "linear":
        pos = perc.unsqueeze(-1) * (anchors / 100.0)
        grid = torch.arange(anchors + 1, device=perc.device, dtype=perc.dtype)
        v = torch.clamp(1.0 - (pos - grid).abs(), min=0.0)
        return v * (perc > 0).unsqueeze(-1).to(v.dtype)
    dim = encoded_dim(anchors, encoding, fine)
    k = torch.arange(dim, device=perc.device, dtype=perc.dtype)
    freq = torch.div(k + 1, 2, rounding_mode="floor") / 100.0  # 0, .01, .01, .02, .02, …
    ang = perc.unsqueeze(-1) * freq
    v = torch.where(k % 2 == 0, torch.sin(ang), torch.cos(ang))
    return v * (perc >= 0).unsqueeze(-1).to(v.dtype)
