"""Delimited text (CSV, TSV, ...): large files streamed in chunks into a sink, small side files
(item tables, tags) read whole; parser failures become errors naming the file and the line."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa

from recx.data.readers.sink import PY_CHUNK_ROWS
from recx.data.readers.textio import (
    csv_header,
    estimate_rows,
    first_undecodable,
    locate_bad_row,
    reading,
    sniff_separator,
)
from recx.errors import DataFormatError

CSV_BLOCK = 1 << 20  # bytes per pyarrow CSV block; its reader keeps many blocks in flight


def scan_csv(path: Path, sink, *, sep: str | None = None, header: bool = True,
             names: list[str] | None = None, usecols: list[str],
             ids: tuple[str, ...] = (), numeric: tuple[str, ...] = (),
             strings: tuple[str, ...] = (), encoding: str = "utf-8", quoted: bool = True,
             newlines_in_values: bool = False, null_ids: tuple[str, ...] = (),
             encoding_errors: str = "replace") -> None:
    """Feed `path` to `sink.add(chunk, first_line)` in chunks (pyarrow; pandas fallback).

    `ids` columns are read as dictionary-encoded text, `numeric` ones as float64 and `strings`
    as text (dates are parsed by `to_seconds`, not guessed by pyarrow) on the fast path;
    `null_ids` are id spellings that mean "no id" (e.g. NA). A row pyarrow cannot parse sends
    the whole file through pandas' chunked reader, whose errors carry line numbers.
    `encoding_errors="strict"` (a user's own file) reports bytes that do not decode, with their
    line, instead of replacing them (two ids that differ only there would become one).
    """
    import pyarrow.csv as pacsv

    path = Path(path)
    if sep is None:
        sep = "\t" if path.suffix in (".tsv", ".tab") else sniff_separator(path)
    cols = csv_header(path, sep, encoding) if header else list(names or [])
    n_fields = len(cols)
    first_data_line = 2 if header else 1
    if len(sep) == 1:
        types = {c: pa.string() for c in ids}  # hashed once, by IdCodes
        types.update({c: pa.float64() for c in numeric})
        types.update({c: pa.string() for c in strings})  # parsed by us (dates, text)
        ropts = pacsv.ReadOptions(block_size=CSV_BLOCK, encoding=_arrow_encoding(encoding),
                                  column_names=None if header else cols)
        popts = pacsv.ParseOptions(delimiter=sep, quote_char='"' if quoted else False,
                                   newlines_in_values=newlines_in_values)
        # NA, NaN, null and empty fields are missing values (as pandas reads them): an empty
        # id is then reported, never kept as an id of its own
        copts = pacsv.ConvertOptions(include_columns=usecols, column_types=types,
                                     strings_can_be_null=True,
                                     null_values=["", "NA", "N/A", "NaN", "nan", "null", "NULL"],
                                     quoted_strings_can_be_null=False)
        try:
            with reading(path):
                reader = pacsv.open_csv(path, read_options=ropts, parse_options=popts,
                                        convert_options=copts)
                line = first_data_line
                for batch in reader:
                    if line == first_data_line and batch.num_rows:
                        sink.reserve(estimate_rows(path, batch.num_rows, CSV_BLOCK))
                    sink.add(_null_ids(batch.to_pandas(), ids, null_ids) if null_ids else batch,
                             line)
                    line += batch.num_rows
            return
        except DataFormatError:
            raise
        except (pa.ArrowInvalid, pa.ArrowException, UnicodeDecodeError):
            sink.reset()  # some row is beyond pyarrow: redo the file with pandas
    _scan_csv_pandas(path, sink, sep=sep, header=header, cols=cols, usecols=usecols, ids=ids,
                     encoding=encoding, quoted=quoted, n_fields=n_fields, null_ids=null_ids,
                     first_data_line=first_data_line, encoding_errors=encoding_errors)


def _arrow_encoding(encoding: str) -> str:
    return "utf8" if encoding.lower().replace("-", "") == "utf8" else encoding


def _null_ids(df: pd.DataFrame, ids, null_ids) -> pd.DataFrame:
    if not null_ids:
        return df
    for c in ids:
        if c in df.columns:
            col = df[c]
            if isinstance(col.dtype, pd.CategoricalDtype):
                hit = [v for v in null_ids if v in col.cat.categories]
                if hit:
                    df[c] = col.cat.remove_categories(hit)
            else:
                df[c] = col.where(~col.isin(null_ids))
    return df


_PANDAS_LINE = re.compile(r"line (\d+)")


def _scan_csv_pandas(path, sink, *, sep, header, cols, usecols, ids, encoding, quoted,
                     n_fields, null_ids, first_data_line, encoding_errors="replace") -> None:
    # no usecols: pandas then checks every row's field count (and names the bad line)
    kw = dict(sep=sep, header=0 if header else None, names=None if header else cols,
              dtype={c: str for c in ids}, chunksize=PY_CHUNK_ROWS,
              encoding=encoding, encoding_errors=encoding_errors, keep_default_na=False,
              na_values=["", "NA", "N/A", "NaN", "nan", "null", "NULL"],
              quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    if len(sep) > 1:
        kw["engine"] = "python"
    line = first_data_line
    try:
        with reading(path):
            for chunk in pd.read_csv(path, **kw):
                chunk = chunk[usecols].reset_index(drop=True)
                sink.add(_null_ids(chunk, ids, null_ids), line)
                line += len(chunk)
    except pd.errors.EmptyDataError:
        raise DataFormatError("the file is empty", path=path,
                              hint="point the dataset at a file with a header and data rows"
                              ) from None
    except UnicodeDecodeError as e:
        raise (first_undecodable(path, encoding) or DataFormatError(
            f"not valid {encoding} text ({e.reason})", path=path,
            hint="name the file's encoding: +dataset.options.encoding=<codec>")) from None
    except pd.errors.ParserError as e:
        m = _PANDAS_LINE.search(str(e))
        where, what = (int(m.group(1)), str(e).splitlines()[-1].strip()) if m else \
            locate_bad_row(path, sep, n_fields, header=header, encoding=encoding)
        raise DataFormatError(
            f"malformed row: {what}", path=path, line=where,
            hint=f"fix or remove that row, or set dataset.sep if the delimiter is not {sep!r}",
        ) from None


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
        m = _PANDAS_LINE.search(str(e))
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
