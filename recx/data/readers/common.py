"""Streaming building blocks shared by the readers.

Large raw files are read in chunks (pyarrow's streaming CSV and JSON readers; a pure-Python
path for the rare file pyarrow cannot parse and for Python-literal lines). Each chunk's ids are
dictionary-encoded at once (:class:`IdCodes`), so the memory that survives a chunk is a few
bytes per interaction (int32 codes, int64 seconds, float32 rating) and the distinct ids, never a
Python object per row. :class:`Sink` collects the chunks and builds the canonical `RawData`,
with ids as pandas Categoricals whose categories are sorted (numbers numerically, text by code
point), which is the order `recx.data.process` remaps them in.

Errors always name the file and, where it makes sense, the line and column
(`recx.errors.DataFormatError`); a corrupted or truncated gzip file is reported as such.
"""

from __future__ import annotations

import ast
import codecs
import contextlib
import csv
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recx.data.canonical import RawData, check_time_range, empty_id_error, parse_timestamps
from recx.errors import DataFormatError

CSV_BLOCK = 1 << 20  # bytes per pyarrow CSV block; its reader keeps many blocks in flight
JSON_BLOCK = 1 << 20  # bytes per JSON block (> the longest line; retried larger); the reader
# keeps dozens in flight, so a bigger block costs memory and buys no speed
PY_CHUNK_ROWS = 200_000  # rows per chunk on the pure-Python paths
ID_TYPE = pa.dictionary(pa.int32(), pa.string())

_SEPARATORS = [",", "\t", ";", "|"]


# ------------------------------------------------------------------------------ files
def open_text(path: Path, encoding: str = "utf-8"):
    """Text handle on a plain or gzip file; undecodable bytes are replaced, never fatal."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding, errors="replace")
    return open(path, encoding=encoding, errors="replace")


_HEAD_BYTES = 1 << 16
_UTF8 = ("utf-8", "utf8", "utf_8")


def _head(path: Path) -> bytes:
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with reading(path), opener(path, "rb") as f:
        return f.read(_HEAD_BYTES)


def text_encoding(path: Path, configured: str | None = None) -> str:
    """The encoding to read a user's text file with.

    A byte-order mark decides (UTF-8 with BOM, UTF-16), as do the zero bytes of UTF-16 text
    without one; otherwise `configured` (`dataset.options.encoding`, UTF-8 by default). The
    first 64 KiB must decode: bytes that are no text, or text in another encoding, are a
    DataFormatError naming the line and the option to set.
    """
    path = Path(path)
    head = _head(path)
    enc = str(configured or "utf-8")
    default = enc.lower() in _UTF8
    if default:
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        even, odd = head[0::2], head[1::2]
        if len(head) >= 8 and odd.count(0) > 0.4 * len(odd) and not even.count(0):
            return "utf-16-le"
        if len(head) >= 8 and even.count(0) > 0.4 * len(even) and not odd.count(0):
            return "utf-16-be"
    control = sum(head.count(bytes([b])) for b in (*range(0, 9), *range(14, 32)))
    if default and head and control > 0.01 * len(head):
        raise DataFormatError(
            "not a text file (it holds binary bytes, e.g. a compressed or spreadsheet file)",
            path=path, hint="give a CSV/TSV text file, a .parquet, or a .jsonl file; "
            "decompress or export the data first (a .gz suffix is read as gzip)")
    try:
        codecs.getincrementaldecoder(enc)().decode(head, final=len(head) < _HEAD_BYTES)
    except LookupError:
        raise DataFormatError(f"unknown encoding {enc!r} (+dataset.options.encoding)",
                              path=path, hint="use a Python codec name such as utf-8, "
                              "latin-1, cp1252 or utf-16") from None
    except UnicodeDecodeError as e:
        raise encoding_error(path, enc, e.start, head) from None
    return enc


def encoding_error(path: Path, enc: str, offset: int, data: bytes,
                   lines_before: int = 0) -> DataFormatError:
    line = lines_before + data.count(b"\n", 0, offset) + 1
    return DataFormatError(
        f"not valid {enc} text (byte 0x{data[offset]:02x})", path=path, line=line,
        hint="name the file's encoding: +dataset.options.encoding=latin-1 (or cp1252, "
        "utf-16, ...), or save the file as UTF-8")


def first_undecodable(path: Path, enc: str) -> DataFormatError | None:
    """The error for the first bytes of `path` that do not decode as `enc` (whole file)."""
    dec = codecs.getincrementaldecoder(enc)()
    opener = gzip.open if Path(path).suffix == ".gz" else open
    line = 1
    with opener(path, "rb") as f:
        while block := f.read(1 << 20):
            try:
                dec.decode(block)
            except UnicodeDecodeError as e:
                return encoding_error(path, enc, e.start, block, line - 1)
            line += block.count(b"\n")
    return None


def sniff_separator(path: Path, default: str = ",", encoding: str = "utf-8") -> str:
    """Guess the delimiter from the first lines (the parsers need it spelled out)."""
    with reading(path), open_text(path, encoding) as f:
        head = "".join(f.readline() for _ in range(20))
    if not head.strip():
        return default
    try:
        return csv.Sniffer().sniff(head, delimiters="".join(_SEPARATORS)).delimiter
    except csv.Error:
        counts = {s: head.splitlines()[0].count(s) for s in _SEPARATORS}
        best = max(counts, key=counts.get)
        return best if counts[best] else default


def gzip_problem(path: Path) -> str | None:
    """Why a gzip file cannot be read to the end (None when it can)."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(8 << 20):
                pass
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as e:
        return str(e) or type(e).__name__
    return None


def corrupt_gzip_error(path: Path, why: str) -> DataFormatError:
    return DataFormatError(
        f"corrupted or truncated gzip file ({why})", path=path,
        hint="the file is damaged (an interrupted download?): delete it and download it again "
        "(or copy it again into dataset.raw_dir)")


@contextlib.contextmanager
def reading(path: Path):
    """Turn a decompression failure while reading `path` into a DataFormatError naming it."""
    path = Path(path)
    try:
        yield
    except DataFormatError:
        raise
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise corrupt_gzip_error(path, str(e) or type(e).__name__) from None
    except (OSError, pa.ArrowException):
        if path.suffix == ".gz" and (why := gzip_problem(path)):
            raise corrupt_gzip_error(path, why) from None
        raise


def csv_header(path: Path, sep: str, encoding: str = "utf-8") -> list[str]:
    with reading(path), open_text(path, encoding) as f:
        first = f.readline()
    if not first.strip():
        raise DataFormatError("the file is empty", path=path,
                              hint="point the dataset at a file with a header and data rows")
    return next(csv.reader([first.rstrip("\r\n")], delimiter=sep))


def locate_bad_row(path: Path, sep: str, n_fields: int, *, header: bool,
                   encoding: str = "utf-8") -> tuple[int | None, str]:
    """The first line whose field count differs from the header's (for error messages)."""
    with open_text(path, encoding) as f:
        reader = csv.reader(f, delimiter=sep)
        for row in reader:
            if reader.line_num == 1 and header:
                continue
            if row and len(row) != n_fields:
                return reader.line_num, f"expected {n_fields} fields, saw {len(row)}"
    return None, "could not parse the file"


# ------------------------------------------------------------------------------ ids
_CANONICAL_INT = r"^(0|-?[1-9][0-9]{0,17})$"


class Column:
    """A growable numpy column: chunks are copied in once; `view()` is the data, no final copy.

    `reserve` (from an estimate of the row count) allocates the whole column at once; pages
    that are never written are never resident, so a generous estimate costs nothing.
    """

    def __init__(self, dtype, capacity: int = 0):
        self.a = np.empty(max(int(capacity), 4096), dtype=dtype)
        self.n = 0

    def reserve(self, capacity: int) -> None:
        if capacity > len(self.a):
            new = np.empty(int(capacity), dtype=self.a.dtype)
            new[:self.n] = self.a[:self.n]
            self.a = new

    def extend(self, x: np.ndarray) -> None:
        need = self.n + len(x)
        if need > len(self.a):
            self.reserve(max(need, int(len(self.a) * 1.5)))
        self.a[self.n:need] = x
        self.n = need

    def view(self) -> np.ndarray:
        return self.a[:self.n]


class IdCodes:
    """Ids encoded chunk by chunk; `finish` gives a Categorical with sorted categories.

    Each chunk's codes (int32) point into that chunk's own small dictionary; when the chunk
    dictionaries add up to more than twice the distinct ids seen so far they are merged into
    one and the codes remapped in place, so the memory held is 4 bytes per row plus about the
    distinct ids.
    """

    COMPACT_MIN = 1 << 21

    def __init__(self):
        self.codes = Column(np.int32)
        self.parts: list[tuple[int, int, int]] = []  # (start, end, index of the dictionary)
        self.dicts: list[pa.Array] = []
        self.n_dict = 0
        self.global_len = 0
        self.lines: list[tuple[int, int]] = []  # (first row, its file line) of every chunk
        self.where: dict = {}  # path, column and role, for the empty-id error of `finish`
        self.exact_lines = True  # false when a reader's transform dropped rows of the chunks

    def reserve(self, rows: int) -> None:
        self.codes.reserve(rows)

    def add(self, values, *, path=None, line0: int = 1, column: str | None = None,
            role: str = "user") -> None:
        codes, dictionary = _encode(values)
        if len(codes) and codes.min() < 0:
            i = int(np.flatnonzero(codes < 0)[0])
            raise empty_id_error(role, path=path, line=line0 + i, column=column)
        if self.dicts and dictionary.type != self.dicts[0].type:
            self.dicts = _common_type(self.dicts)
            dictionary = _common_type([self.dicts[0], dictionary])[1]
        start = self.codes.n
        self.codes.extend(codes)
        self.lines.append((start, line0))
        self.where = {"path": path, "column": column, "role": role}
        self.parts.append((start, self.codes.n, len(self.dicts)))
        self.dicts.append(dictionary)
        self.n_dict += len(dictionary)
        if self.n_dict > max(self.COMPACT_MIN, 2 * self.global_len):
            self._compact()

    def _compact(self) -> None:
        dicts = _common_type(self.dicts)
        offs = np.cumsum([0] + [len(d) for d in dicts])
        allu = pa.concat_arrays(dicts) if len(dicts) > 1 else dicts[0]
        enc = pc.dictionary_encode(allu)
        gidx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
        for a, b, d in self.parts:
            _remap(self.codes.a, a, b, gidx, int(offs[d]))
        self.parts = [(0, self.codes.n, 0)] if self.codes.n else []
        self.dicts = [enc.dictionary]
        self.global_len = self.n_dict = len(enc.dictionary)
        del allu, enc, gidx, dicts
        release_memory()  # the merge's temporaries (a few merges per file, tens of MiB each)

    def finish(self) -> pd.Categorical:
        if not self.dicts:
            return pd.Categorical.from_codes(np.zeros(0, np.int32), categories=pd.Index([]))
        self._compact()
        uniq = self.dicts[0]
        self._check_blank(uniq)
        if pa.types.is_string(uniq.type) and len(uniq) and pc.all(
                pc.match_substring_regex(uniq, _CANONICAL_INT)).as_py():
            uniq = pc.cast(uniq, pa.int64())  # numeric ids sort numerically
        order = pc.sort_indices(uniq).to_numpy()
        rank = np.empty(len(uniq), dtype=np.int32)
        rank[order] = np.arange(len(uniq), dtype=np.int32)
        codes = self.codes.view()
        _remap(codes, 0, len(codes), rank, 0)
        self.parts, self.dicts, self.codes = [], [], Column(np.int32)
        cats = pd.Index(uniq.take(pa.array(order)).to_pandas())
        return pd.Categorical.from_codes(codes, categories=cats, validate=False)


    def _check_blank(self, uniq: pa.Array) -> None:
        """Blank text and NaN are no ids: checked once on the distinct ids (not per row), the
        first row that holds one is reported with its line."""
        blank = _blank(uniq)
        if blank is None:
            return
        row = int(np.flatnonzero(np.isin(self.codes.view(), np.flatnonzero(blank)))[0])
        start, line0 = next((a, ln) for a, ln in reversed(self.lines) if a <= row)
        raise empty_id_error(self.where["role"], path=self.where["path"],
                             line=line0 + row - start if self.exact_lines else None,
                             column=self.where["column"])


def _remap(buf: np.ndarray, a: int, b: int, table: np.ndarray, offset: int) -> None:
    """buf[a:b] = table[offset + buf[a:b]], in place and in slices (small temporaries)."""
    step = 1 << 22
    for k in range(a, b, step):
        e = min(b, k + step)
        seg = buf[k:e]
        buf[k:e] = table[seg + offset] if offset else table[seg]


def _blank(arr: pa.Array) -> np.ndarray | None:
    """Where ids hold no id although they are not null: blank text, a float NaN (None if
    nowhere). Such ids are reported as empty, never merged into one id."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        hit = pc.or_(pc.equal(pc.binary_length(arr), 0), pc.utf8_is_space(arr))
    elif pa.types.is_floating(arr.type):
        hit = pc.is_nan(arr)
    else:
        return None
    hit = np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)
    return hit if hit.any() else None


def _encode(values) -> tuple[np.ndarray, pa.Array]:
    """(int codes with -1 for null, dictionary as an arrow array) of one chunk of ids."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if not pa.types.is_dictionary(values.type):
            # no per-chunk hashing: the chunk is its own (unmerged) dictionary and the one hash
            # pass happens when IdCodes merges dictionaries
            codes = np.arange(len(values), dtype=np.int32)
            if values.null_count:
                codes[~np.asarray(values.is_valid())] = -1
            return codes, _plain(values)
        idx = values.indices
        codes = idx.to_numpy(zero_copy_only=False) if idx.null_count == 0 else np.asarray(
            pc.fill_null(idx, -1).to_numpy(zero_copy_only=False))
        return codes, _plain(values.dictionary)
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = pa.array(np.asarray(series.cat.categories, dtype=object)
                        if series.cat.categories.dtype == object else series.cat.categories)
        return series.cat.codes.to_numpy().astype(np.int64), _plain(cats)
    codes, uniques = pd.factorize(series)
    if uniques.dtype == object:
        uniques = np.array([str(u) for u in uniques], dtype=object)
    return codes.astype(np.int64, copy=False), _plain(pa.array(uniques))


def _plain(arr: pa.Array) -> pa.Array:
    if pa.types.is_large_string(arr.type):
        return arr.cast(pa.string())
    if pa.types.is_floating(arr.type):
        vals = arr.to_numpy(zero_copy_only=False)
        if np.all(np.isfinite(vals)) and np.all(vals == np.round(vals)):
            return pa.array(vals.astype(np.int64))  # 12346.0 (an id read as float) → 12346
    return arr


def _common_type(dicts: list[pa.Array]) -> list[pa.Array]:
    if all(pa.types.is_integer(d.type) for d in dicts):
        return [d.cast(pa.int64()) for d in dicts]
    return [d if pa.types.is_string(d.type) else d.cast(pa.string()) for d in dicts]


# ------------------------------------------------------------------------------ timestamps
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


# ------------------------------------------------------------------------------ the sink
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


def release_memory() -> None:
    """Hand freed memory back to the OS: pyarrow's allocator keeps a cache, and glibc keeps
    freed blocks of up to 32 MiB in its heaps (one per thread); both would otherwise count
    against the peak of the processing that follows."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc():
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return lib if hasattr(lib, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


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


# ------------------------------------------------------------------------------ CSV
def estimate_rows(path: Path, rows_in_first_block: int, block_size: int) -> int:
    """About how many rows a file holds, from its first block (10 % margin). For gzip the
    uncompressed size comes from the trailer (exact below 4 GiB)."""
    size = Path(path).stat().st_size
    if Path(path).suffix == ".gz":
        with open(path, "rb") as f:
            f.seek(-4, 2)
            isize = int.from_bytes(f.read(4), "little")
        size = isize if isize >= size else size * 5
    return int(1.1 * rows_in_first_block * max(1.0, size / block_size)) + 1024


def scan_csv(path: Path, sink, *, sep: str | None = None, header: bool = True,
             names: list[str] | None = None, usecols: list[str],
             ids: tuple[str, ...] = (), numeric: tuple[str, ...] = (),
             strings: tuple[str, ...] = (), encoding: str = "utf-8", quoted: bool = True,
             newlines_in_values: bool = False, null_ids: tuple[str, ...] = (),
             encoding_errors: str = "replace") -> None:
    """Feed `path` to `sink.add(chunk, first_line)` in chunks (pyarrow; pandas fallback).

    `ids` columns are read as dictionary-encoded text, `numeric` ones as float64 and `strings`
    as text (dates are parsed by `to_seconds`, not guessed by pyarrow) on the fast path;
    `null_ids` are id spellings that mean "no id" (e.g. NA). A row pyarrow cannot parse sends
    the whole file through pandas' chunked reader, whose errors carry line numbers.
    `encoding_errors="strict"` (a user's own file) reports bytes that do not decode, with their
    line, instead of replacing them (two ids that differ only there would become one).
    """
    import pyarrow.csv as pacsv

    path = Path(path)
    if sep is None:
        sep = "\t" if path.suffix in (".tsv", ".tab") else sniff_separator(path)
    cols = csv_header(path, sep, encoding) if header else list(names or [])
    n_fields = len(cols)
    first_data_line = 2 if header else 1
    if len(sep) == 1:
        types = {c: pa.string() for c in ids}  # hashed once, by IdCodes
        types.update({c: pa.float64() for c in numeric})
        types.update({c: pa.string() for c in strings})  # parsed by us (dates, text)
        ropts = pacsv.ReadOptions(block_size=CSV_BLOCK, encoding=_arrow_encoding(encoding),
                                  column_names=None if header else cols)
        popts = pacsv.ParseOptions(delimiter=sep, quote_char='"' if quoted else False,
                                   newlines_in_values=newlines_in_values)
        # NA, NaN, null and empty fields are missing values (as pandas reads them): an empty
        # id is then reported, never kept as an id of its own
        copts = pacsv.ConvertOptions(include_columns=usecols, column_types=types,
                                     strings_can_be_null=True,
                                     null_values=["", "NA", "N/A", "NaN", "nan", "null", "NULL"],
                                     quoted_strings_can_be_null=False)
        try:
            with reading(path):
                reader = pacsv.open_csv(path, read_options=ropts, parse_options=popts,
                                        convert_options=copts)
                line = first_data_line
                for batch in reader:
                    if line == first_data_line and batch.num_rows:
                        sink.reserve(estimate_rows(path, batch.num_rows, CSV_BLOCK))
                    sink.add(_null_ids(batch.to_pandas(), ids, null_ids) if null_ids else batch,
                             line)
                    line += batch.num_rows
            return
        except DataFormatError:
            raise
        except (pa.ArrowInvalid, pa.ArrowException, UnicodeDecodeError):
            sink.reset()  # some row is beyond pyarrow: redo the file with pandas
    _scan_csv_pandas(path, sink, sep=sep, header=header, cols=cols, usecols=usecols, ids=ids,
                     encoding=encoding, quoted=quoted, n_fields=n_fields, null_ids=null_ids,
                     first_data_line=first_data_line, encoding_errors=encoding_errors)


def _arrow_encoding(encoding: str) -> str:
    return "utf8" if encoding.lower().replace("-", "") == "utf8" else encoding


def _null_ids(df: pd.DataFrame, ids, null_ids) -> pd.DataFrame:
    if not null_ids:
        return df
    for c in ids:
        if c in df.columns:
            col = df[c]
            if isinstance(col.dtype, pd.CategoricalDtype):
                hit = [v for v in null_ids if v in col.cat.categories]
                if hit:
                    df[c] = col.cat.remove_categories(hit)
            else:
                df[c] = col.where(~col.isin(null_ids))
    return df


_PANDAS_LINE = re.compile(r"line (\d+)")


def _scan_csv_pandas(path, sink, *, sep, header, cols, usecols, ids, encoding, quoted,
                     n_fields, null_ids, first_data_line, encoding_errors="replace") -> None:
    # no usecols: pandas then checks every row's field count (and names the bad line)
    kw = dict(sep=sep, header=0 if header else None, names=None if header else cols,
              dtype={c: str for c in ids}, chunksize=PY_CHUNK_ROWS,
              encoding=encoding, encoding_errors=encoding_errors, keep_default_na=False,
              na_values=["", "NA", "N/A", "NaN", "nan", "null", "NULL"],
              quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    if len(sep) > 1:
        kw["engine"] = "python"
    line = first_data_line
    try:
        with reading(path):
            for chunk in pd.read_csv(path, **kw):
                chunk = chunk[usecols].reset_index(drop=True)
                sink.add(_null_ids(chunk, ids, null_ids), line)
                line += len(chunk)
    except pd.errors.EmptyDataError:
        raise DataFormatError("the file is empty", path=path,
                              hint="point the dataset at a file with a header and data rows"
                              ) from None
    except UnicodeDecodeError as e:
        raise (first_undecodable(path, encoding) or DataFormatError(
            f"not valid {encoding} text ({e.reason})", path=path,
            hint="name the file's encoding: +dataset.options.encoding=<codec>")) from None
    except pd.errors.ParserError as e:
        m = _PANDAS_LINE.search(str(e))
        where, what = (int(m.group(1)), str(e).splitlines()[-1].strip()) if m else \
            locate_bad_row(path, sep, n_fields, header=header, encoding=encoding)
        raise DataFormatError(
            f"malformed row: {what}", path=path, line=where,
            hint=f"fix or remove that row, or set dataset.sep if the delimiter is not {sep!r}",
        ) from None


# ------------------------------------------------------------------------------ JSON lines
def scan_json(path: Path, sink, fields: dict[str, pa.DataType]) -> None:
    """Feed JSON-lines `path` (plain or .gz) to `sink.add` in chunks, keeping only `fields`.

    pyarrow parses the lines with an explicit schema and ignores every other field (review
    texts never reach memory); a line it cannot parse sends the file through `json.loads`,
    whose errors name the line.
    """
    import pyarrow.json as pajson

    path = Path(path)
    schema = pa.schema([(k, v) for k, v in fields.items()])
    block = JSON_BLOCK
    for _attempt in range(3):
        try:
            with reading(path):
                stream = pa.input_stream(str(path), compression="detect")
                reader = pajson.open_json(
                    stream, read_options=pajson.ReadOptions(block_size=block),
                    parse_options=pajson.ParseOptions(explicit_schema=schema,
                                                      unexpected_field_behavior="ignore"))
                line = 1
                for batch in reader:
                    if line == 1 and batch.num_rows:
                        sink.reserve(estimate_rows(path, batch.num_rows, block))
                    sink.add(batch, line)
                    line += batch.num_rows
            if sink.rows_seen == 0:
                _check_json_not_empty(path)
            return
        except DataFormatError:
            raise
        except pa.ArrowInvalid as e:
            sink.reset()
            if "straddling" in str(e) or "block size" in str(e).lower():
                block *= 8  # a line longer than a block
                continue
            break
        except (pa.ArrowException, UnicodeDecodeError):
            sink.reset()
            break
    scan_json_python(path, sink, list(fields))


def _check_json_not_empty(path: Path) -> None:
    with reading(path), open_text(path) as f:
        for line in f:
            if line.strip():
                return
    raise DataFormatError("the file is empty", path=path,
                          hint="point the dataset at a file with data rows")


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of a JSON-lines file; a bad line is a DataFormatError."""
    with reading(path), open_text(path) as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(f"not valid JSON ({e.msg})", path=path, line=no,
                                      hint="each line must be one JSON object") from None
            if not isinstance(obj, dict):
                raise DataFormatError("not a JSON object", path=path, line=no,
                                      hint="each line must be one JSON object")
            yield no, obj


def scan_json_python(path: Path, sink, fields: list[str]) -> None:
    _scan_records(iter_json_lines(path), sink, fields, path)


def _scan_records(records: Iterator[tuple[int, dict]], sink, fields: list[str], path) -> None:
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


# ------------------------------------------------------------------------------ Python literals
def _field_re(key: str) -> re.Pattern:
    lit = r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|True|False|None"""
    return re.compile(r"""['"]""" + re.escape(key) + r"""['"]\s*:\s*(""" + lit + ")")


def _literal(text: str):
    if text[0] in "'\"":
        return text[1:-1] if "\\" not in text else ast.literal_eval(text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_literal_line(line: str, no: int, path) -> dict:
    """One line of Python-literal text (`{'asin': '…', …}`), or JSON, as a dict."""
    try:
        obj = json.loads(line) if line.lstrip().startswith('{"') else ast.literal_eval(line)
    except (ValueError, SyntaxError, json.JSONDecodeError, MemoryError, RecursionError):
        try:
            obj = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
            raise DataFormatError(f"not a Python literal or JSON object ({type(e).__name__})",
                                  path=path, line=no,
                                  hint="each line must be one dict literal, e.g. "
                                  "{'asin': '...', 'title': '...'}") from None
    if not isinstance(obj, dict):
        raise DataFormatError("not a dict literal", path=path, line=no,
                              hint="each line must be one dict literal")
    return obj


def iter_literal_fields(path: Path, keys: list[str]) -> Iterator[tuple[int, dict]]:
    """(line, {key: value}) of Python-literal lines, reading only `keys` of scalar value.

    A regular expression extracts each key (no full parse of the long review text); a line
    where one is missing is parsed whole with `ast.literal_eval`.
    """
    pats = {k: _field_re(k) for k in keys}
    with reading(path), open_text(path) as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            out = {}
            for k, pat in pats.items():
                m = pat.search(line)
                if m is None:
                    break
                out[k] = _literal(m.group(1))
            else:
                yield no, out
                continue
            obj = parse_literal_line(line, no, path)
            yield no, {k: obj.get(k) for k in keys}


def scan_literal(path: Path, sink, fields: list[str]) -> None:
    _scan_records(iter_literal_fields(path, fields), sink, fields, path)


def iter_literal_records(path: Path, wanted_key: str | None = None,
                         wanted: set[str] | None = None) -> Iterator[tuple[int, dict]]:
    """Whole records of Python-literal (or JSON) lines; with `wanted`, only those whose
    `wanted_key` is in the set are parsed (a cheap regex looks at the key first)."""
    pat = _field_re(wanted_key) if wanted_key and wanted is not None else None
    with reading(path), open_text(path) as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            if pat is not None:
                m = pat.search(line)
                if m is not None and str(_literal(m.group(1))) not in wanted:
                    continue
            yield no, parse_literal_line(line, no, path)
