"""MovieLens in its official GroupLens layouts.

| release | ratings | movies | tags |
|---|---|---|---|
| ml-100k | `u.data` (tab, no header) | `u.item` (`|`, latin-1, 19 genre flags) | – |
| ml-1m, ml-10m | `ratings.dat` (`::`) | `movies.dat` (`::`, latin-1) | `tags.dat` (ml-10m) |
| ml-20m, ml-25m, ml-latest(-small) | `ratings.csv` (header) | `movies.csv` | `tags.csv` |

Item text: `title` (the year cut off), `year`, `genres` and, where a tags file is present,
`tags` (the `options.top_tags` most frequent tags of the movie, 10 by default).
`options.text_names` renames them (ml_100k maps them onto RecBole's `movie_title`,
`release_year`, `class` so that both of its layouts give the same text fields).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from recx.data.canonical import RawData, check_not_empty
from recx.data.layouts import fmt
from recx.data.rawfiles import RawFiles
from recx.data.readers.delimited import read_delimited, scan_csv
from recx.data.readers.sink import Sink
from recx.data.readers.textio import open_text, reading
from recx.errors import DataFormatError

ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]
_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$")


def split_title(title: str) -> tuple[str, str]:
    """'Toy Story (1995)' → ('Toy Story', '1995'); no year → (title, '')."""
    m = _TITLE_YEAR.match(str(title).strip())
    return (m.group(1).strip(), m.group(2)) if m else (str(title).strip(), "")


def read_movielens(ds, files: RawFiles) -> RawData:
    path = files.path(fmt(ds, ds.file))
    name = path.name.lower()
    sink = Sink(path, user="user", item="item", ts="ts", unit="s", rating="rating")
    cols = ["user", "item", "rating", "ts"]
    if name == "u.data":
        scan_csv(path, sink, sep="\t", header=False, names=cols, usecols=cols,
                 ids=("user", "item"), numeric=("rating", "ts"), quoted=False)
    elif name.endswith(".dat"):  # `::`-separated: read with ':' and keep every other field
        names = ["user", "_1", "item", "_3", "rating", "_5", "ts"]
        scan_csv(path, sink, sep=":", header=False, names=names, usecols=cols,
                 ids=("user", "item"), numeric=("rating", "ts"), quoted=False)
    else:
        wanted = {"userId": "user", "movieId": "item", "rating": "rating", "timestamp": "ts"}
        sink = Sink(path, user="userId", item="movieId", ts="timestamp", unit="s",
                    rating="rating")
        scan_csv(path, sink, sep=",", usecols=list(wanted), ids=("userId", "movieId"),
                 numeric=("rating", "timestamp"))
    raw = sink.finish()
    check_not_empty(raw.interactions, path)
    ispec = ds["items"]
    if ispec.file and files.exists(fmt(ds, ispec.file)):
        ipath = files.path(fmt(ds, ispec.file))
        raw.items = read_movies(ipath)
        raw.info["files"].append(str(ipath))
        tags_name = (ds.options or {}).get("tags_file")
        if tags_name and files.exists(fmt(ds, tags_name)):
            tpath = files.path(fmt(ds, tags_name))
            tags = read_top_tags(tpath, int((ds.options or {}).get("top_tags", 10)))
            raw.items = raw.items.merge(tags, on="item", how="left")
            raw.info["files"].append(str(tpath))
    return raw


def read_movies(path: Path) -> pd.DataFrame:
    """item, title, year, genres (list) from u.item, movies.dat or movies.csv."""
    name = path.name.lower()
    rows = []
    if name == "u.item":
        genres = _u_genres(path.with_name("u.genre"))
        with reading(path), open_text(path, "latin-1") as f:
            for no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.rstrip("\r\n").split("|")
                if len(parts) < 5 + len(genres):
                    raise DataFormatError(f"expected {5 + len(genres)} '|'-separated fields, "
                                          f"saw {len(parts)}", path=path, line=no,
                                          hint="use the official ml-100k u.item")
                title, year = split_title(parts[1])
                if not year and parts[2][-4:].isdigit():
                    year = parts[2][-4:]  # release date dd-Mon-yyyy
                flags = parts[5:5 + len(genres)]
                rows.append((parts[0], title, year,
                             [g for g, f in zip(genres, flags, strict=True) if f == "1"]))
    elif name.endswith(".dat"):
        with reading(path), open_text(path, "latin-1") as f:
            for no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.rstrip("\r\n").split("::")
                if len(parts) != 3:
                    raise DataFormatError(f"expected MovieID::Title::Genres, saw {line[:80]!r}",
                                          path=path, line=no,
                                          hint="use the official movies.dat")
                title, year = split_title(parts[1])
                rows.append((parts[0], title, year, _genres(parts[2])))
    else:
        frame = read_delimited(path, ",", dtype={"movieId": str})
        for mid, t, g in zip(frame["movieId"], frame["title"], frame["genres"], strict=True):
            title, year = split_title(t)
            rows.append((str(mid), title, year, _genres(g)))
    return pd.DataFrame(rows, columns=["item", "title", "year", "genres"])


def _genres(text) -> list[str]:
    if not isinstance(text, str):
        return []
    return [g for g in text.split("|") if g and g != "(no genres listed)"]


def _u_genres(path: Path) -> list[str]:
    if not path.exists():
        return ML100K_GENRES
    out = []
    with open_text(path, "latin-1") as f:
        for line in f:
            if "|" in line:
                out.append(line.split("|")[0])
    return out or ML100K_GENRES


def read_top_tags(path: Path, top: int) -> pd.DataFrame:
    """item → its `top` most frequent tags (case-insensitive; ties by first use)."""
    if path.name.lower().endswith(".dat"):
        rows = []
        with reading(path), open_text(path, "latin-1") as f:
            for line in f:
                parts = line.rstrip("\r\n").split("::")
                if len(parts) >= 3:
                    rows.append((parts[1], parts[2]))
        frame = pd.DataFrame(rows, columns=["movieId", "tag"])
    else:
        frame = read_delimited(path, ",", usecols=["movieId", "tag"],
                               dtype={"movieId": str, "tag": str})
    frame = frame.dropna()
    frame["key"] = frame["tag"].str.strip().str.lower()
    frame = frame[frame["key"] != ""]
    counts = (frame.groupby(["movieId", "key"], sort=False)
              .agg(n=("tag", "size"), tag=("tag", "first")).reset_index())
    counts = counts.sort_values(["movieId", "n"], ascending=[True, False], kind="stable")
    top_tags = counts.groupby("movieId", sort=False).head(top)
    out = top_tags.groupby("movieId", sort=False)["tag"].agg(list).reset_index()
    return out.rename(columns={"movieId": "item", "tag": "tags"}).astype({"item": str})
