"""Amazon review data, 2014 (He & McAuley) and 2018 (Ni, Li & McAuley), for any category.

Interactions (`dataset.file`):

- review JSON lines, plain or gzip (`reviews_<Cat>_5.json.gz` in 2014, `<Cat>_5.json.gz` in
  2018): `reviewerID`, `asin`, `overall`, `unixReviewTime` (names through `dataset.columns`);
  every other field (review text, images, style) is skipped by the parser;
- the header-less ratings-only CSV (`options.csv_columns` gives the column order:
  `item,user,rating,timestamp` in 2018, `user,item,rating,timestamp` in 2014).

Metadata (`dataset.items.file`, optional): 2018 files are JSON lines; 2014 files are Python
literals (`{'asin': '…', 'categories': [[…]]}`) read with `ast.literal_eval`. Only the records of
items that occur in the interactions are parsed (a regular expression reads the `asin` first).
Text fields: `title`, `brand`, `category` (2018 `category`, 2014 `categories`, flattened),
`description`. Duplicate records of one asin (frequent in 2018) are merged field by field,
first non-empty value first.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from recx.data.canonical import RawData, check_not_empty
from recx.data.layouts import fmt
from recx.data.rawfiles import RawFiles
from recx.data.readers.delimited import scan_csv
from recx.data.readers.jsonl import scan_json
from recx.data.readers.literal import iter_literal_records
from recx.data.readers.sink import Sink

TEXT_FIELDS = ("title", "brand", "category", "description")
_META_KEYS = {"title": ("title",), "brand": ("brand",), "category": ("category", "categories"),
              "description": ("description",)}


def read_amazon(ds, files: RawFiles) -> RawData:
    path = files.path(fmt(ds, ds.file))
    opts = ds.options or {}
    cols = ds.columns
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        order = [str(c) for c in (opts.get("csv_columns")
                                  or ["item", "user", "rating", "timestamp"])]
        sink = Sink(path, user="user", item="item", ts="timestamp", unit="s", rating="rating")
        scan_csv(path, sink, sep=",", header=False, names=order,
                 usecols=["user", "item", "rating", "timestamp"], ids=("user", "item"),
                 numeric=("rating", "timestamp"))
    else:
        user, item = cols.user or "reviewerID", cols.item or "asin"
        ts, rating = cols.timestamp or "unixReviewTime", cols.rating
        fields = {user: pa.string(), item: pa.string(), ts: pa.float64()}
        if rating:
            fields[rating] = pa.float64()
        sink = Sink(path, user=user, item=item, ts=ts, unit=ds.timestamp.unit, rating=rating)
        scan_json(path, sink, fields)
    raw = sink.finish()
    check_not_empty(raw.interactions, path)
    ispec = ds["items"]
    if ispec.file and files.exists(fmt(ds, ispec.file)):
        mpath = files.path(fmt(ds, ispec.file))
        wanted = set(raw.interactions["item"].cat.categories.astype(str))
        raw.items = read_meta(mpath, wanted, key=ispec.key or "asin")
        raw.info["files"].append(str(mpath))
        raw.info["meta_records"] = len(raw.items)
    return raw


def read_meta(path, wanted: set[str] | None, key: str = "asin") -> pd.DataFrame:
    """item + the text fields of the metadata records of `wanted` items (all if None)."""
    merged: dict[str, dict] = {}
    for _, obj in iter_literal_records(path, key, wanted):
        k = obj.get(key)
        if k is None:
            continue
        k = str(k)
        if wanted is not None and k not in wanted:
            continue
        rec = merged.setdefault(k, {})
        for field, keys in _META_KEYS.items():
            if _empty(rec.get(field)):
                for src in keys:
                    if not _empty(obj.get(src)):
                        rec[field] = obj[src]
                        break
    rows = [{"item": k, **{f: rec.get(f) for f in TEXT_FIELDS}} for k, rec in merged.items()]
    return pd.DataFrame(rows, columns=["item", *TEXT_FIELDS])


def _empty(v) -> bool:
    return v is None or v == "" or v == [] or v == [[]]
