"""The streaming machinery: chunked id encoding, and the mask-based processing checked against a
plain pandas rendering of the same rules (ARCHITECTURE §6.4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from omegaconf import OmegaConf

from recx.data.canonical import RawData
from recx.data.process import process
from recx.data.readers.ids import Column, IdCodes


def test_id_codes_merge_chunks_and_sort_categories(monkeypatch):
    monkeypatch.setattr(IdCodes, "COMPACT_MIN", 5)  # merge dictionaries often
    ids = IdCodes()
    chunks = [pa.array(["b", "a", "b"]), pa.array(["10", "9"]),
              pa.array(["c", "a"]).dictionary_encode(), pd.Series(["z", "b"])]
    for c in chunks:
        ids.add(c)
    cat = ids.finish()
    assert list(cat.astype(str)) == ["b", "a", "b", "10", "9", "c", "a", "z", "b"]
    assert list(cat.categories) == sorted(cat.categories)  # code-point order for text


def test_numeric_ids_sort_numerically_and_nulls_are_errors():
    ids = IdCodes()
    ids.add(pa.array(["10", "9"]))
    ids.add(pa.array([100, 2]))
    assert list(ids.finish().categories) == [2, 9, 10, 100]
    from recx.errors import DataFormatError

    with pytest.raises(DataFormatError, match=r"line 12.*empty user id"):
        IdCodes().add(pa.array(["a", None]), path="f.csv", line0=11)


def test_column_grows_without_losing_data():
    col = Column(np.int64, capacity=1)
    for k in range(50):
        col.extend(np.arange(k, k + 300))
    assert col.view()[-1] == 49 + 299 and len(col.view()) == 50 * 300


def test_json_lines_longer_than_a_block_are_read_whole(tmp_path, monkeypatch):
    import json

    from recx.data.readers import jsonl
    from recx.data.readers.sink import Sink

    monkeypatch.setattr(jsonl, "JSON_BLOCK", 256)  # the reader retries with bigger blocks
    rows = [{"u": f"u{k % 3}", "i": f"i{k}", "t": 1000 + k, "text": "x" * (40 if k else 5000)}
            for k in range(40)]
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sink = Sink(path, user="u", item="i", ts="t", unit="s")
    jsonl.scan_json(path, sink, {"u": pa.string(), "i": pa.string(), "t": pa.int64()})
    raw = sink.finish()
    assert raw.info["rows"] == 40
    assert raw.interactions["ts"].tolist() == [1000 + k for k in range(40)]
    assert raw.interactions["item"].astype(str).tolist() == [f"i{k}" for k in range(40)]


def _reference(frame: pd.DataFrame, k_user: int, k_item: int, min_rating,
               dedup: str = "earliest") -> pd.DataFrame:
    """The processing rules written the slow, obvious way."""
    f = frame.assign(order=np.arange(len(frame)))
    by = ["user", "item", "ts", "order"] if dedup == "earliest" else ["user", "item", "order"]
    f = f.sort_values(by).drop_duplicates(["user", "item"])
    f = f.sort_values("order")
    if min_rating is not None:
        f = f[f["rating"] >= min_rating]
    while True:
        uc, ic = f["user"].map(f["user"].value_counts()), f["item"].map(f["item"].value_counts())
        bad = (uc < k_user) | (ic < k_item)
        if not bad.any():
            break
        f = f[~bad]
    f = f.assign(user=f["user"].rank(method="dense").astype(np.int32),
                 item=f["item"].rank(method="dense").astype(np.int32))
    f = f.sort_values(["user", "ts", "order"], kind="stable")
    return f[["user", "item", "ts", "rating"]].reset_index(drop=True)


@pytest.mark.parametrize(("min_rating", "dedup", "parallel"),
                         [(None, "earliest", False), (3.0, "earliest", False),
                          (None, "first_row", False), (3.0, "earliest", True),
                          (None, "first_row", True)])
def test_mask_based_processing_matches_the_reference(min_rating, dedup, parallel, monkeypatch):
    if parallel:  # the threaded sort and the blocked dedup, at a size a test can afford
        monkeypatch.setattr("recx.data.process.SORT_PART_ROWS", 500)
        monkeypatch.setattr("recx.data.filters.DEDUP_BLOCK_ROWS", 64)
    rng = np.random.default_rng(1)
    n = 6000
    frame = pd.DataFrame({"user": rng.integers(0, 300, n), "item": rng.integers(0, 80, n),
                          "ts": rng.integers(0, 50, n).astype(np.int64),  # many ties
                          "rating": rng.integers(1, 6, n).astype(np.float32)})
    ds = OmegaConf.create({"name": "t", "text_fields": [], "filters": {
        "dedup": dedup, "min_rating": min_rating,
        "k_core": {"user": 5, "item": 5, "iterative": True}}})
    ev = OmegaConf.create({"scenario": "leave_one_out", "valid_quantile": 0.8,
                           "test_quantile": 0.9, "cold_item_fraction": 0.0})
    raw = RawData(frame.copy(), None, {})
    out = process(raw, ds, ev)
    assert len(raw.interactions) == 0  # consumed: its memory is released during processing
    got = out.interactions[["user", "item", "ts", "rating"]]
    pd.testing.assert_frame_equal(got, _reference(frame, 5, 5, min_rating, dedup))
    kept = process(RawData(frame.copy(), None, {}), ds, ev, keep_input=True)
    pd.testing.assert_frame_equal(kept.interactions, out.interactions)


def _custom(tmp_path, path):
    from recx.data.domain import load_domain
    from tests.conftest import compose

    cfg = compose("preprocess", ["dataset=custom", f"dataset.path={path}",
                                 "dataset.columns.user=user", "dataset.columns.item=item",
                                 "dataset.columns.timestamp=timestamp",
                                 "dataset.filters.k_core.user=0",
                                 "dataset.filters.k_core.item=0", f"paths.root={tmp_path}"])
    return lambda: load_domain(cfg.dataset, cfg.eval, cfg.paths, offline=True)


def test_a_new_file_is_hashed_while_read_and_a_known_one_is_not_reread(tmp_path, monkeypatch):
    import os

    from recx.data import domain as dom
    from recx.data import rawfiles

    monkeypatch.setattr(rawfiles, "_SHA_MEMO", {})
    path = tmp_path / "clicks.csv"
    path.write_text("user,item,timestamp\nu1,a,1\nu1,b,2\nu1,c,3\nu2,a,4\nu2,c,5\nu2,b,6\n")
    builds = []
    real_build = dom._build
    monkeypatch.setattr(dom, "_build", lambda *a: builds.append(1) or real_build(*a))
    load = _custom(tmp_path, path)
    first = load()
    assert len(builds) == 1  # built once, beside the hash of the new file
    memo = tmp_path / "outputs" / "cache" / "sha256-memo.json"
    assert memo.exists() and rawfiles.sha256_known(path)

    monkeypatch.setattr(rawfiles, "_SHA_MEMO", {})  # a new process: the memo comes from disk
    again = load()
    assert len(builds) == 1 and again.path == first.path  # a hit reads nothing raw

    os.utime(path, ns=(10**18, 10**18))  # touched, same bytes: read again, result discarded
    touched = load()
    assert len(builds) == 2 and touched.path == first.path
    np.testing.assert_array_equal(touched.item, first.item)

    path.write_text(path.read_text() + "u2,d,7\n")  # changed: a new cache entry
    changed = load()
    assert len(builds) == 3 and changed.path != first.path and changed.n_items == 4


def test_a_bad_new_file_fails_without_waiting_for_its_hash(tmp_path, monkeypatch):
    import threading

    from recx.config.hashing import file_sha256
    from recx.data import rawfiles
    from recx.errors import DataFormatError

    monkeypatch.setattr(rawfiles, "_SHA_MEMO", {})
    path = tmp_path / "clicks.csv"
    path.write_text("user,item,timestamp\nu1,a,1\nu1,b,yesterday\n")
    with pytest.raises(DataFormatError, match="timestamp"):
        _custom(tmp_path, path)()
    assert not list((tmp_path / "outputs" / "cache").glob("data/*/*/_SUCCESS"))
    stop = threading.Event()
    stop.set()  # what a failed read does to the hash running beside it
    with pytest.raises(InterruptedError):
        file_sha256(path, abort=stop)
