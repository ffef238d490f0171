"""The streaming sink: interaction chunks in, canonical `RawData` out (ARCHITECTURE §6.2).

Readers feed it chunks (pyarrow batches or pandas frames) with the file line of their first row;
ids are encoded at once (`recx.data.readers.ids`), timestamps become int64 seconds and ratings
float32, so the memory that survives a chunk is a few bytes per interaction, never a Python
object per row. Errors name the file, the line and the column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa

from recx.data.canonical import RawData, check_time_range, parse_timestamps
from recx.data.memory import release_memory
from recx.data.readers.ids import Column, IdCodes
from recx.errors import DataFormatError

PY_CHUNK_ROWS = 200_000  # rows per chunk on the pure-Python paths


def to_seconds(values: pd.Series, unit: str, *, path, column: str, line0: int) -> np.ndarray:
    """int64 seconds from numbers (unit s|ms|us|ns|days), datetimes, or text (iso/strptime)."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if values.isna().any():
            i = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataFormatError("missing timestamp", path=path, line=line0 + i, column=column,
                                  hint="fix or drop the row")
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return (values.dt.as_unit("ns").astype(np.int64) // 10**9).to_numpy(np.int64)
    return parse_timestamps(values, unit, path=path, column=column, line_offset=line0)


class Sink:
    """Collects interaction chunks into canonical columns (see the module docstring).

    Each chunk is a DataFrame with the raw columns named by `user`, `item`, `ts` and,
    optionally, `rating` and the `text` columns (item text carried by the interaction rows,
    first value per item kept). `transform(df)` may rewrite a chunk first (drop rows, derive
    columns); rows it drops still count for line numbers through `line0`.
    """

    def __init__(self, path, *, user: str, item: str, ts: str, unit: str,
                 rating: str | None = None, text: list[str] | None = None,
                 transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
                 roles: dict[str, str] | None = None, ts_offset: str | None = None,
                 ts_offset_scale: float = 1.0):
        self.path, self.user, self.item, self.ts, self.unit = path, user, item, ts, unit
        self.ts_offset, self.ts_offset_scale = ts_offset, ts_offset_scale
        self.rating, self.text_cols, self.transform = rating, list(text or []), transform
        self.roles = roles or {}
        self._pool: ThreadPoolExecutor | None = None
        self.reset()

    def _item_pool(self) -> ThreadPoolExecutor:
        """The thread that encodes item ids; one per Sink (a module-level pool would not
        survive a fork: its worker thread does not exist in the child)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="recx-item-ids")
        return self._pool

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def reset(self) -> None:
        self._close_pool()
        self.users, self.items = IdCodes(), IdCodes()
        self.users.exact_lines = self.items.exact_lines = self.transform is None
        self.ts_col = Column(np.int64)
        self.rating_col = Column(np.float32)
        self.text_parts: list[pd.DataFrame] = []
        self.rows_seen = 0
        self.dropped = 0

    def reserve(self, rows: int) -> None:
        """Allocate the columns for about `rows` interactions (an estimate; they still grow)."""
        rows = int(rows)
        self.users.reserve(rows)
        self.items.reserve(rows)
        self.ts_col.reserve(rows)
        if self.rating:
            self.rating_col.reserve(rows)

    def add(self, frame, line0: int) -> None:
        """Add one chunk: a pandas DataFrame or a pyarrow RecordBatch/Table (no conversion)."""
        n_in = len(frame) if not isinstance(frame, pa.RecordBatch) else frame.num_rows
        self.rows_seen += n_in
        if self.transform is None:
            self._add(frame, line0)
            return
        df = frame.to_pandas() if not isinstance(frame, pd.DataFrame) else frame
        df = self.transform(df.reset_index(drop=True))
        self.dropped += n_in - len(df)
        if len(df) == 0:
            return
        pos = df.index.to_numpy()  # transform keeps the chunk positions of the rows it keeps
        try:
            self._add(df.reset_index(drop=True), 0)
        except DataFormatError as e:  # map the kept-row index back to the file line
            if e.line is None:
                raise
            line = line0 + int(pos[e.line])
            raise DataFormatError(_strip_where(e), e.hint, path=e.path, line=line,
                                  column=e.column) from None

    def _add(self, frame, line0: int) -> None:
        # users and items are encoded side by side: their dictionary merges (pyarrow hashing,
        # which releases the GIL) are the costliest step of reading and fall on the same chunks
        item_job = self._item_pool().submit(
            self.items.add, _col(frame, self.item), path=self.path, line0=line0,
            column=self.roles.get("item", self.item), role="item")
        try:
            self.users.add(_col(frame, self.user), path=self.path, line0=line0,
                           column=self.roles.get("user", self.user), role="user")
        except BaseException:
            item_job.exception()  # wait for it; the user id error is the one reported
            raise
        item_job.result()
        col = _col(frame, self.ts)
        ts = _fast_seconds(col, self.unit)
        if ts is None:
            ts = to_seconds(_series(col), self.unit, path=self.path,
                            column=self.roles.get("timestamp", self.ts), line0=line0)
        if self.ts_offset:  # e.g. Diginetica: event date + milliseconds into the session
            raw_off = _series(_col(frame, self.ts_offset))
            off = pd.to_numeric(raw_off, errors="coerce")
            if off.isna().any():
                i = int(np.flatnonzero(off.isna().to_numpy())[0])
                raise DataFormatError(f"{raw_off.iloc[i]!r} is not a number",
                                      path=self.path, line=line0 + i, column=self.ts_offset,
                                      hint="fix or drop the row")
            ts = ts + np.floor(off.to_numpy(np.float64) * self.ts_offset_scale).astype(np.int64)
        check_time_range(ts, self.unit, path=self.path, line_offset=line0,
                         column=self.roles.get("timestamp", self.ts))
        self.ts_col.extend(ts)
        if self.rating:
            col = _col(frame, self.rating)
            r = _fast_float(col)
            if r is None:
                raw_r = _series(col)
                num = pd.to_numeric(raw_r, errors="coerce")
                if num.isna().any():
                    i = int(np.flatnonzero(num.isna().to_numpy())[0])
                    raise DataFormatError(f"rating {raw_r.iloc[i]!r} is not a number",
                                          path=self.path, line=line0 + i,
                                          column=self.roles.get("rating", self.rating),
                                          hint="fix the row or set dataset.columns.rating=null")
                r = num.to_numpy(np.float32)
            self.rating_col.extend(r)
        if self.text_cols:
            t = pd.DataFrame({"item": _series(_col(frame, self.item)).astype(str).to_numpy(),
                              **{c: _series(_col(frame, c)).to_numpy(dtype=object)
                                 for c in self.text_cols}})
            self.text_parts.append(t.drop_duplicates("item"))

    def finish(self, items: pd.DataFrame | None = None, info: dict | None = None) -> RawData:
        # one column at a time, each list of chunks freed as soon as it is joined
        release_memory()  # what reading freed, before the id dictionaries are merged
        item_job = self._item_pool().submit(self.items.finish)
        cols = {"user": self.users.finish(), "item": item_job.result(), "ts": self.ts_col.view()}
        self._close_pool()
        if self.rating:
            cols["rating"] = self.rating_col.view()
        frame = pd.DataFrame(cols, copy=False)
        del cols
        if self.text_parts:
            t = pd.concat(self.text_parts, ignore_index=True).drop_duplicates("item")
            items = t if items is None else items.merge(t, on="item", how="outer")
        out_info = {"files": [str(self.path)], "rows": self.rows_seen}
        if self.dropped:
            out_info["rows_skipped"] = self.dropped
        out_info.update(info or {})
        release_memory()
        return RawData(frame, items, out_info)


def _col(frame, name: str):
    return frame.column(name) if isinstance(frame, pa.RecordBatch | pa.Table) else frame[name]


def _series(col) -> pd.Series:
    if isinstance(col, pd.Series):
        return col.reset_index(drop=True)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return pd.Series(col.to_pandas()) if not pa.types.is_dictionary(col.type) else pd.Series(
        col.dictionary_decode().to_pandas())


_SCALE = {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "days": 86400.0}


def _fast_seconds(col, unit: str) -> np.ndarray | None:
    """int64 seconds straight from an arrow numeric/timestamp column without nulls; None when
    the general (pandas) path is needed (text, nulls, errors to report)."""
    if not isinstance(col, pa.Array | pa.ChunkedArray) or col.null_count:
        return None
    t = col.type
    if pa.types.is_timestamp(t):
        return col.cast(pa.int64()).to_numpy() // {"s": 1, "ms": 10**3, "us": 10**6,
                                                   "ns": 10**9}[t.unit]
    if unit not in _SCALE or not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        return None
    arr = col.to_numpy()
    if pa.types.is_integer(t) and unit == "s":
        return arr.astype(np.int64, copy=False)
    out = arr.astype(np.float64, copy=False)
    if _SCALE[unit] != 1:
        out = out * _SCALE[unit]
    if not np.isfinite(out).all():
        return None
    return np.floor(out).astype(np.int64)


def _fast_float(col) -> np.ndarray | None:
    if not isinstance(col, pa.Array | pa.ChunkedArray) or col.null_count:
        return None
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        return None
    out = col.to_numpy().astype(np.float32)
    return out if np.isfinite(out).all() else None


def _strip_where(e: DataFormatError) -> str:
    """The message of a DataFormatError without its 'file, line N, column C: ' prefix."""
    where = [str(x) for x in (e.path,) if x is not None]
    where += [f"line {e.line}"] if e.line is not None else []
    where += [f"column {e.column!r}"] if e.column is not None else []
    prefix = ", ".join(where) + ": " if where else ""
    return e.message[len(prefix):] if e.message.startswith(prefix) else e.message


def feed_records(records: Iterator[tuple[int, dict]], sink, fields: list[str], path) -> None:
    rows: dict[str, list] = {f: [] for f in fields}
    first, count = None, 0
    for no, obj in records:
        if first is None:
            first = no
        for f in fields:
            v = obj.get(f)
            rows[f].append(v if not isinstance(v, dict | list) else str(v))
        count += 1
        if count == PY_CHUNK_ROWS:
            sink.add(_frame(rows), first)
            rows, first, count = {f: [] for f in fields}, None, 0
    if count:
        sink.add(_frame(rows), first)
    if sink.rows_seen == 0:
        raise DataFormatError("the file holds no records", path=path,
                              hint="point the dataset at a file with data rows")


def _frame(rows: dict[str, list]) -> pd.DataFrame:
    out = {}
    for k, v in rows.items():
        out[k] = pd.Series(v, dtype=object)
    return pd.DataFrame(out)
