"""Yelp Open Dataset: `yelp_academic_dataset_review.json` + `…_business.json` (JSON lines).

The review file (5 GB and more) streams through pyarrow's JSON reader with an explicit schema
of four fields (`user_id`, `business_id`, `stars`, `date`), so the review texts are never
materialised and memory stays proportional to the interactions. `options.date_from` /
`options.date_to` (ISO dates, inclusive; null = open) keep a period, e.g. the 2019 reviews of
the TiCoSeRec "Yelp-A" benchmark. Item text: business `name` and `categories`.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from recx.data.canonical import RawData, check_not_empty
from recx.data.layouts import fmt
from recx.data.rawfiles import RawFiles
from recx.data.readers.jsonl import iter_json_lines, scan_json
from recx.data.readers.sink import Sink


def read_yelp(ds, files: RawFiles) -> RawData:
    path = files.path(fmt(ds, ds.file))
    cols = ds.columns
    user, item = cols.user or "user_id", cols.item or "business_id"
    ts, rating = cols.timestamp or "date", cols.rating
    opts = ds.options or {}
    lo, hi = opts.get("date_from"), opts.get("date_to")

    def in_period(df: pd.DataFrame) -> pd.DataFrame:
        d = df[ts].astype(str)  # ISO text compares like the dates it spells
        keep = pd.Series(True, index=df.index)
        if lo:
            keep &= d >= str(lo)
        if hi:
            keep &= d.str[: len(str(hi))] <= str(hi)
        return df[keep.to_numpy()]

    fields = {user: pa.string(), item: pa.string(), ts: pa.string()}
    if rating:
        fields[rating] = pa.float64()
    sink = Sink(path, user=user, item=item, ts=ts, unit=ds.timestamp.unit, rating=rating,
                transform=in_period if (lo or hi) else None)
    scan_json(path, sink, fields)
    raw = sink.finish(info={"period": [lo, hi]} if (lo or hi) else None)
    check_not_empty(raw.interactions, path)
    ispec = ds["items"]
    if ispec.file and files.exists(fmt(ds, ispec.file)):
        bpath = files.path(fmt(ds, ispec.file))
        wanted = set(raw.interactions["item"].cat.categories.astype(str))
        key = ispec.key or "business_id"
        text_cols = list(ispec.text_columns) or ["name", "categories"]
        rows = []
        for _, obj in iter_json_lines(bpath):
            k = obj.get(key)
            if k is not None and str(k) in wanted:
                rows.append({"item": str(k), **{c: _categories(obj.get(c)) for c in text_cols}})
        raw.items = pd.DataFrame(rows, columns=["item", *text_cols])
        raw.info["files"].append(str(bpath))
    return raw


def _categories(v):
    """Yelp spells categories as one comma-separated string: make it a list."""
    if isinstance(v, str) and ", " in v:
        return [c.strip() for c in v.split(",")]
    return v
