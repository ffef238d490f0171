"""The ten development copies in ../shared/datasets read through their named configs with
`dataset.raw_dir`; counts before filtering equal those of each SOURCE.md. Skipped, with a
message, where that folder is absent (a user's machine)."""

from __future__ import annotations

import pytest

from recx.data.formats import get_reader
from recx.data.process import process
from recx.data.rawfiles import resolve_raw_files
from tests.conftest import compose, shared_dataset

# config, folder, extra overrides, (users, items, interactions), (first day, last day) per SOURCE.md
CASES = [
    ("ml_100k", "movielens_ml-100k", [], (943, 1682, 100_000), ("1997-09-20", "1998-04-22")),
    ("ml_latest_small", "movielens_ml-latest-small", [], (610, 9724, 100_836),
     ("1996-03-29", "2018-09-24")),
    ("amazon_beauty_2014", "amazon2014_beauty_5core_ticoserec", [], (22_363, 12_101, 198_502),
     ("2002-06-12", "2014-07-23")),
    ("amazon_sports_2014", "amazon2014_sports_5core_ticoserec", [], (35_598, 18_357, 296_337),
     ("2002-03-07", "2014-07-23")),
    ("amazon_grocery_2014", "amazon2014_grocery_rechorus_trainonly", [],
     (14_681, 8_687, 121_892), ("2000-08-09", "2014-07-22")),
    ("amazon_all_beauty_2018", "amazon2018_all_beauty_5core", [], (991, 85, 5_269),
     ("2004-09-21", "2018-08-23")),
    ("amazon_gift_cards_2018", "amazon2018_gift_cards_5core", [], (458, 148, 2_972),
     ("2012-01-31", "2018-08-22")),
    ("amazon_magazine_2018", "amazon2018_magazine_subscriptions", [], (348, 157, 2_375),
     ("2001-11-12", "2018-05-20")),
    ("amazon_magazine_2018", "amazon2018_magazine_subscriptions", ["dataset.layout=ratings"],
     (72_098, 2_428, 89_689), ("2001-10-26", "2018-09-19")),
    ("yelp_a", "yelp2020_ticoserec_yelpA", [], (30_431, 20_033, 316_354),
     ("2019-01-01", "2019-12-13")),
    ("diginetica_sample", "diginetica_sample_srgnn", [], (2_986, 7_139, 12_391),
     ("2016-01-03", "2016-06-01")),
]


def read(tmp_path, name, folder, extra):
    cfg = compose("preprocess", [f"dataset={name}", f"dataset.raw_dir={folder}",
                                 f"paths.root={tmp_path}", *extra])
    files = resolve_raw_files(cfg.dataset, cfg.paths, offline=True)  # verifies the sha256
    return get_reader(cfg.dataset.reader)(cfg.dataset, files), cfg


def _day(t) -> str:
    import time

    return time.strftime("%Y-%m-%d", time.gmtime(int(t)))


@pytest.mark.parametrize(("name", "folder", "extra", "counts", "span"), CASES,
                         ids=[c[0] + ("-" + c[2][0].split("=")[1] if c[2] else "")
                              for c in CASES])
def test_counts_before_filtering_match_source_md(tmp_path, name, folder, extra, counts, span):
    raw, cfg = read(tmp_path, name, shared_dataset(folder), extra)
    inter = raw.interactions
    assert (inter["user"].nunique(), inter["item"].nunique(), len(inter)) == counts
    assert (_day(inter["ts"].min()), _day(inter["ts"].max())) == span
    out = process(raw, cfg.dataset, cfg.eval)  # the default filters leave a usable domain
    assert out.stats["interactions"] > 0 and out.stats["filters"]["read"]["interactions"] == \
        counts[2]


def test_item_text_of_the_copies_with_metadata(tmp_path):
    gift, _ = read(tmp_path, "amazon_gift_cards_2018",
                   shared_dataset("amazon2018_gift_cards_5core"), [])
    assert gift.info["items_with_text_read"] == 148  # every reviewed item has a clean title
    assert (gift.items["title"] != "").sum() >= 148
    mag, _ = read(tmp_path, "amazon_magazine_2018",
                  shared_dataset("amazon2018_magazine_subscriptions"), [])
    reviewed = set(mag.interactions["item"].astype(str))
    brands = mag.items[mag.items["item"].isin(reviewed) & (mag.items["brand"] != "")]
    assert len(brands) == 148  # SOURCE.md: 148 of the 157 items have a brand
    assert not mag.items["title"].str.contains("<span").any()  # HTML junk dropped
    movies, _ = read(tmp_path, "ml_latest_small", shared_dataset("movielens_ml-latest-small"), [])
    toy = movies.items.set_index("item").loc["1"]
    assert toy["title"] == "Toy Story" and toy["year"] == "1995" and toy["tags"]


def test_ml100k_official_layout_equals_the_recbole_copy(tmp_path):
    """GroupLens' u.data/u.item (rebuilt here from the atomic copy) give identical interactions."""
    import pandas as pd

    src = shared_dataset("movielens_ml-100k")
    atomic, cfg = read(tmp_path, "ml_100k", src, [])
    inter = pd.read_csv(src / "ml-100k.inter", sep="\t")
    official = tmp_path / "official" / "ml-100k"
    official.mkdir(parents=True)
    inter.to_csv(official / "u.data", sep="\t", header=False, index=False)
    items = pd.read_csv(src / "ml-100k.item", sep="\t")
    with open(official / "u.item", "w", encoding="latin-1", errors="replace") as f:
        for _, r in items.iterrows():
            f.write(f"{r.iloc[0]}|{r.iloc[1]} ({r.iloc[2]})|||x|" + "|".join(["0"] * 19) + "\n")
    rebuilt, _ = read(tmp_path, "ml_100k", official.parent, [])
    assert rebuilt.info["layout"] == "official"
    a = process(atomic, cfg.dataset, cfg.eval).interactions
    b = process(rebuilt, cfg.dataset, cfg.eval).interactions
    pd.testing.assert_frame_equal(a, b)
