"""Readers: one per raw format, each returning `RawData` (recx/data/canonical.py).

`READERS` is the explicit registry that `dataset.reader` names. Every reader streams large files
in chunks (`recx.data.readers.common`) and turns parser failures into a `DataFormatError`
naming the file, the line or column, and the fix. `get_reader` returns a callable that applies
the raw layout chosen by `recx.data.rawfiles` (e.g. ml_100k's official `u.data` layout reads
with `movielens` although the config's default reader is `atomic`), then passes the item text of
every reader through the one cleaning function (`recx.data.text_clean`).

| reader | format | module |
|---|---|---|
| auto, csv, tsv, parquet, jsonl | any table through `dataset.columns.*` | here |
| atomic | RecBole `.inter` (+ `.item`) with typed headers | here |
| movielens | ml-100k `u.data`, ml-1m `.dat`, ml-20m/25m/latest CSV | readers/movielens.py |
| amazon_json | Amazon 2014/2018 reviews, ratings-only CSV, metadata | readers/amazon.py |
| yelp_json | Yelp Open Dataset review + business JSON | readers/yelp.py |
| seq_pairs | aligned `user i1 i2 …` / `user t1 t2 …` text files (SASRec family) | readers/seq.py |
| diginetica | CIKM Cup 2016 `train-item-views.csv` | readers/others.py |
| tang_mat | Epinions / Ciao `rating_with_timestamp.mat` (Tang et al.) | readers/others.py |
| online_retail | UCI Online Retail `.xlsx` | readers/others.py |
| steam | UCSD Steam reviews + games (Python literals) | readers/others.py |
| lastfm_hetrec | Last.fm hetrec2011 tag assignments with timestamps | readers/others.py |
| foursquare_tsmc | Foursquare TSMC2014 NYC/TKY check-ins | readers/others.py |
| synthetic | the built-in generator | recx/data/synthetic.py |

Douban (movie, book, music) needs no reader of its own: `csv` with a tab separator.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recx.config.schema import text_fields_of
from recx.data.canonical import (
    RawData,
    check_ids,
    check_not_empty,
    parse_timestamps,
    require_columns,
)
from recx.data.layouts import fmt
from recx.data.rawfiles import RawFiles
from recx.data.readers.common import (  # noqa: F401 - re-exported for readers and tests
    Sink,
    csv_header,
    open_text,
    reading,
    scan_csv,
    scan_json,
    sniff_separator,
    text_encoding,
)
from recx.errors import ConfigError, DataFormatError

Reader = Callable[[object, RawFiles], RawData]

NUMERIC_UNITS = ("s", "ms", "days")  # read as float64 on the fast path
_LINE_RE = re.compile(r"line (\d+)")


# ------------------------------------------------------------------------------ helpers
def file_path(ds, files: RawFiles, name: str | None) -> Path:
    """The path of a configured file name (with `{category}` filled)."""
    return files.path(fmt(ds, name))


def read_delimited(path: Path, sep: str | None, usecols=None, header="infer",
                   names=None, dtype=None, comment=None) -> pd.DataFrame:
    """pandas.read_csv with recx errors (small side files: item tables, tags)."""
    path = Path(path)
    if sep is None:
        sep = "\t" if path.suffix in (".tsv", ".tab") else sniff_separator(path)
    try:
        with reading(path):
            return pd.read_csv(path, sep=sep, usecols=usecols, header=header, names=names,
                               dtype=dtype, comment=comment, engine="c", low_memory=False,
                               encoding_errors="replace")
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
    """A small table read whole, by extension: .csv .tsv .txt .parquet .jsonl/.json[.gz]."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson")):
        from recx.data.readers.common import iter_json_lines

        frame = pd.DataFrame([obj for _, obj in iter_json_lines(path)])
        if frame.empty:
            raise DataFormatError("the file is empty", path=path,
                                  hint="point the dataset at a file with data rows")
        return frame
    return read_delimited(path, ds.sep)


def frame_to_raw(frame: pd.DataFrame, ds, path: Path, line_offset: int = 2) -> RawData:
    """Map configured columns of an in-memory frame to the canonical ones (small files)."""
    cols = ds.columns
    wanted = {"user": cols.user, "item": cols.item, "timestamp": cols.timestamp,
              "rating": cols.rating, "text": cols.text}
    _need_columns(ds)
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


def _need_columns(ds) -> None:
    for key in ("user", "item", "timestamp"):
        if ds.columns[key] is None:
            raise ConfigError(f"dataset.columns.{key} is not set for dataset {ds.name!r}",
                              hint=f"name the column, e.g. dataset.columns.{key}=<column>")


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


# ------------------------------------------------------------------------------ custom tables
def read_custom(ds, files: RawFiles) -> RawData:
    """Any CSV/TSV/Parquet/JSON-lines file through dataset.columns.* (`reader: auto`),
    streamed in chunks."""
    path = files.path("main") if "main" in files.explicit else file_path(ds, files, ds.file)
    _need_columns(ds)
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

    from recx.data.readers.common import iter_json_lines

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


# ------------------------------------------------------------------------------ RecBole atomic
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
    _need_columns(ds)
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


def read_synthetic(ds, files: RawFiles) -> RawData:
    from recx.data import synthetic

    return synthetic.generate(ds.synthetic, ds.name)


# ------------------------------------------------------------------------------ registry
def _registry() -> dict[str, Reader]:
    from recx.data.readers import amazon, movielens, others, seq, yelp

    return {
        "auto": read_custom,
        "csv": read_custom,
        "tsv": read_custom,
        "parquet": read_custom,
        "jsonl": read_custom,
        "atomic": read_atomic,
        "movielens": movielens.read_movielens,
        "amazon_json": amazon.read_amazon,
        "yelp_json": yelp.read_yelp,
        "seq_pairs": seq.read_seq_pairs,
        "diginetica": others.read_diginetica,
        "tang_mat": others.read_tang_mat,
        "online_retail": others.read_online_retail,
        "steam": others.read_steam,
        "lastfm_hetrec": others.read_lastfm,
        "foursquare_tsmc": others.read_foursquare,
        "synthetic": read_synthetic,
    }


READERS: dict[str, Reader] = _registry()


def get_reader(name: str) -> Reader:
    """The reader that `dataset.reader` names, wrapped to honour the resolved layout and to
    clean item text the same way for every data set."""
    _check_name(name)

    def read(ds, files: RawFiles) -> RawData:
        view = files.view if getattr(files, "view", None) is not None else ds
        _check_name(view.reader)
        raw = READERS[view.reader](view, files)
        if view.reader != "synthetic":  # generated text is clean by construction
            finish_items(raw, view)
        raw.info["layout"] = getattr(files, "layout", "default")
        return raw

    return read


def _check_name(name: str) -> None:
    if name not in READERS:
        import difflib

        close = difflib.get_close_matches(name, READERS, n=1)
        raise ConfigError(f"unknown dataset.reader={name!r}"
                          + (f" — did you mean {close[0]!r}?" if close else ""),
                          hint=f"use one of {sorted(READERS)}")


def finish_items(raw: RawData, ds) -> None:
    """Rename item-text columns (`options.text_names`), clean them, count items with text."""
    from recx.data.text_clean import DEFAULT_MAX_CHARS, clean_item_frame, has_text

    opts = ds.options or {}
    items = raw.items
    if items is not None:
        rename = {str(k): str(v) for k, v in (opts.get("text_names") or {}).items()}
        if rename:
            items = items.rename(columns=rename)
        items = clean_item_frame(items, int(opts.get("text_max_chars", DEFAULT_MAX_CHARS)))
        raw.items = items
    fields = text_fields_of(ds)
    inter_items = raw.interactions["item"]
    if isinstance(inter_items.dtype, pd.CategoricalDtype):
        ids = inter_items.cat.categories.astype(str)
    else:
        ids = pd.Index(pd.unique(inter_items.astype(str)))
    with_text = 0
    if items is not None and fields:
        known = items.loc[has_text(items, fields), "item"]
        with_text = int(ids.isin(known.astype(str)).sum())
    raw.info["items_read"] = len(ids)
    raw.info["items_with_text_read"] = with_text
