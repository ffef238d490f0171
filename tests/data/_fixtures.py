"""Tiny hand-made files in each official raw format (written into tmp_path by the tests).

Every writer returns the folder it wrote and the expected canonical events
[(user, item, unix seconds)] in file order, so a test can compare a reader's output with what
the file says, independently of the reader.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

# Three users, four items; u1 rates i1 twice (a duplicate for dedup tests).
EVENTS = [("u1", "i1", 1000), ("u1", "i2", 2000), ("u2", "i1", 1500), ("u2", "i3", 2500),
          ("u3", "i4", 3000), ("u1", "i1", 4000), ("u3", "i2", 3500)]


def write_gz(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)
    return path


# ------------------------------------------------------------------ MovieLens
def ml100k_official(folder: Path) -> Path:
    """ml-100k/u.data, u.item, u.genre as in GroupLens' zip."""
    d = folder / "ml-100k"
    d.mkdir(parents=True, exist_ok=True)
    (d / "u.data").write_text("1\t10\t4\t881250949\n1\t20\t3\t881250950\n2\t10\t5\t881250000\n"
                              "3\t30\t1\t881260000\n2\t30\t2\t881250001\n")
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
              "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
              "Romance", "Sci-Fi", "Thriller", "War", "Western"]
    (d / "u.genre").write_text("".join(f"{g}|{k}\n" for k, g in enumerate(genres)))

    def flags(*on):
        return "|".join("1" if g in on else "0" for g in genres)

    lines = [f"10|Toy Story (1995)|01-Jan-1995||http://x|{flags('Animation', 'Comedy')}",
             f"20|Caf\xe9 Society (1997)|01-Jan-1997||http://x|{flags('Drama')}",
             f"30|Unknown Movie|01-Jan-1998||http://x|{flags('unknown')}"]
    (d / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return folder


def ml100k_atomic(folder: Path) -> Path:
    """The same data as RecBole atomic files (ml-100k.inter / ml-100k.item)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ml-100k.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t4\t881250949\n1\t20\t3\t881250950\n2\t10\t5\t881250000\n"
        "3\t30\t1\t881260000\n2\t30\t2\t881250001\n")
    (folder / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Comedy\n20\tCafé Society\t1997\tDrama\n"
        "30\tUnknown Movie\t1998\tunknown\n")
    return folder


def ml1m(folder: Path) -> Path:
    d = folder / "ml-1m"
    d.mkdir(parents=True, exist_ok=True)
    (d / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n"
                                   "2::1193::4::978298413\n")
    (d / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n".encode("latin-1"))
    return folder


def ml_csv(folder: Path, stem: str = "ml-latest-small") -> Path:
    d = folder / stem
    d.mkdir(parents=True, exist_ok=True)
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
                                   "1,3,4.0,964981247\n2,1,3.5,964982224\n")
    (d / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
        '3,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",(no genres listed)\n')
    (d / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,1,pixar,1\n2,1,Pixar,2\n"
                                "2,1,funny,3\n1,3,dark,4\n")
    return folder


# ------------------------------------------------------------------ Amazon
def amazon2018(folder: Path, cat: str = "Toys") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    reviews = [
        {"overall": 5.0, "verified": True, "reviewerID": u, "asin": i, "unixReviewTime": t,
         "style": {"Size:": " 7 oz"}, "reviewText": "nice " * 20, "summary": "ok"}
        for u, i, t in EVENTS]
    write_gz(folder / f"{cat}_5.json.gz", "".join(json.dumps(r) + "\n" for r in reviews))
    meta = [
        {"asin": "i1", "title": "Wooden &amp; Blocks  Set", "brand": "Acme",
         "category": ["Toys", "Toys", "Building"], "description": ["<p>Great <b>blocks</b></p>",
                                                                   ""]},
        {"asin": "i2", "title": '<span class="a-size-medium a-color-secondary"', "brand": "",
         "category": [], "description": []},
        {"asin": "i2", "title": "", "brand": "Second Record Brand", "category": ["Toys"]},
        {"asin": "zz", "title": "never reviewed"},
        {"asin": "i3", "title": "var aPageStart = (new Date()).getTime();", "brand": "B3"},
    ]
    write_gz(folder / f"meta_{cat}.json.gz", "".join(json.dumps(m) + "\n" for m in meta))
    rows = "".join(f"{i},{u},5.0,{t}\n" for u, i, t in EVENTS)  # item,user,rating,timestamp
    (folder / f"{cat}.csv").write_text(rows)
    return folder


def amazon2014(folder: Path, cat: str = "Beauty") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    reviews = [{"reviewerID": u, "asin": i, "reviewerName": "x", "helpful": [0, 0],
                "reviewText": "t", "overall": 4.0, "summary": "s", "unixReviewTime": t,
                "reviewTime": "01 1, 2014"} for u, i, t in EVENTS]
    write_gz(folder / f"reviews_{cat}_5.json.gz", "".join(json.dumps(r) + "\n"
                                                         for r in reviews))
    meta = [
        "{'asin': 'i1', 'title': \"Men's Shave Gel\", 'price': 3.17, "
        "'related': {'also_bought': ['i2']}, 'salesRank': {'Beauty': 211}, "
        "'categories': [['Beauty', 'Skin Care'], ['Beauty', 'Face']], 'brand': 'Acme'}",
        "{'asin': 'i2', 'description': 'A  long\\n description', 'categories': [['Beauty']]}",
        "{'asin': 'other', 'title': 'not reviewed'}",
    ]
    write_gz(folder / f"meta_{cat}.json.gz", "\n".join(meta) + "\n")
    (folder / f"ratings_{cat}.csv").write_text("".join(f"{u},{i},4.0,{t}\n" for u, i, t in EVENTS))
    return folder


# ------------------------------------------------------------------ Yelp
def yelp(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dates = {1000: "2018-12-31 23:59:59", 2000: "2019-01-01 00:00:00",
             1500: "2019-03-04 10:00:00", 2500: "2019-06-01 12:00:00",
             3000: "2019-12-31 23:00:00", 4000: "2020-01-02 00:00:00",
             3500: "2019-07-07 07:07:07"}
    lines = [json.dumps({"review_id": f"r{k}", "user_id": u, "business_id": i, "stars": 4.0,
                         "useful": 0, "text": "Great\nplace", "date": dates[t]})
             for k, (u, i, t) in enumerate(EVENTS)]
    (folder / "yelp_academic_dataset_review.json").write_text("\n".join(lines) + "\n")
    biz = [{"business_id": "i1", "name": "Joe's Pizza", "categories": "Pizza, Restaurants",
            "city": "X", "attributes": {"a": "b"}},
           {"business_id": "i2", "name": "Caf&eacute; Bleu", "categories": None}]
    (folder / "yelp_academic_dataset_business.json").write_text(
        "".join(json.dumps(b) + "\n" for b in biz))
    return folder


# ------------------------------------------------------------------ sequences
def seq_pairs(folder: Path, stem: str = "Beauty") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}_item_org_rank.txt").write_text("1 5 7 5\n2 7\n3 9 5 7\n")
    (folder / f"{stem}_time_org_rank.txt").write_text(
        "1 100 200 300\n2 150\n3 50 60 70\n")
    return folder
