"""Raw data → canonical domain (ARCHITECTURE §6.4): dedup, rating threshold, iterative k-core,
id remapping (sorted raw ids → 1..U and 1..N; 0 is padding), stable per-user ordering, split.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recx.config.schema import text_fields_of
from recx.data import filters, repeats
from recx.data.canonical import RawData
from recx.data.memory import release_memory
from recx.data.scenarios import HELD, SCENARIOS, TEST, TRAIN, VALID
from recx.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)


@dataclass
class Processed:
    interactions: pd.DataFrame  # user, item (int32, 1-based), ts (int64), split (int8), [rating]
    items: pd.DataFrame  # item (int32 1..N), raw_id (str), text fields (str)
    stats: dict
    users: pd.DataFrame | None = None  # user (int32 1..U), raw_id (str): the original ids


def _codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Factorise raw ids in sorted order (numbers numerically, text lexicographically).

    Readers that stream deliver ids as Categoricals with sorted categories (see
    `recx.data.readers.ids.IdCodes`): their codes are used as they are, without hashing.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        codes = values.cat.codes.to_numpy()
        if cats.is_unique and cats.is_monotonic_increasing and not (codes < 0).any():
            return codes.astype(np.int32 if len(cats) < 2**31 else np.int64, copy=False), \
                pd.Index(cats)
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int32 if len(uniques) < 2**31 else np.int64), pd.Index(uniques)


def process(raw: RawData, ds, eval_cfg, *, source_desc: str = "",
            keep_input: bool = False) -> Processed:
    """Apply the dataset's filters and the evaluation scenario to reader output.

    Works on bare numpy arrays (int32 codes, int64 seconds), sorted once by (user, ts, file row)
    before any filter, so no `order` column is needed and the kept rows need no second sort.
    Unless `keep_input`, the reader's interaction frame is consumed (`raw.interactions` is left
    empty), so that its columns are freed one by one as the sorted output is built: this keeps
    the peak memory near the size of the output.
    """
    where = source_desc or ds.name
    ev, user_ids, item_ids = _take_events(raw, keep_input, where)
    f = ds.filters
    # Sort first, once: every filter below then sees each user's events as one contiguous
    # segment in (ts, file row) order, and the rows it keeps are already in output order.
    rows = _sort_by_user_time(ev, keep_rows=f.dedup == "first_row")
    # Filters only narrow a boolean mask; the kept rows are gathered once at the end.
    steps = {"read": filters.counts_arrays(ev.u, ev.i)}
    keep = filters.dedup_sorted_mask(ev.u, ev.i, rows, f.dedup)
    del rows  # the only filter that needs the file row
    keep = _narrow(ev, keep, f, steps)
    _require_events_left(steps, f, where)
    if keep is not None:
        ev.take(keep)
    del keep
    user, item, u_keep, i_keep = _dense_ids(ev, len(user_ids), len(item_ids))
    n_users, n_items = len(u_keep), len(i_keep)
    indptr = np.zeros(n_users + 2, dtype=np.int64)
    np.cumsum(filters.code_counts(user, minlength=n_users + 1), out=indptr[1:])
    split = _split(indptr, ev.ts, item, n_items, eval_cfg)
    cols = {"user": user, "item": item, "ts": ev.ts, "split": split}
    if ev.rating is not None:
        cols["rating"] = ev.rating
    inter = pd.DataFrame(cols, copy=False)  # no consolidation copy of 10M-row columns
    items = _item_frame(raw.items, item_ids[i_keep], ds)
    stats = _stats(inter, items, steps, indptr, ds, raw.info)
    _report_repeats_and_time(stats, user, item, n_items, split, indptr, steps, ds, where)
    users = pd.DataFrame({"user": np.arange(1, n_users + 1, dtype=np.int32),
                          "raw_id": user_ids[u_keep].astype(str)})
    return Processed(inter, items, stats, users)


@dataclass
class _Events:
    """The interaction columns while they are sorted and filtered: user and item codes, int64
    seconds and float32 ratings (or None)."""

    u: np.ndarray
    i: np.ndarray
    ts: np.ndarray
    rating: np.ndarray | None

    def take(self, idx: np.ndarray) -> None:
        """Keep rows `idx` (positions or a mask), one column at a time."""
        self.u = self.u[idx]
        self.i = self.i[idx]
        self.ts = self.ts[idx]
        if self.rating is not None:
            self.rating = self.rating[idx]


def _take_events(raw: RawData, keep_input: bool, where: str) -> tuple[_Events, pd.Index,
                                                                        pd.Index]:
    """The reader's columns as arrays (ids as sorted codes), and the raw ids of the codes."""
    frame = raw.interactions
    if len(frame) == 0:
        raise DataFormatError("no interactions were read", path=where,
                              hint="check dataset.path / dataset.raw_dir and the reader settings")
    u, user_ids = _codes(frame["user"])
    i, item_ids = _codes(frame["item"])
    ts = frame["ts"].to_numpy(np.int64)
    rating = frame["rating"].to_numpy(np.float32) if "rating" in frame.columns else None
    if not keep_input:
        raw.interactions = frame.iloc[:0].copy()  # a bare slice would keep the columns alive
    del frame  # the arrays above are now the only references to the reader's columns
    gc.collect()  # the reader's frame may sit in a reference cycle: free it now
    return _Events(u, i, ts, rating), user_ids, item_ids


def _sort_by_user_time(ev: _Events, keep_rows: bool) -> np.ndarray | None:
    """Sort the events by (user, ts, file row) in place; the file rows in that order when
    `keep_rows` (for dedup=first_row), else None."""
    rows = _user_time_order(ev.u, ev.ts)
    release_memory()  # the sort threads' freed temporaries would otherwise stay in their arenas
    ev.take(rows)
    return rows if keep_rows else None


def _narrow(ev: _Events, keep: np.ndarray | None, f, steps: dict) -> np.ndarray | None:
    """The rating threshold and the k-core over the dedup mask `keep` (None: every row);
    the counts after each filter go into `steps`."""
    steps["dedup"] = dict(steps["read"]) if keep is None else \
        filters.counts_arrays(ev.u, ev.i, keep)
    by_rating = filters.min_rating_mask(ev.rating, f.min_rating)
    if by_rating is not None:
        keep = by_rating if keep is None else keep & by_rating
        steps["min_rating"] = filters.counts_arrays(ev.u, ev.i, keep)
    else:
        steps["min_rating"] = dict(steps["dedup"])
    del by_rating
    before = keep
    keep = filters.k_core_mask(ev.u, ev.i, f.k_core.user, f.k_core.item, f.k_core.iterative,
                               keep)
    steps["k_core"] = dict(steps["min_rating"]) if keep is before else \
        filters.counts_arrays(ev.u, ev.i, keep)
    return keep


def _require_events_left(steps: dict, f, where: str) -> None:
    if steps["k_core"]["interactions"] == 0:
        raise DataFormatError(
            f"no interactions are left after the {f.k_core.user}/{f.k_core.item}-core filter "
            f"(read {steps['read']['users']} users, {steps['read']['items']} items, "
            f"{steps['read']['interactions']} interactions)",
            path=where,
            hint="lower the filter, e.g. dataset.filters.k_core.user=2 "
            "dataset.filters.k_core.item=2 (or k_core.user=0 to disable it)",
        )


def _dense_ids(ev: _Events, n_user_codes: int, n_item_codes: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Remap the kept codes to dense 1-based ids in sorted raw-id order (codes are already
    sorted), each code column released as soon as it is mapped: (user, item, kept user codes,
    kept item codes)."""
    u_keep = np.flatnonzero(filters.code_counts(ev.u, minlength=n_user_codes))
    i_keep = np.flatnonzero(filters.code_counts(ev.i, minlength=n_item_codes))
    u_new = np.zeros(n_user_codes, dtype=np.int32)
    u_new[u_keep] = np.arange(1, len(u_keep) + 1, dtype=np.int32)
    i_new = np.zeros(n_item_codes, dtype=np.int32)
    i_new[i_keep] = np.arange(1, len(i_keep) + 1, dtype=np.int32)
    user = u_new[ev.u]
    ev.u = None
    item = i_new[ev.i]
    ev.i = None
    return user, item, u_keep, i_keep


def _split(indptr: np.ndarray, ts: np.ndarray, item: np.ndarray, n_items: int,
           eval_cfg) -> np.ndarray:
    """The split code of every event under the evaluation scenario."""
    scenario = eval_cfg.scenario
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown eval.scenario={scenario!r}",
                          hint=f"use one of {sorted(SCENARIOS)}")
    split = SCENARIOS[scenario](indptr, ts, valid_quantile=eval_cfg.valid_quantile,
                                test_quantile=eval_cfg.test_quantile)
    if eval_cfg.cold_item_fraction > 0:
        split = _make_cold_items(split, item, n_items, eval_cfg.cold_item_fraction)
    return split


def _report_repeats_and_time(stats: dict, user, item, n_items: int, split, indptr, steps: dict,
                             ds, where: str) -> None:
    """Repeat facts and the candidate policy into `stats`, and the warnings they call for."""
    rep = repeats.summary(repeats.repeat_events(user, item, n_items), user, split, indptr)
    stats["repeats"] = rep
    stats["candidate_policy"] = repeats.policy(rep)
    _warn_dedup(ds, steps, rep, where)
    if stats["time_nonpositive"]:
        # kept (the PrepRec spec drops them): a 0 is usually a missing date, and the earliest
        # timestamp anchors PrepRec's periods
        log.warning("%s: %d interactions have a timestamp at or before 1970-01-01 (usually a "
                    "missing date); they are kept, and PrepRec's periods start at the earliest "
                    "one. Drop them from the file if they are not real dates.", ds.name,
                    stats["time_nonpositive"])


DEDUP_WARN_SHARE = 0.10  # dropping more than this share of the rows as repeats is worth a word


def _warn_dedup(ds, steps: dict, rep: dict, where: str) -> None:
    """Dedup is loud: repeat-heavy data (check-ins, listening, re-purchases) lose most of their
    rows to it, and the candidate policy changes with it."""
    read, kept = steps["read"]["interactions"], steps["dedup"]["interactions"]
    dropped = read - kept
    if read and dropped / read > DEDUP_WARN_SHARE:
        log.warning("%s: filters.dedup=%s dropped %d of %d rows (%.1f %%) as repeated (user, item) "
                    "pairs. If repeats are the behaviour to predict (check-ins, listening, "
                    "re-purchases), keep them with dataset.filters.dedup=all (then no model's "
                    "candidates exclude the history).", where, ds.filters.dedup, dropped, read,
                    100 * dropped / read)
    if rep["events"]:
        log.info("%s keeps repeats (%.1f %% of events, %.1f %% of test targets): candidates "
                 "include the history for every model (mask=off)", where, 100 * rep["share"],
                 100 * rep["test_target_share"])


SORT_THREADS = 2  # argsort releases the GIL: parts of the users are sorted in parallel ...
SORT_PART_ROWS = 1 << 20  # ... each of about this many rows (temporaries: 28 bytes a row)


def _user_time_order(u: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Row positions stable-sorted by (user code, ts): equal pairs keep file order.

    A stable argsort of a packed int64 key (about twice as fast as lexsort), run on disjoint
    ranges of users in parallel threads; since the output is grouped by user, the sorted parts
    simply follow each other. Parts of about SORT_PART_ROWS rows keep the temporaries small.
    """
    n = len(ts)
    index = np.int32 if n < 2**31 else np.int64  # half the memory while columns are gathered
    if n == 0:
        return np.zeros(0, dtype=index)
    t0 = int(ts.min())
    span = int(ts.max()) - t0 + 1
    n_users = int(u.max()) + 1
    if (n_users + 1) * span >= 2**62:
        return np.lexsort((ts, u)).astype(index)
    parts = -(-n // SORT_PART_ROWS)
    if parts == 1:
        key = u.astype(np.int64)  # u * span + (ts - t0), built in place
        key *= span
        key += ts
        key -= t0
        return np.argsort(key, kind="stable").astype(index)
    cum = np.concatenate([[0], np.cumsum(filters.code_counts(u, minlength=n_users))])
    edges = np.array([0, *np.searchsorted(cum, [n * p // parts for p in range(1, parts)]),
                      n_users])
    bounds = cum[edges]  # part p owns out[bounds[p]:bounds[p + 1]]
    out = np.empty(n, dtype=index)
    # One stable bucket pass in slices of the file puts each part's rows, in file order, into
    # its own range of `out` (O(n), no per-part scan of the whole file) ...
    part_of_user = np.repeat(np.arange(parts, dtype=np.int16), np.diff(edges))
    fill = bounds[:-1].copy()
    for k in range(0, n, SORT_PART_ROWS):
        pid = part_of_user[u[k:k + SORT_PART_ROWS]]
        by_part = np.argsort(pid, kind="stable").astype(index)  # a radix sort for int16
        by_part += k
        counts = np.bincount(pid, minlength=parts)
        at = 0
        for p in np.flatnonzero(counts):
            out[fill[p]:fill[p] + counts[p]] = by_part[at:at + counts[p]]
            fill[p] += counts[p]
            at += counts[p]

    # ... then the parts are sorted in place, side by side.
    def sort_part(p: int) -> None:
        rows = out[bounds[p]:bounds[p + 1]].copy()
        key = u[rows].astype(np.int64)
        key *= span
        key += ts[rows]
        key -= t0
        order = np.argsort(key, kind="stable")
        del key
        np.take(rows, order, out=out[bounds[p]:bounds[p + 1]])

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(SORT_THREADS) as pool:
        list(pool.map(sort_part, range(parts)))
    return out


def _make_cold_items(split, item, n_items, fraction):
    """EVALUATION §1.3: remove every training event of a seeded fraction of items."""
    rng = np.random.default_rng(12345)
    cold = np.zeros(n_items + 1, dtype=bool)
    n_cold = round(fraction * n_items)
    cold[rng.choice(np.arange(1, n_items + 1), n_cold, replace=False)] = True
    split = split.copy()
    split[(split == TRAIN) & cold[item]] = HELD
    return split


def _item_frame(items: pd.DataFrame | None, raw_ids: pd.Index, ds) -> pd.DataFrame:
    out = pd.DataFrame({
        "item": np.arange(1, len(raw_ids) + 1, dtype=np.int32),
        "raw_id": raw_ids.astype(str),
    })
    fields = text_fields_of(ds)
    if items is not None and len(items):
        meta = items.copy()
        meta["item"] = meta["item"].astype(str)
        meta = meta.drop_duplicates("item", keep="first").set_index("item")
        for col in meta.columns:
            if col in fields or not fields:
                out[col] = meta[col].reindex(out["raw_id"].to_numpy()).to_numpy()
    for col in fields:
        if col not in out.columns:
            out[col] = None
        out[col] = out[col].map(_to_text).astype(object)
    return out


def _to_text(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, list | tuple | np.ndarray):
        return " ".join(_to_text(x) for x in v if _to_text(x))
    return str(v)


def _resolution(ts: np.ndarray) -> str:
    sample = ts[: 200_000]
    for name, sec in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if len(sample) and np.all(sample % sec == 0):
            return name
    return "second"


def _stats(inter, items, steps, indptr, ds, info) -> dict:
    ts = inter["ts"].to_numpy()
    lengths = np.diff(indptr)[1:]
    n_users, n_items, n = len(lengths), len(items), len(inter)
    split = inter["split"].to_numpy()
    fields = text_fields_of(ds)
    if fields:
        has_text = np.zeros(n_items, dtype=bool)
        for col in fields:
            has_text |= items[col].astype(str).str.strip().str.len().to_numpy() > 0
        text_share = float(has_text.mean()) if n_items else 0.0
        n_without_text = int((~has_text).sum())
    else:
        text_share, n_without_text = 0.0, n_items
    pct = np.percentile(lengths, [5, 25, 50, 75, 95]).tolist() if n_users else []
    import datetime as dt

    def iso(t):
        return dt.datetime.fromtimestamp(int(t), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")

    return {
        "dataset": ds.name,
        "users": n_users,
        "items": n_items,
        "interactions": n,
        "density": n / max(1, n_users * n_items),
        "time_first": iso(ts.min()),
        "time_last": iso(ts.max()),
        "time_span_days": round(float(ts.max() - ts.min()) / 86400, 2),
        "time_resolution": _resolution(ts),
        "time_nonpositive": int((ts <= 0).sum()),
        "seq_len": {"min": int(lengths.min()), "p5": pct[0], "p25": pct[1], "p50": pct[2],
                    "p75": pct[3], "p95": pct[4], "max": int(lengths.max()),
                    "mean": float(lengths.mean())},
        "split": {"train": int((split == TRAIN).sum()), "valid": int((split == VALID).sum()),
                  "test": int((split == TEST).sum()), "held": int((split == HELD).sum())},
        "text_fields": fields,
        "items_with_text": round(text_share, 4),
        "items_without_text": n_without_text,
        "filters": steps,
        "reader": {k: v for k, v in (info or {}).items() if k != "truth"},
    }
