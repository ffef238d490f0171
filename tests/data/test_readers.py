"""Every reader against a tiny hand-made file in its official format, through its named config
and `dataset.raw_dir` (the way users call it)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from recx.data.formats import get_reader
from recx.data.process import process
from recx.data.rawfiles import resolve_raw_files
from recx.errors import DataFormatError
from tests.conftest import compose
from tests.data import _fixtures as fx


def load(tmp_path, name, folder, *overrides, pins=None):
    """(raw data, config) of dataset `name` read from `folder`."""
    cfg = compose("preprocess", [f"dataset={name}", f"dataset.raw_dir={folder}",
                                 f"paths.root={tmp_path}", *overrides])
    if pins is not None:  # hand-made files never match the pinned sha256 of the real ones
        cfg.dataset.origin.files = pins
    files = resolve_raw_files(cfg.dataset, cfg.paths, offline=True)
    return get_reader(cfg.dataset.reader)(cfg.dataset, files), cfg


def events(raw) -> list[tuple[str, str, int]]:
    f = raw.interactions
    return list(zip(f["user"].astype(str), f["item"].astype(str), f["ts"].astype(int),
                    strict=True))


def text_of(raw, item: str) -> dict:
    row = raw.items.set_index("item").loc[item]
    return {k: v for k, v in row.items()}


# ------------------------------------------------------------------ generic tables
@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet", "jsonl.gz"])
def test_custom_tables(tmp_path, kind):
    frame = pd.DataFrame(fx.EVENTS, columns=["uid", "sku", "ts"])
    path = tmp_path / f"clicks.{kind}"
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif kind == "parquet":
        frame.to_parquet(path)
    else:
        with gzip.open(path, "wt") as f:
            f.writelines(json.dumps(r) + "\n" for r in frame.to_dict("records"))
    cfg = compose("preprocess", ["dataset=custom", f"dataset.path={path}",
                                 "dataset.columns.user=uid", "dataset.columns.item=sku",
                                 "dataset.columns.timestamp=ts", f"paths.root={tmp_path}"])
    files = resolve_raw_files(cfg.dataset, cfg.paths)
    raw = get_reader(cfg.dataset.reader)(cfg.dataset, files)
    assert events(raw) == fx.EVENTS


def test_csv_chunks_keep_order_and_sort_numeric_ids(tmp_path, monkeypatch):
    from recx.data.readers import delimited

    monkeypatch.setattr(delimited, "CSV_BLOCK", 64)  # many tiny chunks
    rng = np.random.default_rng(0)
    n = 500
    frame = pd.DataFrame({"u": rng.integers(1, 60, n), "i": rng.integers(1, 120, n),
                          "t": rng.integers(10**9, 2 * 10**9, n)})
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    cfg = compose("preprocess", ["dataset=custom", f"dataset.path={path}",
                                 "dataset.columns.user=u", "dataset.columns.item=i",
                                 "dataset.columns.timestamp=t", f"paths.root={tmp_path}"])
    raw = get_reader("csv")(cfg.dataset, resolve_raw_files(cfg.dataset, cfg.paths))
    assert raw.interactions["user"].astype(int).tolist() == frame["u"].tolist()
    assert raw.interactions["ts"].tolist() == frame["t"].tolist()
    cats = raw.interactions["item"].cat.categories
    assert cats.tolist() == sorted(frame["i"].unique().tolist())  # numeric order, not text


def test_bad_row_in_a_later_chunk_names_its_line(tmp_path, monkeypatch):
    from recx.data.readers import delimited

    monkeypatch.setattr(delimited, "CSV_BLOCK", 64)
    monkeypatch.setattr(delimited, "PY_CHUNK_ROWS", 7)
    lines = ["u,i,t"] + [f"u{k},i{k % 5},{1000 + k}" for k in range(60)]
    lines[41] = "u40,i0,yesterday"
    path = tmp_path / "c.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = compose("preprocess", ["dataset=custom", f"dataset.path={path}",
                                 "dataset.columns.user=u", "dataset.columns.item=i",
                                 "dataset.columns.timestamp=t", f"paths.root={tmp_path}"])
    with pytest.raises(DataFormatError) as e:
        get_reader("csv")(cfg.dataset, resolve_raw_files(cfg.dataset, cfg.paths))
    assert "line 42" in str(e.value) and "'yesterday'" in str(e.value)


def test_timestamps_at_or_before_1970_are_counted_and_warned_about(tmp_path, caplog):
    """Kept (a user's data decides what a 0 means), but counted in the stats with a warning:
    PrepRec's periods start at the earliest timestamp."""
    lines = ["u,i,t", "u1,i1,0", "u1,i2,1000", "u1,i3,2000", "u2,i1,-5", "u2,i2,3000",
             "u2,i3,4000"]
    path = tmp_path / "c.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = compose("preprocess", ["dataset=custom", f"dataset.path={path}",
                                 "dataset.columns.user=u", "dataset.columns.item=i",
                                 "dataset.columns.timestamp=t", f"paths.root={tmp_path}",
                                 "dataset.filters.k_core.user=0",
                                 "dataset.filters.k_core.item=0"])
    raw = get_reader("csv")(cfg.dataset, resolve_raw_files(cfg.dataset, cfg.paths))
    with caplog.at_level("WARNING", logger="recx.data.process"):
        out = process(raw, cfg.dataset, cfg.eval)
    assert out.stats["interactions"] == 6 and out.stats["time_nonpositive"] == 2
    assert "2 interactions have a timestamp at or before 1970-01-01" in caplog.text


def test_recbole_atomic_with_optional_item_file(tmp_path):
    folder = fx.ml100k_atomic(tmp_path / "raw")
    raw, _ = load(tmp_path, "recbole_atomic", folder, "dataset.category=ml-100k")
    assert len(raw.interactions) == 5
    # items.text_columns empty: every non-float column of the .item file is text
    assert text_of(raw, "10") == {"movie_title": "Toy Story", "release_year": "1995",
                                  "class": "Animation Comedy"}
    (folder / "ml-100k.item").unlink()  # optional: the data still reads, without text
    raw, _ = load(tmp_path, "recbole_atomic", folder, "dataset.category=ml-100k")
    assert raw.items is None and len(raw.interactions) == 5


# ------------------------------------------------------------------ MovieLens
def test_ml100k_official_and_atomic_layouts_are_identical(tmp_path):
    atomic, cfg = load(tmp_path, "ml_100k", fx.ml100k_atomic(tmp_path / "a"), pins={})
    official, _ = load(tmp_path, "ml_100k", fx.ml100k_official(tmp_path / "o"), pins={})
    assert atomic.info["layout"] == "default" and official.info["layout"] == "official"
    assert events(atomic) == events(official)
    assert atomic.interactions["rating"].tolist() == official.interactions["rating"].tolist()
    a = process(atomic, cfg.dataset, cfg.eval)
    o = process(official, cfg.dataset, cfg.eval)
    pd.testing.assert_frame_equal(a.interactions, o.interactions)
    # same text fields; genres joined the same way up to the separator
    assert text_of(official, "20")["movie_title"] == "Café Society"  # Latin-1 decoded
    assert text_of(official, "10")["release_year"] == "1995"
    assert text_of(official, "10")["class"] == "Animation, Comedy"
    assert o.stats["items_with_text"] == 1.0


def test_ml100k_forced_layout(tmp_path):
    folder = fx.ml100k_official(fx.ml100k_atomic(tmp_path / "both"))
    raw, _ = load(tmp_path, "ml_100k", folder, "dataset.layout=official", pins={})
    assert raw.info["layout"] == "official"


def test_ml1m_dat(tmp_path):
    raw, _ = load(tmp_path, "ml_1m", fx.ml1m(tmp_path / "raw"))
    assert events(raw) == [("1", "1193", 978300760), ("1", "661", 978302109),
                           ("2", "1193", 978298413)]
    assert text_of(raw, "661")["title"] == "Star Wars: Episode IV - A New Hope"
    assert text_of(raw, "661")["genres"] == "Action, Sci-Fi"


def test_movielens_csv_with_tags(tmp_path):
    raw, _ = load(tmp_path, "ml_25m", fx.ml_csv(tmp_path / "raw", "ml-25m"))
    assert raw.interactions["rating"].tolist() == [4.0, 4.0, 3.5]
    toy = text_of(raw, "1")
    assert toy["title"] == "Toy Story" and toy["year"] == "1995"
    assert toy["tags"] == "pixar, funny"  # case-insensitive, most frequent first
    city = text_of(raw, "3")
    assert city["title"].startswith("City of Lost Children, The") and city["genres"] == ""


# ------------------------------------------------------------------ Amazon
def test_amazon2018_reviews_and_meta(tmp_path):
    raw, cfg = load(tmp_path, "amazon2018", fx.amazon2018(tmp_path / "raw"),
                    "dataset.category=Toys", "dataset.filters.k_core.user=0",
                    "dataset.filters.k_core.item=0")
    assert events(raw) == fx.EVENTS
    assert set(raw.items["item"]) == {"i1", "i2", "i3"}  # only reviewed items parsed
    i1 = text_of(raw, "i1")
    assert i1["title"] == "Wooden & Blocks Set"  # unescaped, whitespace collapsed
    assert i1["category"] == "Toys, Building"  # list flattened, duplicates dropped
    assert i1["description"] == "Great blocks"  # tags stripped, empty parts dropped
    i2 = text_of(raw, "i2")
    assert i2["title"] == "" and i2["brand"] == "Second Record Brand"  # junk dropped, merged
    assert text_of(raw, "i3")["title"] == ""  # scraped JavaScript dropped
    out = process(raw, cfg.dataset, cfg.eval)
    assert out.stats["filters"]["dedup"]["interactions"] == 6  # u1's repeated i1


def test_amazon2018_ratings_layout(tmp_path):
    raw, _ = load(tmp_path, "amazon2018", fx.amazon2018(tmp_path / "raw"),
                  "dataset.category=Toys", "dataset.layout=ratings")
    assert raw.info["layout"] == "ratings"
    assert events(raw) == fx.EVENTS  # item,user,rating,timestamp order understood


def test_amazon2014_reviews_and_literal_meta(tmp_path):
    raw, _ = load(tmp_path, "amazon2014", fx.amazon2014(tmp_path / "raw"),
                  "dataset.category=Beauty")
    assert events(raw) == fx.EVENTS
    i1 = text_of(raw, "i1")
    assert i1["title"] == "Men's Shave Gel" and i1["brand"] == "Acme"
    assert i1["category"] == "Beauty, Skin Care, Face"
    assert text_of(raw, "i2")["description"] == "A long description"


def test_amazon2014_ratings_layout(tmp_path):
    folder = fx.amazon2014(tmp_path / "raw")
    (folder / "reviews_Beauty_5.json.gz").unlink()  # auto: the first complete layout
    raw, _ = load(tmp_path, "amazon2014", folder, "dataset.category=Beauty")
    assert raw.info["layout"] == "ratings" and events(raw) == fx.EVENTS


# ------------------------------------------------------------------ Yelp
def test_yelp_reviews_and_business(tmp_path):
    raw, _ = load(tmp_path, "yelp", fx.yelp(tmp_path / "raw"))
    assert len(raw.interactions) == len(fx.EVENTS)
    assert raw.interactions["ts"].iloc[1] == 1546300800  # 2019-01-01 00:00:00 UTC
    assert text_of(raw, "i1") == {"name": "Joe's Pizza", "categories": "Pizza, Restaurants"}
    assert text_of(raw, "i2")["name"] == "Café Bleu"
    only_2019, _ = load(tmp_path, "yelp", tmp_path / "raw", "dataset.options.date_from=2019-01-01",
                        "dataset.options.date_to=2019-12-31")
    assert len(only_2019.interactions) == 5 and only_2019.info["rows_skipped"] == 2


# ------------------------------------------------------------------ sequences
def test_seq_pairs(tmp_path):
    folder = fx.seq_pairs(tmp_path / "raw")
    over = ["dataset.file=Beauty_item_org_rank.txt",
            "dataset.options.time_file=Beauty_time_org_rank.txt"]
    raw, _ = load(tmp_path, "seq_text", folder, *over)
    assert events(raw) == [("1", "5", 100), ("1", "7", 200), ("1", "5", 300), ("2", "7", 150),
                           ("3", "9", 50), ("3", "5", 60), ("3", "7", 70)]
    (folder / "Beauty_time_org_rank.txt").write_text("1 100 200 300\n2 150 160\n3 50 60 70\n")
    with pytest.raises(DataFormatError, match=r"line 2.*not aligned"):
        load(tmp_path, "seq_text", folder, *over)


# ------------------------------------------------------------------ the others
def test_diginetica_sessions(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "train-item-views.csv").write_text(
        "sessionId;userId;itemId;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\n"
        "1;NA;31331;1031018;2016-05-09\n2;7;32118;243569;2016-05-09\n")
    raw, _ = load(tmp_path, "diginetica", folder)
    assert events(raw) == [("1", "81766", 1462752000 + 526), ("1", "31331", 1462752000 + 1031),
                           ("2", "32118", 1462752000 + 243)]
    by_user, _ = load(tmp_path, "diginetica", folder, "dataset.options.user=user")
    assert events(by_user) == [("7", "32118", 1462752000 + 243)]


def test_tang_mat(tmp_path):
    from scipy.io import savemat

    folder = tmp_path / "raw"
    folder.mkdir()
    rows = np.array([[1, 10, 3, 5, 4, 1000], [1, 11, 3, 2, 4, 2000], [2, 10, 3, 4, 4, 1500]])
    savemat(folder / "rating_with_timestamp.mat", {"rating_with_timestamp": rows})
    raw, _ = load(tmp_path, "epinions", folder)
    assert events(raw) == [("1", "10", 1000), ("1", "11", 2000), ("2", "10", 1500)]
    assert raw.interactions["rating"].tolist() == [5.0, 2.0, 4.0]


def test_online_retail_xlsx(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    frame = pd.DataFrame({
        "InvoiceNo": ["536365", "536365", "C536379", "536380", "536381"],
        "StockCode": ["85123A", "71053", "85123A", "71053", "22633"],
        "Description": ["WHITE HANGING HEART T-LIGHT HOLDER", "WHITE METAL LANTERN", "x",
                        "WHITE METAL LANTERN", "HAND WARMER UNION JACK"],
        "Quantity": [6, 6, -1, 2, 0],
        "InvoiceDate": pd.to_datetime(["2010-12-01 08:26", "2010-12-01 08:26",
                                       "2010-12-01 09:41", "2010-12-02 10:00",
                                       "2010-12-03 10:00"]),
        "UnitPrice": [2.55, 3.39, 27.5, 3.39, 1.85],
        "CustomerID": [17850.0, 17850.0, 14527.0, np.nan, 13047.0],
        "Country": ["United Kingdom"] * 5})
    frame.to_excel(folder / "Online Retail.xlsx", index=False)
    raw, _ = load(tmp_path, "online_retail", folder)
    assert events(raw) == [("17850", "85123A", 1291191960),  # 2010-12-01 08:26 UTC
                           ("17850", "71053", 1291191960)]
    assert raw.info["rows_skipped"] == 3  # cancellation, no customer, zero quantity
    assert text_of(raw, "71053")["description"] == "WHITE METAL LANTERN"


def test_steam_literals(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    reviews = [
        "{'username': 'Chaos Syren', 'hours': 0.1, 'products': 41, 'product_id': '725280', "
        "'page_order': 0, 'date': '2017-12-17', 'text': \"It's 'fine'\", 'early_access': False}",
        "{'username': \"O'Brien\", 'product_id': '328100', 'date': '2017-10-16', "
        "'text': 'ok', 'page': 1}",
    ]
    fx.write_gz(folder / "steam_reviews.json.gz", "\n".join(reviews) + "\n")
    games = ["{'publisher': 'Kotoshiro', 'genres': ['Action', 'Casual'], "
             "'app_name': 'Lost Summoner Kitty', 'id': '725280', 'tags': ['Strategy']}"]
    fx.write_gz(folder / "steam_games.json.gz", "\n".join(games) + "\n")
    raw, _ = load(tmp_path, "steam", folder)
    assert events(raw) == [("Chaos Syren", "725280", 1513468800),
                           ("O'Brien", "328100", 1508112000)]
    assert text_of(raw, "725280")["title"] == "Lost Summoner Kitty"
    assert text_of(raw, "725280")["genres"] == "Action, Casual"


def test_lastfm_hetrec(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "user_taggedartists-timestamps.dat").write_text(
        "userID\tartistID\ttagID\ttimestamp\n2\t52\t13\t1238536800000\n"
        "2\t52\t15\t1238536800000\n3\t52\t13\t1277935200000\n3\t63\t15\t1277935200000\n")
    (folder / "artists.dat").write_text("id\tname\turl\tpictureURL\n52\tMorcheeba\thttp://a\t\n"
                                        "63\tEnigma\thttp://b\t\n")
    (folder / "tags.dat").write_bytes("tagID\ttagValue\n13\tchillout\n15\tdownbeat\n"
                                      .encode("latin-1"))
    raw, _ = load(tmp_path, "lastfm", folder)
    assert events(raw)[0] == ("2", "52", 1238536800)  # milliseconds → seconds
    assert text_of(raw, "52") == {"name": "Morcheeba", "tags": "chillout, downbeat"}


def test_foursquare_tsmc(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "dataset_TSMC2014_NYC.txt").write_text(
        "470\t49bbd6c0f964a520f4531fe3\t4bf58dd8d48988d127951735\tArts &amp; Crafts Store\t"
        "40.719810375488535\t-74.00258103213994\t-240\tTue Apr 03 18:00:09 +0000 2012\n"
        "979\t4a43c0aef964a520c6a61fe3\t4bf58dd8d48988d1df941735\tBridge\t40.6068\t-74.04\t"
        "-240\tTue Apr 03 18:00:25 +0000 2012\n")
    raw, _ = load(tmp_path, "foursquare_nyc", folder)
    assert events(raw) == [("470", "49bbd6c0f964a520f4531fe3", 1333476009),
                           ("979", "4a43c0aef964a520c6a61fe3", 1333476025)]
    assert text_of(raw, "49bbd6c0f964a520f4531fe3")["category"] == "Arts & Crafts Store"


def test_douban_quoted_reviews(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "moviereviews_cleaned.txt").write_text(
        '"user_id"\t"movie_id"\t"rating"\t"labels"\t"comment"\t"useful_num"\t"ID"\t"time"\n'
        '"u1"\t"1292052"\t"5"\t"a"\t"great,\nreally"\t"3"\t"1"\t"2018-07-11"\n'
        '"u2"\t"1292052"\t"4"\t"b"\t"ok"\t"0"\t"2"\t"2017-01-02"\n')
    raw, _ = load(tmp_path, "douban_movie", folder)
    assert events(raw) == [("u1", "1292052", 1531267200), ("u2", "1292052", 1483315200)]
