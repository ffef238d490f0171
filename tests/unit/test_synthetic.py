"""The synthetic generator (recx/data/synthetic.py): contract, determinism and the signals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recx.data.synthetic import GENERATOR_VERSION, START_TS, generate, world

CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"
# a small exact-path domain that all cheap tests share
SMALL = {"seed": 5, "n_users": 400, "n_items": 300, "topics": [0, 1, 2, 3, 4, 5]}


def _synthetic_node(name: str) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml").synthetic)


def _k_core(frame: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    while True:
        users = frame["user"].map(frame["user"].value_counts())
        items = frame["item"].map(frame["item"].value_counts())
        keep = (users >= k) & (items >= k)
        if keep.all():
            return frame
        frame = frame[keep]


def _release_ts(raw) -> pd.Series:
    truth = raw.info["truth"]["items"]
    return pd.Series(truth["release_ts"], index=truth["item"])


def test_contract_shapes_and_dtypes():
    raw = generate(SMALL, "small")
    inter, items = raw.interactions, raw.items
    assert list(inter.columns) == ["user", "item", "ts"]
    assert all(inter[c].dtype == np.int64 for c in inter.columns)
    assert list(items.columns) == ["item", "title", "category", "brand"]
    assert len(items) == SMALL["n_items"] and items["item"].is_unique
    assert all(isinstance(x, str) for x in items["item"])
    assert set(inter["item"].astype(str)) <= set(items["item"])
    assert inter["user"].nunique() == SMALL["n_users"]
    assert inter["ts"].min() >= START_TS
    assert inter["ts"].max() < START_TS + 730 * 86_400
    assert items[["title", "category", "brand"]].notna().all().all()
    lengths = items["title"].str.split().str.len()
    assert lengths.between(3, 8).all()
    assert set(items["category"]) <= {world().names[t] for t in SMALL["topics"]}
    json.dumps(raw.info)  # JSON-serialisable, truth included
    truth = raw.info["truth"]
    assert truth["generator_version"] == GENERATOR_VERSION
    assert len(truth["items"]["appeal"]) == SMALL["n_items"]
    assert sum(truth["users"]["activity"]) == len(inter)


def test_deterministic_by_seed():
    a, b = generate(SMALL, "a"), generate(dict(SMALL), "other name")
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert a.info["truth"] == b.info["truth"]
    c = generate({**SMALL, "seed": 6}, "a")
    assert not c.interactions["ts"].equals(a.interactions["ts"])
    assert not c.items["title"].equals(a.items["title"])
    # different seeds give different raw ids, so domains never share ids by accident
    assert not set(c.items["item"]) & set(a.items["item"])


def test_dictconfig_params_and_unknown_key():
    from omegaconf import OmegaConf

    from recx.config.schema import SyntheticSchema
    from recx.errors import ConfigError

    cfg = OmegaConf.merge(OmegaConf.structured(SyntheticSchema), SMALL)
    pd.testing.assert_frame_equal(
        generate(cfg, "x").interactions, generate(SMALL, "x").interactions
    )
    with pytest.raises(ConfigError, match="n_user"):
        generate({"n_user": 3}, "x")
    with pytest.raises(ConfigError, match="kappa"):
        generate({**SMALL, "kappa": 1.0}, "x")


def test_timestamps_increase_per_user_and_no_repeats():
    inter = generate(SMALL, "small").interactions
    steps = inter.groupby("user", sort=False)["ts"].diff().dropna()
    assert (steps > 0).all()
    assert not inter.duplicated(["user", "item"]).any()
    assert inter.groupby("user").size().min() >= 5


def test_repeats_when_asked():
    raw = generate({**SMALL, "repeat_prob": 0.3}, "rep")
    dup = raw.interactions.duplicated(["user", "item"]).mean()
    assert 0.1 < dup < 0.4
    release = _release_ts(raw)
    assert (
        raw.interactions["ts"].to_numpy() >= release.loc[raw.interactions["item"]].to_numpy()
    ).all()


def test_heavy_tailed_popularity():
    counts = generate(SMALL, "small").interactions["item"].value_counts()
    top = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    assert top > 0.3  # the top 10% of items take far more than 10% of the events


def test_release_causality_and_life_cycles():
    raw = generate(SMALL, "small")
    inter = raw.interactions
    release = _release_ts(raw).loc[inter["item"]].to_numpy()
    assert (inter["ts"].to_numpy() >= release).all()
    # events concentrate around the life-cycle peak (kappa - 1 = 1 lifetime after release)
    truth = raw.info["truth"]["items"]
    life = pd.Series(truth["lifetime_days"], index=truth["item"]).loc[inter["item"]].to_numpy()
    age = (inter["ts"].to_numpy() - release) / 86_400 / life
    assert 0.4 < np.median(age) < 2.0


def test_title_words_follow_the_topic():
    w = world()
    raw = generate(SMALL, "small")
    topic_of = {word: t for t, words in enumerate(w.words) for word in words}
    own = other = total = 0
    for title, category in zip(raw.items["title"], raw.items["category"], strict=True):
        t = w.names.index(category)
        for word in title.lower().split():
            total += 1
            own += topic_of.get(word) == t
            other += word in topic_of and topic_of[word] != t
    assert other == 0
    assert 0.6 < own / total < 0.8  # rho_topic = 0.7, the rest generic
    brands = {b: t for t, bs in enumerate(w.brands) for b in bs}
    assert all(
        brands[b] == w.names.index(c)
        for b, c in zip(raw.items["brand"], raw.items["category"], strict=True)
    )


def test_users_follow_their_topics():
    raw = generate(SMALL, "small")
    truth = raw.info["truth"]
    topic = pd.Series(truth["items"]["topic"], index=truth["items"]["item"])
    own = pd.Series([set(t) for t in truth["users"]["topics"]], index=truth["users"]["user"])
    inter = raw.interactions
    hit = [t in s for t, s in zip(topic.loc[inter["item"]], own.loc[inter["user"]], strict=True)]
    assert np.mean(hit) > 0.6  # 6 topics: chance would be about 0.25


def test_tiny_domains_survive_the_5_core():
    tiny, tiny_b = (
        generate(_synthetic_node("tiny"), "tiny"),
        generate(_synthetic_node("tiny_b"), "tiny_b"),
    )
    for raw, n_items in ((tiny, 40), (tiny_b, 45)):
        assert len(raw.items) == n_items
        kept = _k_core(raw.interactions)
        assert kept["user"].nunique() >= 45
        assert kept["item"].nunique() >= 0.75 * n_items
    assert not set(tiny.items["item"]) & set(tiny_b.items["item"])
    assert set(tiny.items["category"]) != set(tiny_b.items["category"])


@pytest.mark.parametrize("name", ["synth_a", "synth_b", "synth_c", "synth_t"])
def test_shipped_domains_are_valid(name):
    from omegaconf import OmegaConf

    from recx.config.schema import DatasetSchema

    node = OmegaConf.load(CONF / f"{name}.yaml")
    node.pop("defaults")
    cfg = OmegaConf.merge(OmegaConf.structured(DatasetSchema), node)  # schema: no unknown keys
    assert cfg.reader == "synthetic" and cfg.name == name
    raw = generate(cfg.synthetic, name)
    kept = _k_core(raw.interactions)
    assert kept["user"].nunique() >= 0.95 * cfg.synthetic.n_users


def test_pooled_path_scales():
    params = {"seed": 9, "n_items": 50_000, "n_users": 11_000, "topics": list(range(12))}
    # its speed is measured by bench/bench_synthetic.py, not here: a timed test fails on a busy
    # machine (it did, at 8.1 s CPU against an 8 s bound, beside two training jobs)
    raw = generate(params, "big")
    inter = raw.interactions
    assert raw.info["sampling"] == "pooled"
    assert len(inter) > 150_000 and raw.info["dropped_events"] == 0
    assert not inter.duplicated(["user", "item"]).any()
    release = _release_ts(raw).loc[inter["item"]].to_numpy()
    assert (inter["ts"].to_numpy() >= release).all()
    assert (inter.groupby("user", sort=False)["ts"].diff().dropna() > 0).all()
    counts = inter["item"].value_counts()
    assert counts.iloc[: len(counts) // 10].sum() / counts.sum() > 0.3


def test_pooled_path_matches_the_exact_one():
    """Same domain, both samplers: the statistics the models rely on agree."""
    params = {**SMALL, "n_users": 600}

    def stats(raw):
        inter, truth = raw.interactions, raw.info["truth"]
        counts = inter["item"].value_counts()
        topic = pd.Series(truth["items"]["topic"], index=truth["items"]["item"])
        topic = topic.loc[inter["item"]].to_numpy()
        first = pd.Series([t[0] for t in truth["users"]["topics"]], index=truth["users"]["user"])
        release = _release_ts(raw).loc[inter["item"]].to_numpy()
        users = inter["user"].to_numpy()
        same_user = users[1:] == users[:-1]
        return np.array(
            [
                counts.iloc[: len(counts) // 10].sum() / counts.sum(),  # head share
                np.mean(topic == first.loc[inter["user"]].to_numpy()),  # main-topic share
                np.median((inter["ts"].to_numpy() - release) / 86_400),  # age when consumed
                np.mean((topic[1:] == topic[:-1])[same_user]),  # next event, same topic
            ]
        )

    exact = stats(generate(params, "exact"))
    pooled = stats(generate({**params, "exact_max_items": 0}, "pooled"))
    assert np.allclose(exact, pooled, rtol=0.1), (exact, pooled)
