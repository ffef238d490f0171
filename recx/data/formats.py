"""Readers: one per raw format, each returning `RawData` (recx/data/canonical.py).

`READERS` is the explicit registry that `dataset.reader` names. Every reader streams large files
in chunks into a sink (`recx.data.readers.sink`) and turns parser failures into a
`DataFormatError` naming the file, the line or column, and the fix. `get_reader` returns a
callable that applies the raw layout chosen by `recx.data.rawfiles` (e.g. ml_100k's official
`u.data` layout reads with `movielens` although the config's default reader is `atomic`), then
passes the item text of every reader through the one cleaning function (`recx.data.text_clean`).

| reader | format | module |
|---|---|---|
| auto, csv, tsv, parquet, jsonl | any table through `dataset.columns.*` | readers/tables.py |
| atomic | RecBole `.inter` (+ `.item`) with typed headers | readers/atomic.py |
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
The readers' building blocks: `readers/textio.py` (files, encodings, delimiters),
`readers/ids.py` (id encoding), `readers/sink.py` (chunks → RawData), and one module per
text format (`readers/delimited.py`, `readers/jsonl.py`, `readers/literal.py`).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from recx.config.schema import text_fields_of
from recx.data.canonical import RawData
from recx.data.rawfiles import RawFiles
from recx.data.readers import amazon, atomic, movielens, others, seq, tables, yelp
from recx.errors import ConfigError

Reader = Callable[[object, RawFiles], RawData]


def read_synthetic(ds, files: RawFiles) -> RawData:
    from recx.data import synthetic

    return synthetic.generate(ds.synthetic, ds.name)


READERS: dict[str, Reader] = {
    "auto": tables.read_custom,
    "csv": tables.read_custom,
    "tsv": tables.read_custom,
    "parquet": tables.read_custom,
    "jsonl": tables.read_custom,
    "atomic": atomic.read_atomic,
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
