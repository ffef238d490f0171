"""The canonical form every reader produces, and the checks that guard it.

A reader returns `RawData`: interactions in file order with columns

    user    raw user id (any hashable; compared as given)
    item    raw item id (same ids as the item frame's `item` column, compared as strings)
    ts      int64 seconds since the epoch
    rating  float32, optional

and an optional item frame (`item` as string plus one column per text field). The processing
pipeline (`recx.data.process`) adds `order` (the row number), filters, remaps ids to 1..U / 1..N
(0 is padding) and splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recx.errors import DataFormatError

CANONICAL_COLUMNS = ("user", "item", "ts")


@dataclass
class RawData:
    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    info: dict = field(default_factory=dict)  # reader facts for stats.json (files, skipped rows)


def require_columns(frame: pd.DataFrame, wanted: dict[str, str | None], path, *,
                    role: str = "columns") -> None:
    """Raise a DataFormatError naming the file, the missing column and the columns found."""
    found = [str(c) for c in frame.columns]
    for key, col in wanted.items():
        if col is not None and col not in frame.columns:
            raise DataFormatError(
                f"column {col!r} (dataset.{role}.{key}) not found; the file has columns {found}",
                hint=f"set dataset.{role}.{key}=<one of {found}>",
                path=path,
            )


_UNIT_SECONDS = {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "days": 86400.0}
# seconds that pandas' datetimes can hold (1677-09-22 .. 2262-04-11): outside, a unit is wrong
TS_MIN, TS_MAX = -9_223_372_036, 9_223_372_036
_PLAUSIBLE = (0, 4_102_444_800)  # 1970 .. 2100: what a unit guess should land in


def parse_timestamps(values: pd.Series, unit: str, *, path, column: str,
                     line_offset: int = 2) -> np.ndarray:
    """Convert a raw timestamp column to int64 seconds since the epoch.

    `unit` is s | ms | us | ns | days (numbers), iso (ISO 8601 text) or a strptime format
    containing '%'. The first value that does not parse is reported with its line number
    (`line_offset` maps row 0 to a file line: 2 for a CSV with a header).
    """
    if unit in _UNIT_SECONDS:
        numeric = pd.to_numeric(values, errors="coerce")
        arr = numeric.to_numpy(dtype="float64")
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raw = _scalar(values.iloc[i])
            what = "is missing (an empty field)" if pd.isna(raw) and not np.isinf(arr[i]) \
                else "is not a finite number" if np.isinf(arr[i]) else "is not a number"
            raise DataFormatError(
                f"timestamp {raw!r} {what} (dataset.timestamp.unit={unit})",
                hint="fix or drop the row, or set dataset.timestamp.unit to iso or a strptime "
                "format such as '%Y-%m-%d %H:%M:%S' if the column holds dates",
                path=path, line=i + line_offset, column=column,
            )
        arr = arr * _UNIT_SECONDS[unit]
        check_time_range(arr, unit, values.to_numpy(), path=path, column=column,
                         line_offset=line_offset)
        return np.floor(arr).astype("int64")
    fmt = None if unit == "iso" else unit
    if fmt is not None and "%" not in fmt:
        raise DataFormatError(
            f"unknown timestamp unit {unit!r}",
            hint="dataset.timestamp.unit must be s, ms, us, ns, days, iso or a strptime format "
            "containing '%'",
        )
    parsed = pd.to_datetime(values, format=fmt if fmt else "ISO8601", errors="coerce", utc=True)
    bad = parsed.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raw = _scalar(values.iloc[i])
        raise DataFormatError(
            f"timestamp {raw!r} " + ("is missing (an empty field)" if pd.isna(raw) else
                                     f"does not parse as {unit!r}"),
            hint="set dataset.timestamp.unit to the format of the column (s, ms, days, iso or "
            "a strptime format such as '%m/%d/%Y %H:%M')" if not pd.isna(raw) else
            "fix or drop the row",
            path=path, line=i + line_offset, column=column,
        )
    # pandas ≥ 3 infers the resolution (s, ms, us): go through ns explicitly, then floor to s
    return (parsed.dt.as_unit("ns").astype("int64") // 10**9).to_numpy(dtype="int64")


def _scalar(v):
    """A numpy scalar as the plain Python value (its repr is what the file holds: 1e+15, inf)."""
    return v.item() if isinstance(v, np.generic) else v


def check_time_range(seconds: np.ndarray, unit: str, raw=None, *, path, column: str,
                     line_offset: int) -> None:
    """Seconds beyond the years 1677..2262 mean a wrong unit (milliseconds read as seconds
    give the year 52671): name the line and the unit that fits."""
    if not len(seconds):
        return
    out = (seconds < TS_MIN) | (seconds > TS_MAX)
    if not out.any():
        return
    i = int(np.flatnonzero(out)[0])
    unit = unit if unit in _UNIT_SECONDS else "s"
    value = float(seconds[i]) / _UNIT_SECONDS[unit]
    shown = repr(_scalar(raw[i])) if raw is not None else f"{value:.0f}"
    guess = next((u for u in ("ms", "us", "ns") if
                  _PLAUSIBLE[0] <= abs(value) * _UNIT_SECONDS[u] <= _PLAUSIBLE[1]), None)
    names = {"ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
    looks = f"; the values look like {names[guess]}" if guess else ""
    raise DataFormatError(
        f"timestamp {shown} is out of range as {unit!r} (beyond the years 1677..2262)"
        f"{looks}",
        hint=f"set dataset.timestamp.unit={guess}" if guess else
        "set dataset.timestamp.unit to the unit of the column (s, ms, us, ns, days)",
        path=path, line=i + line_offset, column=column)


def check_not_empty(frame: pd.DataFrame, path: Path | str | None) -> None:
    if len(frame) == 0:
        raise DataFormatError(
            "the file holds no interactions",
            hint="point dataset.path / dataset.raw_dir at a file with data rows",
            path=path,
        )


def check_ids(frame: pd.DataFrame, path, columns: dict[str, str | None]) -> None:
    """No null or blank user or item ids; report the first offending line."""
    for key in ("user", "item"):
        col = frame[key]
        nulls = col.isna().to_numpy()
        if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            nulls |= col.astype(str).str.strip().eq("").to_numpy()
        if nulls.any():
            i = int(np.flatnonzero(nulls)[0])
            raise empty_id_error(key, path=path, line=i + 2, column=columns.get(key) or key)


def empty_id_error(role: str, *, path, line, column) -> DataFormatError:
    return DataFormatError(
        f"empty {role} id (a blank field, or NA/NaN/null: a missing value)",
        hint=f"remove the rows without a {role} id, or map dataset.columns.{role} to the right "
        "column; recx never merges rows without ids into one made-up id",
        path=path, line=line, column=column)


def item_spec(ds):
    """The dataset's `items:` block (attribute access would hit DictConfig.items())."""
    return ds["items"]


def role_key(cfg, ds) -> str:
    """The key a stage's config holds data set `ds` under: dataset, target or source.<name>
    (what a fix must name: `target.raw_dir=...` in transfer stages)."""
    for key in ("dataset", "target"):
        if key in cfg and cfg[key] is not None and cfg[key].get("name") == ds.name:
            return key
    for name, src in (cfg.get("source") or {}).items():
        if src.get("name") == ds.name:
            return f"source.{name}"
    return "dataset"


def check_evaluable(domain, key: str, scenario: str) -> None:
    """A domain a stage evaluates must give at least one valid and one test query: with
    leave-one-out a user needs 3 events (train, valid, test)."""
    from recx.data.scenarios import TEST, VALID

    n_valid = int((domain.split == VALID).sum())
    n_test = int((domain.split == TEST).sum())
    if n_valid and n_test:
        return
    lengths = np.diff(domain.indptr)[1:]
    if scenario == "leave_one_out":
        short = int((lengths < 3).sum())
        raise DataFormatError(
            f"no user of {domain.name} can be evaluated: {short} of {len(lengths)} users have "
            "fewer than 3 events, and leave-one-out needs 3 (train, valid, test)",
            hint=f"keep only users with 3 or more events: {key}.filters.k_core.user=3")
    raise DataFormatError(
        f"no user of {domain.name} has a {'valid' if not n_valid else 'test'} event after the "
        f"global_time cut-offs ({n_valid} valid, {n_test} test queries)",
        hint="move the cut-offs: eval.valid_quantile / eval.test_quantile")
