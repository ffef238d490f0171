"""Tables of a user's own (`dataset=custom`, readers auto|csv|tsv|parquet|jsonl): any CSV, TSV,
Parquet or JSON-lines file through `dataset.columns.*`, streamed in chunks, with an optional
item file of text columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recx.data.canonical import RawData, check_not_empty, require_columns
from recx.data.layouts import fmt
from recx.data.rawfiles import RawFiles
from recx.data.readers.delimited import read_delimited, scan_csv
from recx.data.readers.jsonl import iter_json_lines, scan_json
from recx.data.readers.sink import Sink
from recx.data.readers.textio import csv_header, sniff_separator, text_encoding
from recx.errors import ConfigError, DataFormatError

NUMERIC_UNITS = ("s", "ms", "days")  # read as float64 on the fast path


def file_path(ds, files: RawFiles, name: str | None) -> Path:
    """The path of a configured file name (with `{category}` filled)."""
    return files.path(fmt(ds, name))


def read_custom(ds, files: RawFiles) -> RawData:
    """Any CSV/TSV/Parquet/JSON-lines file through dataset.columns.* (`reader: auto`),
    streamed in chunks."""
    path = files.path("main") if "main" in files.explicit else file_path(ds, files, ds.file)
    need_columns(ds)
    cols = ds.columns
    wanted = {"user": cols.user, "item": cols.item, "timestamp": cols.timestamp,
              "rating": cols.rating, "text": cols.text}
    usecols = list(dict.fromkeys(c for c in wanted.values() if c))
    sink = sink_for(ds, path)
    name = path.name.lower()
    if name.endswith(".parquet"):
        _scan_parquet(path, sink, wanted, usecols)
    elif name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".ndjson.gz")):
        _scan_json_table(path, sink, wanted, usecols, ds)
    else:
        encoding = text_encoding(path, (ds.options or {}).get("encoding"))
        sep = ds.sep
        if sep is None:
            sep = "\t" if path.suffix in (".tsv", ".tab") else sniff_separator(
                path, encoding=encoding)
        header = csv_header(path, sep, encoding)
        require_unique(header, path)
        require_columns(pd.DataFrame(columns=header), wanted, path)
        scan_csv(path, sink, sep=sep, usecols=usecols, ids=(cols.user, cols.item),
                 numeric=numeric_type_columns(ds, cols.timestamp, cols.rating),
                 strings=text_type_columns(ds, cols.timestamp),
                 newlines_in_values=bool((ds.options or {}).get("newlines_in_values", False)),
                 encoding=encoding, encoding_errors="strict")
    raw = sink.finish()
    check_not_empty(raw.interactions, path)
    if ds["items"].path or ds["items"].file:
        ipath = files.path("items") if "items" in files.explicit else file_path(
            ds, files, ds["items"].file)
        if not ds["items"].key:
            raise ConfigError("dataset.items.key is not set",
                              hint="name the item file's id column: dataset.items.key=<column>")
        items = read_items_table(ipath, ds["items"].key, list(ds["items"].text_columns),
                                 ds["items"].sep)
        raw.items = items if raw.items is None else raw.items.merge(items, on="item", how="outer")
        raw.info["files"].append(str(ipath))
    return raw


def _scan_parquet(path: Path, sink: Sink, wanted: dict, usecols: list[str]) -> None:
    """Row numbers stand in for lines (row 1 is the first)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        require_columns(pd.DataFrame(columns=pf.schema_arrow.names), wanted, path)
        line = 1
        for batch in pf.iter_batches(batch_size=1 << 20, columns=usecols):
            sink.add(batch, line)
            line += batch.num_rows
    except (pa.ArrowException, OSError) as e:
        raise DataFormatError(f"not a readable Parquet file ({str(e).splitlines()[0]})",
                              path=path, hint="the file is damaged or not Parquet: write it "
                              "again (or give a .csv/.jsonl file)") from None


def require_unique(header: list[str], path: Path) -> None:
    """Two columns of one name make `dataset.columns.*` ambiguous."""
    seen = set()
    for i, name in enumerate(header):
        if name in seen:
            raise DataFormatError(
                f"the header names column {name!r} twice (column {i + 1} repeats it)",
                path=path, line=1, hint="rename one of them in the file's first line")
        seen.add(name)


def _scan_json_table(path: Path, sink: Sink, wanted: dict, usecols: list[str], ds) -> None:
    """JSON lines with the configured fields; their types come from the first lines."""
    import pyarrow as pa


    seen: dict[str, set] = {}
    for k, (_, obj) in enumerate(iter_json_lines(path)):
        for key, v in obj.items():
            seen.setdefault(key, set()).add(type(v))
        if k >= 200:
            break
    if not seen:
        raise DataFormatError("the file is empty", path=path,
                              hint="point the dataset at a file with data rows")
    require_columns(pd.DataFrame(columns=list(seen)), wanted, path)
    fields = {}
    for c in usecols:
        kinds = seen.get(c, set()) - {type(None)}
        if kinds <= {int}:
            fields[c] = pa.int64()
        elif kinds <= {int, float}:
            fields[c] = pa.float64()
        elif kinds <= {str}:
            fields[c] = pa.string()
        else:  # nested or mixed: the Python path keeps it as text
            fields[c] = pa.string()
    scan_json(path, sink, fields)


def need_columns(ds) -> None:
    for key in ("user", "item", "timestamp"):
        if ds.columns[key] is None:
            raise ConfigError(f"dataset.columns.{key} is not set for dataset {ds.name!r}",
                              hint=f"name the column, e.g. dataset.columns.{key}=<column>")


def read_items_table(path: Path, key: str, text_columns, sep=None) -> pd.DataFrame:
    frame = _read_table(path, sep)
    require_columns(frame, {"key": key, **{f"text_columns[{i}]": c
                                           for i, c in enumerate(text_columns)}},
                    path, role="items")
    out = frame[[key, *text_columns]].rename(columns={key: "item"})
    out["item"] = out["item"].astype(str)
    return out


def _read_table(path: Path, sep: str | None) -> pd.DataFrame:
    """A small table read whole, by extension: .csv .tsv .txt .parquet .jsonl/.json[.gz]."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson")):

        frame = pd.DataFrame([obj for _, obj in iter_json_lines(path)])
        if frame.empty:
            raise DataFormatError("the file is empty", path=path,
                                  hint="point the dataset at a file with data rows")
        return frame
    return read_delimited(path, sep)


def sink_for(ds, path: Path, *, names: dict[str, str] | None = None, **kw) -> Sink:
    """A Sink over the configured columns (`names` maps canonical roles to frame columns)."""
    cols = ds.columns
    names = names or {}
    return Sink(path, user=names.get("user", cols.user), item=names.get("item", cols.item),
                ts=names.get("timestamp", cols.timestamp), unit=ds.timestamp.unit,
                rating=names.get("rating", cols.rating),
                text=[names.get("text", cols.text)] if cols.text else None,
                roles={"user": cols.user, "item": cols.item, "timestamp": cols.timestamp,
                       "rating": cols.rating}, **kw)


def text_type_columns(ds, ts_col: str | None) -> tuple[str, ...]:
    """The timestamp column as text when its unit is a date format (parsed by recx)."""
    if ts_col and ds.timestamp.unit not in (*NUMERIC_UNITS, "us", "ns"):
        return (ts_col,)
    return ()


def numeric_type_columns(ds, ts_col: str | None, rating_col: str | None) -> tuple[str, ...]:
    out = []
    if ts_col and ds.timestamp.unit in NUMERIC_UNITS:
        out.append(ts_col)
    if rating_col:
        out.append(rating_col)
    return tuple(out)
