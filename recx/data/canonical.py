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
                hint=f"set dataset.{role}.{key}=<one of {found}> (target.{role}.{key}=... or "
                f"source.<name>.{role}.{key}=... inside transfer stages)",
                path=path,
            )


_UNIT_SECONDS = {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "days": 86400.0}


def parse_timestamps(values: pd.Series, unit: str, *, path, column: str,
                     line_offset: int = 2) -> np.ndarray:
    """Convert a raw timestamp column to int64 seconds since the epoch.

    `unit` is s | ms | us | ns | days (numbers), iso (ISO 8601 text) or a strptime format
    containing '%'. The first value that does not parse is reported with its line number
    (`line_offset` maps row 0 to a file line: 2 for a CSV with a header).
    """
    if unit in _UNIT_SECONDS:
        numeric = pd.to_numeric(values, errors="coerce")
        bad = numeric.isna() & values.notna() | values.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataFormatError(
                f"timestamp {values.iloc[i]!r} is not a number (dataset.timestamp.unit={unit})",
                hint="fix or drop the row, or set dataset.timestamp.unit to iso or a strptime "
                "format such as '%Y-%m-%d %H:%M:%S' if the column holds dates",
                path=path, line=i + line_offset, column=column,
            )
        scale = _UNIT_SECONDS[unit]
        arr = numeric.to_numpy(dtype="float64") * scale
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
        raise DataFormatError(
            f"timestamp {values.iloc[i]!r} does not parse as {unit!r}",
            hint="set dataset.timestamp.unit to the format of the column (s, ms, days, iso or "
            "a strptime format such as '%m/%d/%Y %H:%M')",
            path=path, line=i + line_offset, column=column,
        )
    # pandas ≥ 3 infers the resolution (s, ms, us): go through ns explicitly, then floor to s
    return (parsed.dt.as_unit("ns").astype("int64") // 10**9).to_numpy(dtype="int64")


def check_not_empty(frame: pd.DataFrame, path: Path | str | None) -> None:
    if len(frame) == 0:
        raise DataFormatError(
            "the file holds no interactions",
            hint="point dataset.path / dataset.raw_dir at a file with data rows",
            path=path,
        )


def check_ids(frame: pd.DataFrame, path, columns: dict[str, str | None]) -> None:
    """No null user or item ids; report the first offending line."""
    for key in ("user", "item"):
        nulls = frame[key].isna().to_numpy()
        if nulls.any():
            i = int(np.flatnonzero(nulls)[0])
            raise DataFormatError(
                f"empty {key} id",
                hint="remove rows without ids or map dataset.columns."
                f"{key} to the right column",
                path=path, line=i + 2, column=columns.get(key) or key,
            )


def item_spec(ds):
    """The dataset's `items:` block (attribute access would hit DictConfig.items())."""
    return ds["items"]
