"""Readers of the remaining official formats.

- `diginetica`: CIKM Cup 2016 `train-item-views.csv` (`;`: session, user, item, timeframe,
  eventdate). The session is the "user" by default (`options.user: session`; most views have no
  user id); the time is the event date plus `timeframe` milliseconds into the session.
- `tang_mat`: Epinions / Ciao with timestamps (Tang, Gao & Liu, KDD 2012):
  `rating_with_timestamp.mat`, a MATLAB matrix of rows (user, product, category, rating,
  helpfulness, time). The variable is found by shape (`options.variable` forces one).
- `online_retail`: UCI Online Retail `.xlsx` (customer × StockCode purchases; cancellations,
  non-positive quantities and rows without a customer are dropped and counted).
- `steam`: UCSD Steam reviews + games (Kang & McAuley, ICDM 2018), both Python-literal lines.
- `lastfm_hetrec`: Last.fm hetrec2011: tag assignments with timestamps (user tags artist at t);
  text = artist name + the artist's most used tags.
- `foursquare_tsmc`: Foursquare TSMC2014 NYC/TKY check-ins (Yang et al., 2015); text = venue
  category.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recx.data.canonical import RawData, check_not_empty
from recx.data.layouts import fmt
from recx.data.rawfiles import RawFiles
from recx.data.readers.delimited import scan_csv
from recx.data.readers.literal import iter_literal_fields, iter_literal_records
from recx.data.readers.sink import PY_CHUNK_ROWS, Sink
from recx.data.readers.textio import csv_header, open_text, reading
from recx.errors import DataFormatError


def _path(ds, files: RawFiles, name: str | None) -> Path:
    return files.path(fmt(ds, name))


def _optional(ds, files: RawFiles, name: str | None) -> Path | None:
    if not name:
        return None
    name = fmt(ds, name)
    return files.path(name) if files.exists(name) else None


# ------------------------------------------------------------------------------ Diginetica
def read_diginetica(ds, files: RawFiles) -> RawData:
    path = _path(ds, files, ds.file)
    header = csv_header(path, ";")
    # the full release spells sessionId;userId;itemId;timeframe;eventdate, the SR-GNN sample
    # session_id;user_id;item_id;timeframe;eventdate
    low = {h.lower().replace("_", ""): h for h in header}
    try:
        session, user, item = low["sessionid"], low["userid"], low["itemid"]
        timeframe, date = low["timeframe"], low["eventdate"]
    except KeyError as e:
        raise DataFormatError(f"column {e.args[0]!r} not found; the file has columns {header}",
                              path=path, hint="use the official train-item-views.csv") from None
    by_user = str((ds.options or {}).get("user", "session")) == "user"
    who = user if by_user else session
    sink = Sink(path, user=who, item=item, ts=date, unit="%Y-%m-%d", ts_offset=timeframe,
                ts_offset_scale=1e-3,
                transform=(lambda df: df[df[user].notna().to_numpy()]) if by_user else None)
    scan_csv(path, sink, sep=";", usecols=[who, item, timeframe, date], ids=(who, item),
             numeric=(timeframe,), strings=(date,), null_ids=("NA",))
    raw = sink.finish(info={"user_is": "user" if by_user else "session"})
    check_not_empty(raw.interactions, path)
    return raw


# ------------------------------------------------------------------------------ Epinions, Ciao
MAT_COLUMNS = ["user", "item", "category", "rating", "helpfulness", "ts"]


def read_tang_mat(ds, files: RawFiles) -> RawData:
    from scipy.io import loadmat

    path = _path(ds, files, ds.file)
    opts = ds.options or {}
    names = [str(c) for c in (opts.get("mat_columns") or MAT_COLUMNS)]
    try:
        with reading(path):
            mat = loadmat(path)
    except NotImplementedError:
        raise DataFormatError("MATLAB v7.3 (HDF5) files are not supported", path=path,
                              hint="re-save it with MATLAB/Octave as -v7, or use the file of "
                              "the official archive") from None
    except (ValueError, TypeError) as e:
        raise DataFormatError(f"not a MATLAB .mat file ({e})", path=path,
                              hint="use rating_with_timestamp.mat from the official archive"
                              ) from None
    var = opts.get("variable")
    arrays = {k: v for k, v in mat.items() if not k.startswith("__") and hasattr(v, "ndim")}
    if var:
        if var not in arrays:
            raise DataFormatError(f"variable {var!r} not found; the file has {sorted(arrays)}",
                                  path=path, hint="set dataset.options.variable to one of them")
        arr = arrays[var]
    else:
        cands = [v for v in arrays.values() if v.ndim == 2 and v.shape[1] >= len(names)]
        if len(cands) != 1:
            raise DataFormatError(f"expected one matrix with >= {len(names)} columns, found "
                                  f"{ {k: v.shape for k, v in arrays.items()} }", path=path,
                                  hint="set dataset.options.variable=<name>")
        arr = cands[0]
    frame = pd.DataFrame(np.asarray(arr)[:, :len(names)], columns=names)
    sink = Sink(path, user="user", item="item", ts="ts", unit=ds.timestamp.unit,
                rating="rating")
    frame["user"] = frame["user"].astype(np.int64)
    frame["item"] = frame["item"].astype(np.int64)
    sink.add(frame, 1)
    raw = sink.finish()
    check_not_empty(raw.interactions, path)
    return raw


# ------------------------------------------------------------------------------ Online Retail
def _require_openpyxl(path) -> None:
    """Workbooks need openpyxl, an optional extra: only this reader uses it."""
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise DataFormatError("reading an .xlsx workbook needs the openpyxl package", path=path,
                              hint='pip install "recx[xlsx]" (or pip install openpyxl); or '
                              "save the sheet as CSV and point dataset.file at it") from None


def read_online_retail(ds, files: RawFiles) -> RawData:
    path = _path(ds, files, ds.file)
    opts = ds.options or {}
    cols = {"user": "CustomerID", "item": "StockCode", "timestamp": "InvoiceDate"}
    cols.update({k: v for k, v in {"user": ds.columns.user, "item": ds.columns.item,
                                   "timestamp": ds.columns.timestamp}.items() if v})
    text = "Description"
    try:
        with reading(path):
            if path.suffix.lower() in (".xlsx", ".xls"):
                _require_openpyxl(path)
                frame = pd.read_excel(path, engine="openpyxl" if path.suffix == ".xlsx" else None,
                                      dtype={"InvoiceNo": str, "StockCode": str})
            else:
                frame = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str},
                                    encoding_errors="replace")
    except (ValueError, KeyError, OSError) as e:
        if isinstance(e, DataFormatError):
            raise
        raise DataFormatError(f"cannot read the workbook ({e})", path=path,
                              hint="use 'Online Retail.xlsx' from the UCI archive") from None
    from recx.data.canonical import require_columns

    require_columns(frame, {**cols, "text": text}, path)
    n = len(frame)
    keep = frame[cols["user"]].notna().to_numpy().copy()
    if opts.get("drop_cancellations", True) and "InvoiceNo" in frame:
        keep &= ~frame["InvoiceNo"].astype(str).str.upper().str.startswith("C").to_numpy()
    if opts.get("min_quantity") is not None and "Quantity" in frame:
        keep &= (pd.to_numeric(frame["Quantity"], errors="coerce") >= float(
            opts["min_quantity"])).to_numpy()
    frame = frame[keep].reset_index(drop=True)
    user = pd.to_numeric(frame[cols["user"]], errors="coerce")
    frame["_user"] = np.where(user.notna(), user.round().astype("Int64").astype(str),
                              frame[cols["user"]].astype(str))
    frame["_item"] = frame[cols["item"]].astype(str).str.strip().str.upper()
    sink = Sink(path, user="_user", item="_item", ts=cols["timestamp"],
                unit=ds.timestamp.unit, text=[text])
    sink.add(frame, 2)
    raw = sink.finish(info={"rows": n, "rows_skipped": int(n - len(frame))})
    check_not_empty(raw.interactions, path)
    raw.items = raw.items.rename(columns={text: "description"}) if raw.items is not None \
        else None
    return raw


# ------------------------------------------------------------------------------ Steam
def read_steam(ds, files: RawFiles) -> RawData:
    path = _path(ds, files, ds.file)
    opts = ds.options or {}
    ufield = str(opts.get("user_field", "username"))
    ifield = str(opts.get("item_field", "product_id"))
    tfield = str(opts.get("time_field", "date"))
    sink = Sink(path, user=ufield, item=ifield, ts=tfield, unit=ds.timestamp.unit)
    rows: dict[str, list] = {ufield: [], ifield: [], tfield: []}
    first = None
    for no, rec in iter_literal_fields(path, [ufield, ifield, tfield]):
        first = first or no
        for k in rows:
            rows[k].append(None if rec.get(k) is None else str(rec.get(k)))
        if len(rows[ufield]) >= PY_CHUNK_ROWS:
            sink.add(pd.DataFrame(rows), first)
            rows, first = {k: [] for k in rows}, None
    if rows[ufield]:
        sink.add(pd.DataFrame(rows), first)
    raw = sink.finish()
    check_not_empty(raw.interactions, path)
    gpath = _optional(ds, files, ds["items"].file)
    if gpath is not None:
        wanted = set(raw.interactions["item"].cat.categories.astype(str))
        key = ds["items"].key or "id"
        out = []
        for _, obj in iter_literal_records(gpath, key, wanted):
            if str(obj.get(key)) in wanted:
                out.append({"item": str(obj.get(key)),
                            "title": obj.get("app_name") or obj.get("title"),
                            "genres": obj.get("genres"), "tags": obj.get("tags"),
                            "developer": obj.get("developer")})
        raw.items = pd.DataFrame(out, columns=["item", "title", "genres", "tags", "developer"])
        raw.info["files"].append(str(gpath))
    return raw


# ------------------------------------------------------------------------------ Last.fm
def _small_table(path: Path, sep: str = "\t") -> pd.DataFrame:
    """A small side file, UTF-8 when it is, Latin-1 otherwise (hetrec files mix both)."""
    for enc in ("utf-8", "latin-1"):
        try:
            with reading(path):
                return pd.read_csv(path, sep=sep, dtype=str, encoding=enc, quoting=3,
                                   keep_default_na=False)
        except UnicodeDecodeError:
            continue
    raise DataFormatError("cannot decode the file", path=path, hint="expected UTF-8 or Latin-1")


def read_lastfm(ds, files: RawFiles) -> RawData:
    path = _path(ds, files, ds.file)
    header = csv_header(path, "\t")
    need = ["userID", "artistID", "tagID", "timestamp"]
    missing = [c for c in need if c not in header]
    if missing:
        raise DataFormatError(f"column {missing[0]!r} not found; the file has columns {header}",
                              path=path, hint="use user_taggedartists-timestamps.dat")
    sink = Sink(path, user="userID", item="artistID", ts="timestamp", unit=ds.timestamp.unit)
    scan_csv(path, sink, sep="\t", usecols=["userID", "artistID", "timestamp"],
             ids=("userID", "artistID"), numeric=("timestamp",), quoted=False)
    raw = sink.finish()
    check_not_empty(raw.interactions, path)
    apath = _optional(ds, files, ds["items"].file)
    if apath is not None:
        artists = _small_table(apath)
        items = pd.DataFrame({"item": artists["id"].astype(str), "name": artists["name"]})
        tpath = _optional(ds, files, (ds.options or {}).get("tags_file"))
        if tpath is not None:
            tags = _small_table(tpath).set_index("tagID")["tagValue"]
            assign = _small_table(path)[["artistID", "tagID"]]
            counts = assign.value_counts(sort=False).reset_index(name="n")
            counts = counts.sort_values(["artistID", "n"], ascending=[True, False],
                                        kind="stable")
            top = counts.groupby("artistID", sort=False).head(
                int((ds.options or {}).get("top_tags", 10)))
            top = top.assign(tag=top["tagID"].map(tags))
            lists = top.groupby("artistID", sort=False)["tag"].agg(list)
            items["tags"] = items["item"].map(lists)
            raw.info["files"].append(str(tpath))
        raw.items = items
        raw.info["files"].append(str(apath))
    return raw


# ------------------------------------------------------------------------------ Foursquare
FOURSQUARE_COLUMNS = ["user", "venue", "category_id", "category", "lat", "lon", "tz_offset",
                      "utc_time"]


def read_foursquare(ds, files: RawFiles) -> RawData:
    path = _path(ds, files, ds.file)
    with reading(path), open_text(path) as f:
        first = f.readline()
    if not first.strip():
        raise DataFormatError("the file is empty", path=path,
                              hint="use dataset_TSMC2014_NYC.txt or dataset_TSMC2014_TKY.txt")
    if len(first.rstrip("\r\n").split("\t")) != len(FOURSQUARE_COLUMNS):
        raise DataFormatError(f"expected {len(FOURSQUARE_COLUMNS)} tab-separated fields, saw "
                              f"{len(first.split(chr(9)))}", path=path, line=1,
                              hint="use the official TSMC2014 check-in file")
    sink = Sink(path, user="user", item="venue", ts="utc_time", unit=ds.timestamp.unit,
                text=["category"])
    scan_csv(path, sink, sep="\t", header=False, names=FOURSQUARE_COLUMNS,
             usecols=["user", "venue", "category", "utc_time"], ids=("user", "venue"),
             strings=("category", "utc_time"), quoted=False)
    raw = sink.finish()
    check_not_empty(raw.interactions, path)
    return raw
