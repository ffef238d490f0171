"""Readers: one per raw format, each returning `RawData` (recx/data/canonical.py).

`READERS` is the explicit registry that `dataset.reader` names. Every reader turns parser
failures into a `DataFormatError` naming the file, the line or column, and the fix.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recx.data.canonical import (
    RawData,
    check_ids,
    check_not_empty,
    parse_timestamps,
    require_columns,
)
from recx.data.download import RawFiles
from recx.errors import ConfigError, DataFormatError

Reader = Callable[[object, RawFiles], RawData]

_SEPARATORS = [",", "\t", ";", "|"]


def sniff_separator(path: Path, default: str = ",") -> str:
    """Guess the delimiter from the first lines (the C parser needs it spelled out)."""
    with open_text(path) as f:
        head = "".join(f.readline() for _ in range(20))
    if not head.strip():
        return default
    try:
        return csv.Sniffer().sniff(head, delimiters="".join(_SEPARATORS)).delimiter
    except csv.Error:
        counts = {s: head.splitlines()[0].count(s) for s in _SEPARATORS}
        best = max(counts, key=counts.get)
        return best if counts[best] else default


def open_text(path: Path):
    path = Path(path)
    if path.suffix == ".gz":
        import gzip

        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


_LINE_RE = re.compile(r"line (\d+)")


def read_delimited(path: Path, sep: str | None, usecols=None, header="infer",
                   names=None, dtype=None, comment=None) -> pd.DataFrame:
    """pandas.read_csv with recx errors: an empty file or a malformed row names its line."""
    path = Path(path)
    if sep is None:
        sep = "\t" if path.suffix in (".tsv", ".tab") else sniff_separator(path)
    try:
        return pd.read_csv(path, sep=sep, usecols=usecols, header=header, names=names,
                           dtype=dtype, comment=comment, engine="c", low_memory=False)
    except pd.errors.EmptyDataError:
        raise DataFormatError("the file is empty", path=path,
                              hint="point the dataset at a file with a header and data rows"
                              ) from None
    except pd.errors.ParserError as e:
        m = _LINE_RE.search(str(e))
        raise DataFormatError(
            f"malformed row: {str(e).splitlines()[-1].strip()}",
            path=path, line=int(m.group(1)) if m else None,
            hint=f"fix or remove that row, or set dataset.sep if the delimiter is not {sep!r}",
        ) from None
    except ValueError as e:
        if "Usecols" in str(e) or "usecols" in str(e):
            cols = list(pd.read_csv(path, sep=sep, nrows=0).columns)
            missing = [c for c in usecols if c not in cols]
            raise DataFormatError(
                f"column {missing[0]!r} not found; the file has columns {cols}",
                path=path, column=missing[0],
                hint="map dataset.columns.<user|item|timestamp|rating> to one of those columns",
            ) from None
        raise


def _read_table(path: Path, ds) -> pd.DataFrame:
    """Any tabular file by extension: .csv .tsv .txt .parquet .jsonl/.json[.gz]."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson")):
        try:
            frame = pd.read_json(path, lines=True)
        except ValueError as e:
            raise DataFormatError(f"not valid JSON lines: {e}", path=path,
                                  hint="each line must be one JSON object") from None
        if frame.empty:
            raise DataFormatError("the file is empty", path=path,
                                  hint="point the dataset at a file with data rows")
        return frame
    return read_delimited(path, ds.sep)


def frame_to_raw(frame: pd.DataFrame, ds, path: Path, line_offset: int = 2) -> RawData:
    """Map configured columns to the canonical ones and parse timestamps."""
    cols = ds.columns
    wanted = {"user": cols.user, "item": cols.item, "timestamp": cols.timestamp,
              "rating": cols.rating, "text": cols.text}
    for key in ("user", "item", "timestamp"):
        if wanted[key] is None:
            raise ConfigError(f"dataset.columns.{key} is not set for dataset {ds.name!r}",
                              hint=f"name the column, e.g. dataset.columns.{key}=<column>")
    require_columns(frame, wanted, path)
    check_not_empty(frame, path)
    out = pd.DataFrame({"user": frame[cols.user].to_numpy(), "item": frame[cols.item].to_numpy()})
    check_ids(out, path, {"user": cols.user, "item": cols.item})
    out["ts"] = parse_timestamps(frame[cols.timestamp], ds.timestamp.unit, path=path,
                                 column=cols.timestamp, line_offset=line_offset)
    if cols.rating:
        rating = pd.to_numeric(frame[cols.rating], errors="coerce")
        if rating.isna().any():
            i = int(np.flatnonzero(rating.isna().to_numpy())[0])
            raise DataFormatError(f"rating {frame[cols.rating].iloc[i]!r} is not a number",
                                  path=path, line=i + line_offset, column=cols.rating,
                                  hint="fix the row or set dataset.columns.rating=null")
        out["rating"] = rating.to_numpy(np.float32)
    items = None
    if cols.text:
        items = pd.DataFrame({"item": out["item"].astype(str),
                              cols.text: frame[cols.text].to_numpy()})
    return RawData(out, items, {"files": [str(path)], "rows": len(frame)})


def read_items_table(path: Path, key: str, text_columns, sep=None) -> pd.DataFrame:
    frame = _read_table(path, _SepOnly(sep))
    require_columns(frame, {"key": key, **{f"text_columns[{i}]": c
                                           for i, c in enumerate(text_columns)}},
                    path, role="items")
    out = frame[[key, *text_columns]].rename(columns={key: "item"})
    out["item"] = out["item"].astype(str)
    return out


class _SepOnly:
    def __init__(self, sep):
        self.sep = sep


def read_custom(ds, files: RawFiles) -> RawData:
    """Any CSV/TSV/Parquet/JSON-lines file through dataset.columns.* (`reader: auto`)."""
    path = files.path("main") if "main" in files.explicit else files.path(ds.file)
    raw = frame_to_raw(_read_table(path, ds), ds, path)
    if ds["items"].path or ds["items"].file:
        ipath = files.path("items") if "items" in files.explicit else files.path(ds["items"].file)
        if not ds["items"].key:
            raise ConfigError("dataset.items.key is not set",
                              hint="name the item file's id column: dataset.items.key=<column>")
        items = read_items_table(ipath, ds["items"].key, list(ds["items"].text_columns), ds["items"].sep)
        raw.items = items if raw.items is None else raw.items.merge(items, on="item", how="outer")
        raw.info["files"].append(str(ipath))
    return raw


_ATOMIC_TYPES = {"token": str, "float": "float64", "token_seq": str, "float_seq": str}


def _read_atomic(path: Path) -> pd.DataFrame:
    """RecBole atomic file: tab-separated, header fields typed as `name:type`."""
    with open_text(path) as f:
        header = f.readline().rstrip("\n").split("\t")
    if not header or header == [""]:
        raise DataFormatError("the file is empty", path=path, hint="expected a RecBole atomic file")
    names, dtypes = [], {}
    for h in header:
        name, _, typ = h.partition(":")
        if typ not in _ATOMIC_TYPES:
            raise DataFormatError(f"header field {h!r} has no RecBole type (name:token|float|...)",
                                  path=path, line=1, hint="use a RecBole atomic file")
        names.append(name)
        dtypes[name] = _ATOMIC_TYPES[typ]
    frame = pd.read_csv(path, sep="\t", header=0, names=names, dtype=dtypes, engine="c",
                        quoting=csv.QUOTE_NONE)
    return frame


def read_atomic(ds, files: RawFiles) -> RawData:
    """RecBole atomic data set: `<name>.inter` (+ `<name>.item` for text)."""
    path = files.path(ds.file)
    frame = _read_atomic(path)
    raw = frame_to_raw(frame, ds, path)
    if ds["items"].file:
        ipath = files.path(ds["items"].file)
        items = _read_atomic(ipath)
        require_columns(items, {"key": ds["items"].key, **{f"text_columns[{i}]": c for i, c in
                                                        enumerate(ds["items"].text_columns)}},
                        ipath, role="items")
        raw.items = items[[ds["items"].key, *ds["items"].text_columns]].rename(
            columns={ds["items"].key: "item"})
        raw.items["item"] = raw.items["item"].astype(str)
        raw.info["files"].append(str(ipath))
    return raw


def read_synthetic(ds, files: RawFiles) -> RawData:
    from recx.data import synthetic

    return synthetic.generate(ds.synthetic, ds.name)


READERS: dict[str, Reader] = {
    "auto": read_custom,
    "csv": read_custom,
    "tsv": read_custom,
    "parquet": read_custom,
    "jsonl": read_custom,
    "atomic": read_atomic,
    "synthetic": read_synthetic,
}


def get_reader(name: str) -> Reader:
    if name not in READERS:
        import difflib

        close = difflib.get_close_matches(name, READERS, n=1)
        raise ConfigError(f"unknown dataset.reader={name!r}"
                          + (f" — did you mean {close[0]!r}?" if close else ""),
                          hint=f"use one of {sorted(READERS)}")
    return READERS[name]
