"""The per-user sequence text format of SASRec-family repositories.

`dataset.file` holds one user per line, `user i1 i2 …` in chronological order;
`options.time_file` (optional) holds the aligned `user t1 t2 …` (unix seconds) with the same
user on the same line and as many times as items (TiCoSeRec's `*_item_org_rank.txt` and
`*_time_org_rank.txt`). Without a time file the timestamps are the positions 0, 1, 2, … (order
only: models that need real time must not use such a domain). Any misalignment is an error that
names the line.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from recx.data.canonical import RawData, check_not_empty
from recx.data.layouts import fmt
from recx.data.rawfiles import RawFiles
from recx.data.readers.sink import PY_CHUNK_ROWS, Sink
from recx.data.readers.textio import open_text, reading
from recx.errors import DataFormatError

_NUM = re.compile(r"^-?[0-9]+(?:\.[0-9]*)?$")


def read_seq_pairs(ds, files: RawFiles) -> RawData:
    ipath = files.path(fmt(ds, ds.file))
    tname = (ds.options or {}).get("time_file")
    tpath = files.path(fmt(ds, tname)) if tname else None
    sink = Sink(ipath, user="user", item="item", ts="ts", unit=ds.timestamp.unit)
    numeric = ds.timestamp.unit in ("s", "ms", "us", "ns", "days")
    users: list[str] = []
    items: list[str] = []
    times: list[str] = []
    first = 1
    with reading(ipath), open_text(ipath) as fi:
        ft = open_text(tpath) if tpath else None
        try:
            with reading(tpath or ipath):
                for no, line in enumerate(fi, 1):
                    tline = ft.readline() if ft else None
                    tok = line.split()
                    if not tok:
                        if tline and tline.strip():
                            raise _misaligned(ipath, tpath, no, "empty item line")
                        continue
                    if len(tok) < 2:
                        raise DataFormatError("a user without items", path=ipath, line=no,
                                              hint="each line must be `user item1 item2 ...`")
                    if ft is not None:
                        ttok = (tline or "").split()
                        if not ttok:
                            raise _misaligned(ipath, tpath, no, "the time file ends early")
                        if ttok[0] != tok[0]:
                            raise _misaligned(ipath, tpath, no,
                                              f"user {tok[0]!r} vs {ttok[0]!r}")
                        if len(ttok) != len(tok):
                            raise _misaligned(ipath, tpath, no,
                                              f"{len(tok) - 1} items vs {len(ttok) - 1} times")
                        bad = next((t for t in ttok[1:] if not _NUM.match(t)), None)
                        if bad is not None and numeric:
                            raise DataFormatError(f"timestamp {bad!r} is not a number",
                                                  path=tpath, line=no,
                                                  hint="the time file must hold unix seconds")
                        times += ttok[1:]
                    else:
                        times += [str(k) for k in range(len(tok) - 1)]
                    users += [tok[0]] * (len(tok) - 1)
                    items += tok[1:]
                    if len(items) >= PY_CHUNK_ROWS:
                        _flush(sink, users, items, times, first)
                        first = no + 1
                if ft is not None and ft.readline().strip():
                    raise _misaligned(ipath, tpath, no + 1, "the time file has more lines")
        finally:
            if ft is not None:
                ft.close()
    if items:
        _flush(sink, users, items, times, first)
    raw = sink.finish(info={"files": [str(ipath)] + ([str(tpath)] if tpath else []),
                            "positions_as_time": tpath is None})
    check_not_empty(raw.interactions, ipath)
    return raw


def _flush(sink: Sink, users, items, times, line0: int) -> None:
    # line numbers of errors inside a flushed block point at its first line (one user per line)
    sink.add(pd.DataFrame({"user": np.asarray(users, dtype=object),
                           "item": np.asarray(items, dtype=object),
                           "ts": pd.Series(times, dtype=object)}), line0)
    users.clear()
    items.clear()
    times.clear()


def _misaligned(ipath, tpath, no: int, why: str) -> DataFormatError:
    return DataFormatError(f"the item and time files are not aligned ({why})", path=tpath,
                           line=no, hint=f"line {no} of {ipath.name} and {tpath.name} must hold "
                           "the same user with as many times as items")
