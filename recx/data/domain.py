"""`DomainData`: one processed domain in memory, and how it is built through the cache.

Events are stored once, sorted by (user, ts, order), with `indptr` giving each user's slice
(users are 1..U, items 1..N, 0 is padding). Sequences are never materialised as prefixes: samplers
and the evaluator gather windows from the flat arrays.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recx.config.hashing import drop_keys, stable_hash
from recx.config.schema import text_fields_of
from recx.data.filters import code_counts
from recx.data.repeats import repeat_events, summary
from recx.data.scenarios import SPLIT_CODES, TRAIN
from recx.store import SUCCESS, Store, atomic_write_json, is_ready

if TYPE_CHECKING:
    from recx.data.process import Processed

log = logging.getLogger(__name__)

CACHE_VERSION = 1
# what reading a damaged cache file raises (truncated parquet or JSON, a file gone)
UNREADABLE = (OSError, ValueError, KeyError, TypeError, EOFError)
_HASH_EXCLUDE = ("name", "download", "raw_dir", "origin", "pretrain_only", "verify")
_SPLIT_KEYS = ("scenario", "valid_quantile", "test_quantile", "cold_item_fraction")


@dataclass
class Queries:
    """Evaluation queries of one split: the target event and the history before it."""

    users: np.ndarray  # int32 [Q]
    pos: np.ndarray  # int64 [Q] index of the target event in the flat arrays
    targets: np.ndarray  # int32 [Q]
    query_ts: np.ndarray  # int64 [Q]


@dataclass
class DomainData:
    name: str
    data_hash: str
    n_users: int
    n_items: int
    user: np.ndarray  # int32 [E]
    item: np.ndarray  # int32 [E]
    ts: np.ndarray  # int64 [E]
    split: np.ndarray  # int8 [E]
    indptr: np.ndarray  # int64 [U + 2]; user u owns events indptr[u]:indptr[u+1]
    text_fields: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    path: Path | None = None
    time_scale: dict = field(default_factory=dict)
    parts: list = field(default_factory=list)  # merged domains: (name, item offset, n_items)
    env: object = None  # FeatureEnv: where and how derived features are built and cached
    _items: pd.DataFrame | None = None
    _users: pd.DataFrame | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(cls, name: str, data_hash: str, inter: pd.DataFrame, n_users: int,
                    n_items: int, **kw) -> DomainData:
        user = inter["user"].to_numpy(np.int32)
        indptr = np.zeros(n_users + 2, dtype=np.int64)
        np.cumsum(code_counts(user, minlength=n_users + 1), out=indptr[1:])
        return cls(name=name, data_hash=data_hash, n_users=n_users, n_items=n_items, user=user,
                   item=inter["item"].to_numpy(np.int32), ts=inter["ts"].to_numpy(np.int64),
                   split=inter["split"].to_numpy(np.int8), indptr=indptr, **kw)

    @classmethod
    def load(cls, entry: Path, name: str) -> DomainData:
        """Read a cache entry; a damaged file raises (see `UNREADABLE`)."""
        import pyarrow.parquet as pq

        entry = Path(entry)
        inter = pd.read_parquet(entry / "interactions.parquet",
                                columns=["user", "item", "ts", "split"])
        stats = json.loads((entry / "stats.json").read_text())
        meta = json.loads((entry / "domain.json").read_text())
        pq.read_metadata(entry / "items.parquet")  # read lazily: check its footer now
        return cls.from_frames(name, meta["data_hash"], inter, meta["n_users"], meta["n_items"],
                               text_fields=meta["text_fields"], stats=stats, path=entry,
                               time_scale=meta.get("time_scale") or {})

    # ------------------------------------------------------------------ derived views
    @property
    def n_events(self) -> int:
        return len(self.item)

    @property
    def items(self) -> pd.DataFrame:
        """Item catalogue: item id, raw id and text fields (loaded on first use)."""
        if self._items is None:
            if self.path is None:
                raise RuntimeError("domain has no item table")
            self._items = pd.read_parquet(self.path / "items.parquet")
        return self._items

    @property
    def users(self) -> pd.DataFrame:
        """User id → raw_id, the id in the input data (loaded on first use)."""
        if self._users is None:
            path = None if self.path is None else self.path / "users.parquet"
            if path is None or not path.exists():
                from recx.errors import DataMissingError

                raise DataMissingError(
                    f"{self.name}: the cached data at {self.path} hold no table of the original "
                    "user ids (it was built by an earlier recx version)",
                    hint=f"delete {self.path} and rerun: it is rebuilt under the same hash, so "
                    "every checkpoint stays valid")
            self._users = pd.read_parquet(path)
        return self._users

    @cached_property
    def n_train(self) -> np.ndarray:
        """Training events per user (they form a prefix of the user's sequence)."""
        counts = np.bincount(self.user[self.split == TRAIN], minlength=self.n_users + 1)
        return counts.astype(np.int64)

    @cached_property
    def train_mask(self) -> np.ndarray:
        return self.split == TRAIN

    @cached_property
    def train_item_counts(self) -> np.ndarray:
        """Training events per item, [N + 1] (column 0 = padding = 0)."""
        return np.bincount(self.item[self.train_mask], minlength=self.n_items + 1)

    @cached_property
    def repeat_event(self) -> np.ndarray:
        """[E] bool: the event repeats a (user, item) pair seen earlier in the user's sequence."""
        return repeat_events(self.user, self.item, self.n_items)

    @cached_property
    def repeats(self) -> dict:
        """Repeat events and the share of each split's targets that repeat a history item."""
        return summary(self.repeat_event, self.user, self.split, self.indptr)

    @property
    def repeat_free(self) -> bool:
        """No (user, item) pair occurs twice: a target is never a history item."""
        return self.repeats["events"] == 0

    def queries(self, split: str) -> Queries:
        """Targets of `split` that have at least one history event."""
        code = SPLIT_CODES[split]
        pos = np.flatnonzero(self.split == code)
        users = self.user[pos]
        pos = pos[pos > self.indptr[users]]
        users = self.user[pos]
        return Queries(users=users, pos=pos.astype(np.int64), targets=self.item[pos],
                       query_ts=self.ts[pos])

    def history_windows(self, pos: np.ndarray, max_len: int,
                        users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Left-padded windows of the last `max_len` events before each position (of `users`,
        by default the users of the events at `pos`; a position may be one past a user's last
        event, to take the whole sequence).

        Returns (items [Q, L] int64 with 0 padding, event indices [Q, L] with -1 padding).
        """
        users = self.user[pos] if users is None else users
        start = np.maximum(self.indptr[users], pos - max_len)
        idx = pos[:, None] - max_len + np.arange(max_len)[None, :]
        valid = idx >= start[:, None]
        idx = np.where(valid, idx, -1)
        items = np.where(valid, self.item[np.maximum(idx, 0)], 0).astype(np.int64)
        return items, idx

    def user_items(self, users: np.ndarray, upto_pos: np.ndarray | None = None) -> tuple:
        """(row, item) pairs of each user's events (before `upto_pos` when given): CSR form."""
        starts = self.indptr[users]
        ends = self.indptr[users + 1] if upto_pos is None else upto_pos
        lens = ends - starts
        rows = np.repeat(np.arange(len(users)), lens)
        offs = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
        return rows, self.item[np.repeat(starts, lens) + offs]

    def train_users(self, fraction: float = 1.0, seed: int = 0) -> np.ndarray:
        """Users with at least two training events, optionally a seeded fraction of them
        (EVALUATION §1.3: the same users for every model with the same seed)."""
        users = np.flatnonzero(self.n_train >= 2).astype(np.int64)
        if fraction >= 1.0:
            return users
        rng = np.random.default_rng([seed, int(self.data_hash[:8], 16)])
        k = max(1, round(fraction * len(users)))
        return np.sort(rng.choice(users, size=k, replace=False))


# ---------------------------------------------------------------------------------- building
def load_domain(ds, eval_cfg, paths, *, offline: bool = False, progress=None) -> DomainData:
    """Return the processed domain for dataset config `ds`, building the cache entry on a miss.

    Top-down: find the raw files, identify their content (the data hash), load the cache entry
    or read, process and cache the raw data.
    """
    from recx.data.rawfiles import identity_unknown, raw_identity, resolve_raw_files

    files = resolve_raw_files(ds, paths, offline=offline)
    built = None
    if identity_unknown(ds, files):
        # A file never hashed before is new or changed, so the cache almost surely misses:
        # hash it on a second thread while it is read and processed (a hit discards the work).
        built, ident = _build_while_hashing(ds, files, eval_cfg)
    else:
        ident = raw_identity(ds, files)
    h = data_hash(ds, eval_cfg, ident)
    entry = Store(paths.cache).entry("data", ds.name, h)
    cached = _load_entry(entry, ds.name)
    if cached is not None:
        return cached

    def build(tmp: Path) -> None:
        nonlocal built
        if built is None:
            built = _build(ds, files, eval_cfg)
        log.info("caching %s → %s", ds.name, entry)
        _write_entry(tmp, *built, _domain_meta(h, built[0].stats, ds))

    from omegaconf import OmegaConf

    Store(paths.cache).get_or_build(entry, build, meta={
        "kind": "data", "dataset": ds.name, "data_hash": h,
        "config": OmegaConf.to_container(ds, resolve=True),
    })
    if built is None:  # another job built it while this one waited
        return DomainData.load(entry, ds.name)
    # just built: use the frames in memory rather than read the parquet back (a second copy)
    return _from_processed(built[0], ds.name, h, entry, _domain_meta(h, built[0].stats, ds))


def data_hash(ds, eval_cfg, raw_identity: dict) -> str:
    """The identity of a processed domain: its config (less the keys that only say where the
    files come from), the split settings, the raw files' content and the code versions."""
    from omegaconf import OmegaConf

    tree = drop_keys(OmegaConf.to_container(ds, resolve=True), _HASH_EXCLUDE)
    tree["text_fields"] = text_fields_of(ds)  # derived fields build a different item table
    split = {k: eval_cfg[k] for k in _SPLIT_KEYS}
    extra = {}
    if ds.reader == "synthetic":
        from recx.data.synthetic import GENERATOR_VERSION

        extra["generator_version"] = GENERATOR_VERSION
    return stable_hash(tree, split, raw_identity, CACHE_VERSION, extra)


def _load_entry(entry: Path, name: str) -> DomainData | None:
    """The cached domain, or None when the entry is missing or damaged (then it is rebuilt)."""
    if not is_ready(entry):
        return None
    try:
        return DomainData.load(entry, name)
    except UNREADABLE as e:  # e.g. a truncated copy: rebuild it
        log.warning("damaged cache entry %s (%s): rebuilding it", entry,
                    f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        (entry / SUCCESS).unlink(missing_ok=True)
        return None


def _write_entry(tmp: Path, out: Processed, truth: dict | None, meta: dict) -> None:
    # plain encoding: a dictionary attempt on 10M-row id columns costs ~40 % more
    # time and ~60 MiB more peak memory for a ~20 % smaller file
    out.interactions.to_parquet(tmp / "interactions.parquet", index=False,
                                use_dictionary=False)
    out.items.to_parquet(tmp / "items.parquet", index=False)
    out.users.to_parquet(tmp / "users.parquet", index=False)
    atomic_write_json(tmp / "stats.json", out.stats)
    atomic_write_json(tmp / "domain.json", meta)
    if truth is not None:
        atomic_write_json(tmp / "truth.json", truth)


def _from_processed(out: Processed, name: str, h: str, path: Path | None,
                    meta: dict) -> DomainData:
    d = DomainData.from_frames(name, h, out.interactions, meta["n_users"], meta["n_items"],
                               text_fields=meta["text_fields"], stats=out.stats, path=path,
                               time_scale=meta["time_scale"])
    d._items, d._users = out.items, out.users
    return d


def _build(ds, files, eval_cfg) -> tuple[Processed, dict | None]:
    """Read and process the raw files: (processed domain, generator truth or None)."""
    from recx.data.formats import get_reader
    from recx.data.process import process

    log.info("preprocessing %s", ds.name)
    raw = get_reader(ds.reader)(ds, files)
    return process(raw, ds, eval_cfg), raw.info.get("truth")


def _build_while_hashing(ds, files, eval_cfg):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from recx.data.rawfiles import raw_identity

    abort = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="recx-sha256") as pool:
        ident = pool.submit(raw_identity, ds, files, abort)
        try:
            built = _build(ds, files, eval_cfg)
        except BaseException:
            abort.set()  # a bad file fails at once, not after its hash
            raise
        return built, ident.result()


def _domain_meta(data_hash: str, stats: dict, ds) -> dict:
    return {"data_hash": data_hash, "n_users": stats["users"], "n_items": stats["items"],
            "text_fields": text_fields_of(ds),
            "time_scale": {k: v for k, v in dict(ds.time_scale).items() if v is not None}}


def domain_from_frame(frame: pd.DataFrame, name: str = "memory", *, k_core: int = 0,
                      dedup: str = "earliest", scenario: str = "leave_one_out",
                      items: pd.DataFrame | None = None, text_fields=()) -> DomainData:
    """An in-memory domain from a raw (user, item, ts) frame, without the cache: for tests,
    notebooks and benchmarks. Applies the same processing as `recx preprocess`."""
    from omegaconf import OmegaConf

    from recx.config.schema import DatasetSchema, EvalSchema
    from recx.data.canonical import RawData
    from recx.data.process import process

    ds = OmegaConf.merge(OmegaConf.structured(DatasetSchema), {
        "name": name, "text_fields": list(text_fields),
        "filters": {"dedup": dedup, "k_core": {"user": k_core, "item": k_core}}})
    ev = OmegaConf.merge(OmegaConf.structured(EvalSchema), {"scenario": scenario})
    out = process(RawData(frame, items), ds, ev)
    h = stable_hash(pd.util.hash_pandas_object(frame, index=False).sum().item(), name, k_core,
                    dedup, scenario)
    meta = {"n_users": out.stats["users"], "n_items": out.stats["items"],
            "text_fields": list(text_fields), "time_scale": {}}
    return _from_processed(out, name, h, None, meta)
