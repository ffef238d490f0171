"""Id encoding while streaming: each chunk's ids become int32 codes into small dictionaries that
are merged as they grow, so what a chunk leaves behind is 4 bytes a row plus the distinct ids.
`IdCodes.finish` gives a Categorical whose categories are sorted (numbers numerically, text by
code point), the order `recx.data.process` remaps ids in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recx.data.canonical import empty_id_error
from recx.data.memory import release_memory

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
