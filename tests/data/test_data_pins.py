"""The data layer's guard: the data hash of every shipped dataset config and the bytes of the
processed domains stay exactly as pinned here (a code change that moves a hash orphans every
cache entry and checkpoint made before it; one that changes the bytes changes results).

The pinned values were recorded from the implementation before the data layer was split into
its present modules; a deliberate change of the data must bump `CACHE_VERSION` (or the
generator's version) and re-pin them, never drift silently.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from recx.data.domain import data_hash, load_domain
from recx.data.rawfiles import RawFiles, raw_identity
from tests.conftest import CONF, compose, shared_dataset

# the configs' `???` fields, filled the same way every time (files written by `_own_files`)
FILLED = {
    "amazon2014": ["dataset.category=Beauty"],
    "amazon2018": ["dataset.category=Gift_Cards"],
    "recbole_atomic": ["dataset.category=ml-1m"],
    "custom": ["dataset.path=clicks.csv", "dataset.columns.user=u", "dataset.columns.item=i",
               "dataset.columns.timestamp=t"],
    "seq_text": ["dataset.raw_dir=seq", "dataset.file=seq.txt"],
}

DATA_HASHES = {
    "amazon2014": "2ace97cc91d7",
    "amazon2018": "c2eec51e5000",
    "amazon_all_beauty_2018": "d5e8744d60fa",
    "amazon_beauty_2014": "f2eb75230fce",
    "amazon_gift_cards_2018": "d7f83d6b1b9a",
    "amazon_grocery_2014": "1e153f00258e",
    "amazon_magazine_2018": "ca0894f671e1",
    "amazon_sports_2014": "caa3c89bb38e",
    "ciao": "f3480b84a9bc",
    "custom": "0a4033a1e36e",
    "diginetica": "10faad32b195",
    "diginetica_sample": "963b7ff2aec5",
    "douban_book": "def1c8c29106",
    "douban_movie": "a1ee8bf388e4",
    "douban_music": "66743145d4c6",
    "epinions": "f3480b84a9bc",
    "foursquare_nyc": "e00fec62c104",
    "foursquare_tky": "526604845837",
    "lastfm": "9c4a98498360",
    "ml_100k": "d56208e17429",
    "ml_1m": "0a87ef597e9c",
    "ml_20m": "1c384af2e1ad",
    "ml_25m": "96f4e2a3e42e",
    "ml_latest_small": "f84720e56b4e",
    "online_retail": "902f95e4683b",
    "recbole_atomic": "096f09aaf2e4",
    "seq_text": "41286259bbb4",
    "steam": "3f8e14507c5d",
    "synth_a": "20d6f05a0415",
    "synth_b": "8fd88b2d2d87",
    "synth_c": "291b04b26e9d",
    "synth_t": "759851a70af8",
    "tiny": "c000a65eb8f9",
    "tiny_b": "10e43f5907f4",
    "yelp": "62734fdec9f3",
    "yelp_a": "aa5bdf5a5596",
}

# sha256 over the processed cache entry's files (name + bytes, sorted by name; `_digest`)
CONTENT = {
    "tiny": ("c000a65eb8f9", "6c9f923f2480d83b7db34e9d0ef3a76fd30472fefa9af3c06051526b5e79eaed"),
    "tiny_b": ("10e43f5907f4", "4460f227683aa235bc7362e1bf5cb47eba348b4661beee339435ea91f87c8f90"),
    "ml_100k": ("d56208e17429",
                "e1f723604df4595f4942098a4431e9ce7c0f53309276badc699030b87d24cdc0"),
    "amazon_gift_cards_2018": ("d7f83d6b1b9a",
                               "ec276686bb6151a032cf634af9d550e14f19a7fd453f2852735c68b05bc2f424"),
}


def _own_files(folder: Path) -> None:
    (folder / "clicks.csv").write_text("u,i,t\n1,10,100\n1,11,200\n2,10,150\n")
    (folder / "seq").mkdir(exist_ok=True)
    (folder / "seq" / "seq.txt").write_text("1 10 11 12\n2 10 12\n")


def _dataset_names() -> list[str]:
    return sorted(p.stem for p in (CONF / "dataset").glob("*.yaml") if not p.stem.startswith("_"))


def _hash_of(name: str, tmp_path: Path) -> str:
    cfg = compose("preprocess", [f"dataset={name}", *FILLED.get(name, [])], root=tmp_path)
    ds = cfg.dataset
    if ds.path:
        files = RawFiles(None, {"main": Path(ds.path)})
    elif ds.raw_dir:
        files = RawFiles(Path(ds.raw_dir), names=[ds.file])
    else:
        files = RawFiles(None)
    return data_hash(ds, cfg.eval, raw_identity(ds, files))


def test_every_shipped_dataset_config_is_pinned():
    assert sorted(DATA_HASHES) == _dataset_names()


@pytest.mark.parametrize("name", sorted(DATA_HASHES))
def test_data_hash_of_each_shipped_config(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _own_files(tmp_path)
    assert _hash_of(name, tmp_path) == DATA_HASHES[name]


def _digest(entry: Path) -> str:
    """The entry's data, not where it was read from: stats.json records the raw files' paths as
    given (the checkout's ../shared differs between machines), so only their names count."""
    h = hashlib.sha256()
    for p in sorted(entry.iterdir()):
        if p.is_file() and p.suffix in (".parquet", ".json") and p.name != "meta.json":
            data = p.read_bytes()
            if p.name == "stats.json":
                tree = json.loads(data)
                files = tree.get("reader", {}).get("files")
                if files:
                    tree["reader"]["files"] = [Path(f).name for f in files]
                data = json.dumps(tree, sort_keys=True).encode()
            h.update(p.name.encode() + b"\0" + data + b"\0")
    return h.hexdigest()


def _folder(name: str):
    return {"ml_100k": "movielens_ml-100k",
            "amazon_gift_cards_2018": "amazon2018_gift_cards_5core"}.get(name)


@pytest.mark.parametrize("name", sorted(CONTENT))
def test_processed_domain_bytes(name, tmp_path):
    over = [f"dataset={name}"]
    if _folder(name):
        over.append(f"dataset.raw_dir={shared_dataset(_folder(name))}")
    cfg = compose("preprocess", over, root=tmp_path)
    built = load_domain(cfg.dataset, cfg.eval, cfg.paths, offline=True)
    again = load_domain(cfg.dataset, cfg.eval, cfg.paths, offline=True)  # a cache hit
    want_hash, want_digest = CONTENT[name]
    assert built.data_hash == again.data_hash == want_hash
    assert _digest(built.path) == want_digest


# the generator's two sampling paths (tiny's items drawn through the pool, with repeats too)
GENERATOR_CASES = {
    "exact_repeats": {"repeat_prob": 0.3},
    "pooled": {"exact_max_items": 0, "pool_size": 16, "pool_events": 8},
    "pooled_repeats": {"exact_max_items": 0, "pool_size": 16, "pool_events": 8,
                       "repeat_prob": 0.3, "bucket_days": 3.0},
}
GENERATED = {
    "exact_repeats": "eef17cea2d86f8541fe7e7a6c14207664f33ba2e9ba61a6860841856bf16e22a",
    "pooled": "91b8e61e311f1e0caf6549d9469fd4d5d7bb322ac7b0fa422553bce4df014099",
    "pooled_repeats": "ff5a0d095ee40dffe077858ee8f8eae5cbe8214a6233966ffddf6ec46ac00509",
}


def _generated_digest(overrides: dict) -> str:
    import pandas as pd

    from recx.data.synthetic import generate

    cfg = compose("preprocess", ["dataset=tiny"])
    raw = generate({**cfg.dataset.synthetic, **overrides}, "tiny")
    h = hashlib.sha256(pd.util.hash_pandas_object(raw.interactions, index=False).to_numpy()
                       .tobytes())
    h.update(pd.util.hash_pandas_object(raw.items, index=False).to_numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("case", sorted(GENERATED))
def test_generated_events(case):
    assert _generated_digest(GENERATOR_CASES[case]) == GENERATED[case]
