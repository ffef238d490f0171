"""RecBole atomic files (`<name>.inter` + optional `<name>.item`) with typed headers
(`field:token`, `field:float`, ...)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recx.data.canonical import RawData, check_not_empty, require_columns
from recx.data.layouts import fmt
from recx.data.rawfiles import RawFiles
from recx.data.readers.delimited import scan_csv
from recx.data.readers.tables import (
    file_path,
    need_columns,
    numeric_type_columns,
    sink_for,
    text_type_columns,
)
from recx.data.readers.textio import csv_header, reading
from recx.errors import DataFormatError

_ATOMIC_TYPES = {"token": str, "float": "float64", "token_seq": str, "float_seq": str}


def atomic_header(path: Path) -> dict[str, tuple[str, str]]:
    """RecBole header fields: name → (full header text, type)."""
    header = csv_header(path, "\t")
    out = {}
    for h in header:
        name, _, typ = h.partition(":")
        if typ not in _ATOMIC_TYPES:
            raise DataFormatError(f"header field {h!r} has no RecBole type (name:token|float|...)",
                                  path=path, line=1, hint="use a RecBole atomic file")
        out[name] = (h, typ)
    return out


def _read_atomic(path: Path) -> pd.DataFrame:
    """A whole RecBole atomic file (small side files such as `.item`)."""
    import csv

    fields = atomic_header(path)
    names = list(fields)
    dtypes = {n: _ATOMIC_TYPES[t] for n, (_, t) in fields.items()}
    with reading(path):
        return pd.read_csv(path, sep="\t", header=0, names=names, dtype=dtypes, engine="c",
                           quoting=csv.QUOTE_NONE, encoding_errors="replace")


def read_atomic(ds, files: RawFiles) -> RawData:
    """RecBole atomic data set: `<name>.inter` (+ `<name>.item` for text, when present)."""
    path = file_path(ds, files, ds.file)
    fields = atomic_header(path)
    need_columns(ds)
    cols = ds.columns
    wanted = {"user": cols.user, "item": cols.item, "timestamp": cols.timestamp,
              "rating": cols.rating}
    require_columns(pd.DataFrame(columns=list(fields)), wanted, path)
    full = {k: fields[v][0] for k, v in wanted.items() if v}
    sink = sink_for(ds, path, names={k: full[k] for k in full})
    scan_csv(path, sink, sep="\t", usecols=list(full.values()),
             ids=(full["user"], full["item"]),
             numeric=numeric_type_columns(ds, full["timestamp"], full.get("rating")),
             strings=text_type_columns(ds, full["timestamp"]), quoted=False)
    raw = sink.finish()
    check_not_empty(raw.interactions, path)
    ispec = ds["items"]
    if ispec.file and files.exists(fmt(ds, ispec.file)):
        ipath = file_path(ds, files, ispec.file)
        items = _read_atomic(ipath)
        key = ispec.key or items.columns[0]
        text_cols = list(ispec.text_columns) or [
            n for n, (_, t) in atomic_header(ipath).items() if n != key and t != "float"]
        require_columns(items, {"key": key, **{f"text_columns[{i}]": c for i, c in
                                               enumerate(text_cols)}}, ipath, role="items")
        raw.items = items[[key, *text_cols]].rename(columns={key: "item"})
        raw.items["item"] = raw.items["item"].astype(str)
        raw.info["files"].append(str(ipath))
    return raw
