"""Hostile inputs and damaged state: every mistake is one clear error, every damaged cache file
is rebuilt, and nothing is silently wrong.

Each case asserts the exit code (in-process: the `RecxError` class, which the CLI prints as one
panel with that code and no traceback; at the command line: the code itself and the absence of
"Traceback"), the key words of the message, and that the cache holds no partial entry
afterwards. Most cases run in-process (`execute`); those that only exist at the command line
(Hydra's own errors, names checked before Hydra creates a run dir, Ctrl-C) run `python -m recx`.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from recx.errors import (
    ArtifactMissingError,
    ConfigError,
    DataFormatError,
    DataMissingError,
    EvalError,
    RecxError,
)
from recx.store import SUCCESS, Store, entry_problem, is_ready
from tests.conftest import REPO, compose, run_stage

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COLS = ["dataset=custom", "dataset.columns.user=uid", "dataset.columns.item=sku",
        "dataset.columns.timestamp=ts"]
K2 = ["dataset.filters.k_core.user=2", "dataset.filters.k_core.item=2"]
K0 = ["dataset.filters.k_core.user=0", "dataset.filters.k_core.item=0"]
T0 = 1_600_000_000  # 2020-09-13 12:26:40 UTC
# 8 users with 6 events each over 7 items; file line of row r is r + 2 (after the header)
ROWS = [(f"u{u}", f"s{(u + k) % 7}", T0 + 1000 * k + u) for u in range(8) for k in range(6)]


def csv_text(rows=ROWS, header="uid,sku,ts", sep=",") -> str:
    return header + "\n" + "\n".join(sep.join(map(str, r)) for r in rows) + "\n"


def with_row(i: int, user=None, item=None, ts=None) -> str:
    rows = list(ROWS)
    u, it, t = rows[i]
    rows[i] = (u if user is None else user, it if item is None else item,
               t if ts is None else ts)
    return csv_text(rows)


def write(path: Path, data) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def custom(tmp_path, data, *extra, name="c.csv", stage="train", model="pop"):
    """Run `stage` on a custom file holding `data` (k-core 2/2 unless `extra` says otherwise)."""
    path = write(tmp_path / name, data) if data is not None else tmp_path / name
    return run_stage(tmp_path, stage, f"model={model}", *COLS, f"dataset.path={path}", *K2,
                     *extra)


def assert_cache_clean(root: Path) -> None:
    """No partial, lock, temporary or staging file anywhere; every entry complete and sound."""
    for base in ("outputs/cache", "outputs/artifacts", "data"):
        top = root / base
        if not top.exists():
            continue
        for p in top.rglob("*"):
            assert not p.name.endswith((".partial", ".lock")), p
            assert not re.search(r"\.tmp\d*$", p.name) and ".extracting" not in p.name, p
        for ok in top.rglob(SUCCESS):
            assert entry_problem(ok.parent) is None, ok.parent


def expect(tmp_path, error: type[RecxError], code: int, words, call, *args, **kw) -> str:
    """`call` raises `error` (exit `code`) whose message holds every word; the cache stays
    clean. Returns the message with its whitespace collapsed."""
    with pytest.raises(error) as e:
        call(*args, **kw)
    assert e.value.exit_code == code
    msg = " ".join(str(e.value).split())
    for w in words:
        assert w in msg, f"{w!r} not in: {msg}"
    assert_cache_clean(tmp_path)
    return msg


def data_entries(root: Path, name: str = "custom") -> list[Path]:
    return sorted(p.parent for p in (root / "outputs/cache/data" / name).glob(f"*/{SUCCESS}"))


def read_raw(tmp_path, path: Path, *extra):
    """The reader's output for a custom file (no processing, no cache)."""
    from recx.data.formats import get_reader
    from recx.data.rawfiles import RawFiles

    ds = compose("preprocess", [*COLS, f"dataset.path={path}", *extra], root=tmp_path).dataset
    return get_reader(str(ds.reader))(ds, RawFiles(None, {"main": path}))


# =================================================================== silent wrong results
@pytest.mark.parametrize(("data", "words"), [
    pytest.param(with_row(5, user=""), ["empty user id", "line 7", "column 'uid'"],
                 id="empty user"),
    pytest.param(with_row(5, user="NaN"), ["empty user id", "line 7", "NA/NaN/null"],
                 id="NaN user"),
    pytest.param(with_row(5, user="NA"), ["empty user id", "line 7"], id="NA user"),
    pytest.param(with_row(5, user="null"), ["empty user id", "line 7"], id="null user"),
    pytest.param(with_row(5, user="   "), ["empty user id", "line 7"], id="blank user"),
    pytest.param(with_row(5, user='""'), ["empty user id", "line 7"], id="quoted empty user"),
    pytest.param(with_row(9, item=""), ["empty item id", "line 11", "column 'sku'"],
                 id="empty item"),
    pytest.param(with_row(3, ts=""), ["timestamp", "missing", "line 5", "column 'ts'"],
                 id="empty timestamp"),
])
def test_missing_ids_and_timestamps_are_errors_not_one_made_up_user(tmp_path, data, words):
    """Before, 48 rows with some empty ids became one real user (dedup then dropped rows)."""
    expect(tmp_path, DataFormatError, 3, ["c.csv", *words], custom, tmp_path, data)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
@pytest.mark.parametrize("bad", [None, "", float("nan")], ids=["null", "empty", "nan"])
def test_missing_user_ids_in_parquet_and_json_lines(tmp_path, fmt, bad):
    users = [r[0] for r in ROWS]
    users[5] = bad
    frame = pd.DataFrame({"uid": users, "sku": [r[1] for r in ROWS], "ts": [r[2] for r in ROWS]})
    path = tmp_path / f"c.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path)
    else:
        path.write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n")
    expect(tmp_path, DataFormatError, 3, [f"c.{fmt}", "empty user id"], custom, tmp_path, None,
           name=f"c.{fmt}")


def test_one_row_with_no_filter_is_an_error_not_an_empty_table(tmp_path):
    """Before: exit 0, status ok, n_users 0 and no metric columns."""
    expect(tmp_path, DataFormatError, 3,
           ["no user of custom can be evaluated", "1 of 1 users", "dataset.filters.k_core.user=3"],
           custom, tmp_path, "uid,sku,ts\nu1,s1,1600000000\n", *K0)


def test_short_users_name_the_count_and_the_filter(tmp_path):
    rows = [(f"u{u}", f"s{k}", T0 + k) for u in range(6) for k in range(2)]
    expect(tmp_path, DataFormatError, 3, ["6 of 6 users have fewer than 3 events",
                                          "k_core.user=3"],
           custom, tmp_path, csv_text(rows), *K0, "train=fast", model="sasrec")


def test_no_training_sequence_is_a_message_not_a_stop_iteration(tmp_path):
    """3 events per user: valid and test exist, but no user keeps 2 training events."""
    rows = [(f"u{u}", f"s{(u + k) % 4}", T0 + k) for u in range(6) for k in range(3)]
    expect(tmp_path, DataFormatError, 3, ["no user of custom can be trained on",
                                          "6 of 6 users have fewer", "k_core.user=4"],
           custom, tmp_path, csv_text(rows), *K0, "train=fast", model="sasrec")


def test_rows_that_evaluated_no_user_are_an_error():
    from recx.stages import check_evaluated

    check_evaluated([{"split": "test", "slice": "cold_target", "n_users": 0},
                     {"split": "test", "slice": "all", "n_users": 3}])
    with pytest.raises(EvalError, match="no user was evaluated") as e:
        check_evaluated([{"split": "test", "slice": "all", "n_users": 0, "target": "t"}])
    assert e.value.exit_code == 6


def _edit_same_size_restore_mtime(path: Path) -> None:
    st = path.stat()
    text = path.read_text()
    edited = text.replace("u1,s2,", "u1,s3,", 1)
    assert edited != text and len(edited) == len(text)
    path.write_text(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


@pytest.mark.parametrize("verify", ["stat", "hash"])
def test_file_edited_in_place_with_restored_mtime_gets_a_new_cache_entry(tmp_path, verify):
    path = write(tmp_path / "c.csv", csv_text())
    first = custom(tmp_path, None, f"dataset.verify={verify}")
    custom(tmp_path, None, f"dataset.verify={verify}")  # unchanged: a cache hit
    assert len(data_entries(tmp_path)) == 1
    _edit_same_size_restore_mtime(path)
    second = custom(tmp_path, None, f"dataset.verify={verify}")
    assert len(data_entries(tmp_path)) == 2
    assert first.rows[0]["data_hash"] != second.rows[0]["data_hash"]
    assert_cache_clean(tmp_path)


def test_verify_is_no_part_of_the_data_or_the_experiment(tmp_path):
    """Both modes share cache entries, and `recx report` pools their runs."""
    from recx.data.domain import data_hash
    from recx.stages.common import experiment_hash

    over = ["model=pop", "target=tiny_b", "source=tiny"]
    plain = compose("transfer", over, root=tmp_path)
    hashed = compose("transfer", [*over, "target.verify=hash", "source.tiny.verify=hash"],
                     root=tmp_path)
    assert experiment_hash(plain) == experiment_hash(hashed)
    assert data_hash(plain.target, plain.eval, {}) == data_hash(hashed.target, hashed.eval, {})


def test_verify_hash_reads_the_file_again_whatever_the_memo_says(tmp_path):
    from recx.data import rawfiles

    path = write(tmp_path / "x.txt", "abc")
    rawfiles._use_sha_memo(tmp_path)
    # sha256("abc"), the textbook value
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert rawfiles.sha256_cached(path) == abc
    rawfiles._SHA_MEMO[rawfiles._memo_key(path)] = "stale"
    assert rawfiles.sha256_cached(path) == "stale"
    assert rawfiles.sha256_cached(path, fresh=True) == abc


# =================================================================== timestamps
@pytest.mark.parametrize(("scale", "unit", "word"), [
    (1000, "ms", "milliseconds"), (10**6, "us", "microseconds"), (10**9, "ns", "nanoseconds")])
def test_timestamps_in_a_finer_unit_name_the_unit_that_fits(tmp_path, scale, unit, word):
    """Before: 'year 52671 is out of range' from deep inside the statistics."""
    rows = [(u, i, t * scale) for u, i, t in ROWS]
    expect(tmp_path, DataFormatError, 3, ["c.csv", "line 2", "column 'ts'", word,
                                          f"dataset.timestamp.unit={unit}"],
           custom, tmp_path, csv_text(rows))


@pytest.mark.parametrize("value", ["inf", "-inf"])
def test_infinite_timestamp(tmp_path, value):
    """Before: OSError [Errno 75]."""
    expect(tmp_path, DataFormatError, 3, [f"timestamp {value}", "not a finite number", "line 6"],
           custom, tmp_path, with_row(4, ts=value))


def test_timestamp_that_is_not_a_number(tmp_path):
    expect(tmp_path, DataFormatError, 3, ["'yesterday' is not a number", "line 4",
                                          "dataset.timestamp.unit"],
           custom, tmp_path, with_row(2, ts="yesterday"))


def test_date_in_another_format_than_configured(tmp_path):
    rows = [(u, i, "01/02/2021") for u, i, _ in ROWS]
    expect(tmp_path, DataFormatError, 3, ["'01/02/2021' does not parse as 'iso'", "line 2"],
           custom, tmp_path, csv_text(rows), "dataset.timestamp.unit=iso")


def test_iso_stamps_with_time_zones_are_converted_to_utc(tmp_path):
    path = write(tmp_path / "c.csv", "uid,sku,ts\nu1,a,2021-01-01T10:00:00+02:00\n"
                 "u1,b,2021-01-01T10:00:00Z\nu1,c,2021-01-01T10:00:00-05:30\n")
    raw = read_raw(tmp_path, path, "dataset.timestamp.unit=iso")
    day = 1_609_459_200  # 2021-01-01 00:00 UTC
    assert raw.interactions["ts"].tolist() == [day + 8 * 3600, day + 10 * 3600,
                                               day + 15 * 3600 + 1800]


def test_strptime_format(tmp_path):
    path = write(tmp_path / "c.csv", "uid,sku,ts\nu1,a,02/01/2021 10:30\n")
    raw = read_raw(tmp_path, path, "dataset.timestamp.unit='%d/%m/%Y %H:%M'")
    assert raw.interactions["ts"].tolist() == [1_609_459_200 + 86400 + 10 * 3600 + 1800]


# =================================================================== encodings and bytes
def _same_interactions(tmp_path, data: bytes, *extra):
    ref = read_raw(tmp_path, write(tmp_path / "ref.csv", csv_text()))
    raw = read_raw(tmp_path, write(tmp_path / "enc.csv", data), *extra)
    for col in ("user", "item"):
        assert raw.interactions[col].astype(str).tolist() == \
            ref.interactions[col].astype(str).tolist()
    assert raw.interactions["ts"].tolist() == ref.interactions["ts"].tolist()


@pytest.mark.parametrize(("case", "encode"), [
    ("utf-16 with bom", lambda t: t.encode("utf-16")),
    ("utf-16-le without bom", lambda t: t.encode("utf-16-le")),
    ("utf-16-be without bom", lambda t: t.encode("utf-16-be")),
    ("utf-8 with bom", lambda t: b"\xef\xbb\xbf" + t.encode()),
])
def test_utf16_and_byte_order_marks_are_read(tmp_path, case, encode):
    _same_interactions(tmp_path, encode(csv_text()))


def test_gzip_csv_is_read(tmp_path):
    ref = read_raw(tmp_path, write(tmp_path / "ref.csv", csv_text()))
    raw = read_raw(tmp_path, write(tmp_path / "c.csv.gz", gzip.compress(csv_text().encode())))
    assert raw.interactions["ts"].tolist() == ref.interactions["ts"].tolist()


def test_latin1_file_names_the_line_and_the_option(tmp_path):
    data = with_row(6, item="caf\xe9").encode("latin-1")
    expect(tmp_path, DataFormatError, 3, ["c.csv", "line 8", "not valid utf-8",
                                          "dataset.options.encoding=latin-1"],
           custom, tmp_path, data)


def test_latin1_file_with_its_encoding_set_keeps_the_accents(tmp_path):
    data = with_row(6, item="caf\xe9").encode("latin-1")
    raw = read_raw(tmp_path, write(tmp_path / "l.csv", data), "+dataset.options.encoding=latin-1")
    assert "caf\xe9" in raw.interactions["item"].astype(str).tolist()


def test_bad_bytes_far_into_the_file_are_reported_with_their_line(tmp_path):
    """Past the first 64 KiB the check is the reader's own: nothing is replaced silently (two
    ids that differ only in a bad byte would become one)."""
    rows = [(f"u{k % 50}", f"s{k % 30}", T0 + k) for k in range(6000)]
    rows[5000] = ("u1", "caf\xe9", T0)
    data = csv_text(rows).encode("latin-1")
    assert data.index(b"\xe9") > 1 << 16
    expect(tmp_path, DataFormatError, 3, ["line 5002", "not valid utf-8"],
           custom, tmp_path, data)


def test_random_bytes_are_not_a_text_file(tmp_path):
    data = random.Random(0).randbytes(5000)
    expect(tmp_path, DataFormatError, 3, ["c.csv", "not a text file"], custom, tmp_path, data)


def test_unknown_encoding_name(tmp_path):
    expect(tmp_path, DataFormatError, 3, ["unknown encoding 'klingon'"],
           custom, tmp_path, csv_text(), "+dataset.options.encoding=klingon")


# =================================================================== file structure
def test_quoted_fields_may_hold_the_separator(tmp_path):
    path = write(tmp_path / "c.csv", csv_text().replace("s1,", '"s,1",'))
    raw = read_raw(tmp_path, path)
    assert "s,1" in raw.interactions["item"].astype(str).tolist()


@pytest.mark.parametrize(("sep", "name"), [(";", "c.csv"), ("|", "c.csv"), ("\t", "c.tsv")])
def test_other_separators(tmp_path, sep, name):
    raw = read_raw(tmp_path, write(tmp_path / name, csv_text(header=sep.join(["uid", "sku", "ts"]),
                                                             sep=sep)))
    assert len(raw.interactions) == len(ROWS)


def test_duplicate_header_names(tmp_path):
    expect(tmp_path, DataFormatError, 3, ["c.csv", "line 1", "'uid' twice"],
           custom, tmp_path, csv_text(header="uid,uid,ts"))


def test_missing_column_lists_the_columns(tmp_path):
    expect(tmp_path, DataFormatError, 3, ["column 'sku'", "['uid', 'item', 'ts']",
                                          "dataset.columns.item"],
           custom, tmp_path, csv_text(header="uid,item,ts"))


def test_row_with_an_extra_field(tmp_path):
    expect(tmp_path, DataFormatError, 3, ["malformed row", "line 5"],
           custom, tmp_path, with_row(3, ts=f"{T0},extra"))


def test_rating_that_is_not_a_number(tmp_path):
    rows = [(*r, "4.0" if k != 7 else "great") for k, r in enumerate(ROWS)]
    expect(tmp_path, DataFormatError, 3, ["rating 'great' is not a number", "line 9"],
           custom, tmp_path, csv_text(rows, header="uid,sku,ts,stars"),
           "dataset.columns.rating=stars")


@pytest.mark.parametrize(("data", "words"), [("", ["the file is empty"]),
                                             ("uid,sku,ts\n", ["no interactions"])])
def test_empty_file_and_header_only(tmp_path, data, words):
    expect(tmp_path, DataFormatError, 3, ["c.csv", *words], custom, tmp_path, data)


def test_parquet_with_text_timestamps(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"uid": ["u1", "u2"], "sku": ["a", "b"], "ts": ["soon", "later"]}
                 ).to_parquet(path)
    expect(tmp_path, DataFormatError, 3, ["c.parquet", "'soon' is not a number"],
           custom, tmp_path, None, name="c.parquet")


def test_parquet_with_float_ids_keeps_them_apart(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"uid": [1.5, 2.0, 1.5], "sku": [1, 2, 3], "ts": [1, 2, 3]}).to_parquet(path)
    users = read_raw(tmp_path, path).interactions["user"].tolist()
    assert users[0] == users[2] != users[1] and float(users[0]) == 1.5


def test_truncated_parquet_input(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"uid": ["u1"], "sku": ["a"], "ts": [T0]}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:100])
    expect(tmp_path, DataFormatError, 3, ["c.parquet", "not a readable Parquet file"],
           custom, tmp_path, None, name="c.parquet")


def test_json_lines_with_a_broken_line(tmp_path):
    good = [json.dumps({"uid": u, "sku": i, "ts": t}) for u, i, t in ROWS[:4]]
    data = "\n".join([*good[:2], '{"uid": "u9", "sku":', *good[2:]]) + "\n"
    expect(tmp_path, DataFormatError, 3, ["c.jsonl", "line 3", "not valid JSON"],
           custom, tmp_path, data, name="c.jsonl")


def test_directory_given_as_the_file(tmp_path):
    """Before: IsADirectoryError."""
    folder = tmp_path / "exports"
    folder.mkdir()
    write(folder / "clicks.csv", csv_text())
    expect(tmp_path, DataFormatError, 3, ["dataset.path=", "is a directory",
                                          "clicks.csv", "dataset.path="],
           run_stage, tmp_path, "train", "model=pop", *COLS, f"dataset.path={folder}")


def test_missing_file(tmp_path):
    expect(tmp_path, DataMissingError, 3, ["nope.csv", "not found", "dataset.path"],
           run_stage, tmp_path, "train", "model=pop", *COLS, f"dataset.path={tmp_path}/nope.csv")


def test_raw_dir_that_is_a_file(tmp_path):
    f = write(tmp_path / "u.data", "1\t1\t5\t1\n")
    expect(tmp_path, DataMissingError, 3, ["dataset.raw_dir=", "is a file", "dataset.path"],
           run_stage, tmp_path, "preprocess", "dataset=ml_100k", f"dataset.raw_dir={f}")


def test_empty_item_file(tmp_path):
    items = write(tmp_path / "items.csv", "")
    expect(tmp_path, DataFormatError, 3, ["items.csv", "empty"],
           custom, tmp_path, csv_text(), f"dataset.items.path={items}", "dataset.items.key=sku")


def test_item_file_without_its_key_column(tmp_path):
    items = write(tmp_path / "items.csv", "id,title\ns1,one\n")
    expect(tmp_path, DataFormatError, 3, ["items.csv", "column 'sku'", "['id', 'title']"],
           custom, tmp_path, csv_text(), f"dataset.items.path={items}", "dataset.items.key=sku")


# =================================================================== configuration
TINY = ["dataset=tiny"]


@pytest.mark.parametrize(("overrides", "words"), [
    (["model=sasrec", "model.optim.lr=abc"], ["model.optim.lr=abc must be a number"]),
    (["model=sasrec", "model.optim.batch_size=abc"],
     ["model.optim.batch_size=abc must be an integer"]),
    (["model=sasrec", "model.optim.batch_size=-4"], ["model.optim.batch_size=-4 must be positive"]),
    (["model=pop", "seed=-1"], ["seed=-1 must be a non-negative integer"]),
    (["model=sasrec", "model.dropout=2.0"], ["model.dropout=2.0 must be a probability in [0, 1)"]),
    (["model=sasrec", "model.hidden=abc"], ["model.hidden=abc must be an integer"]),
    (["model=sasrec", "eval.ties=pesimistic"],
     ["eval.ties='pesimistic' — did you mean 'pessimistic'?"]),
    (["model=pop", "eval.scenario=leave_one_ot"], ["did you mean 'leave_one_out'?"]),
    (["model=sasrec", "model.optim.loss=cee"], ["model.optim.loss=cee — did you mean 'ce'?"]),
    (["model=pop", "train.resume=nevr"], ["did you mean 'never'?"]),
    (["model=pop", "dataset.filters.dedup=earlist"], ["did you mean 'earliest'?"]),
    (["model=pop", "dataset.timestamp.unit=sec"], ["did you mean 's'?", "strptime"]),
    (["model=pop", "eval.metrics=[NDGC]"], ["'NDGC' — did you mean 'NDCG'?"]),
    (["model=pop", "dataset.filters.k_core.user=-1"], ["dataset.filters.k_core.user=-1"]),
    (["model=sasrec", "+model.hiden=64"], ["model.hiden is not a parameter of SASRec",
                                           "did you mean 'hidden'?"]),
    (["model=pop", "dataset.name=../../x"], ["dataset.name='../../x' is not a plain name"]),
    (["model=pop", "dataset.name=/abs/x"], ["dataset.name='/abs/x' is not a plain name"]),
])
def test_config_mistakes_fail_before_any_data_is_read(tmp_path, overrides, words):
    """Before: the validator crashed on 'abc', torch on dropout 2.0, numpy on seed -1, and
    eval.ties=pesimistic trained SASRec for 10 epochs before failing."""
    expect(tmp_path, ConfigError, 2, words, run_stage, tmp_path, "train", *TINY, *overrides)
    assert not (tmp_path / "outputs" / "cache").exists()  # nothing was read or built


def test_custom_dataset_without_its_path_or_columns(tmp_path):
    """Before: a data-missing panel with empty "Expected files / Missing"."""
    expect(tmp_path, ConfigError, 2, ["dataset.path is not set", "dataset.columns.item is not set"],
           run_stage, tmp_path, "train", "model=pop", "dataset=custom",
           "dataset.columns.user=uid", "dataset.columns.timestamp=ts")


def test_dataset_keys_in_a_transfer_stage_are_not_ignored(tmp_path):
    expect(tmp_path, ConfigError, 2, ["dataset.raw_dir has no effect in `recx transfer`",
                                      "target.raw_dir="],
           run_stage, tmp_path, "transfer", "model=pop", "target=tiny_b",
           "+dataset.raw_dir=/nowhere")


@pytest.mark.parametrize(("stage", "overrides", "key"), [
    ("transfer", ["model=pop", "target=ml_100k", "offline=true"], "target.raw_dir"),
    ("pretrain", ["model=pop", "source=ml_100k", "offline=true"], "source.ml_100k.raw_dir"),
])
def test_missing_data_names_the_key_of_its_role(tmp_path, stage, overrides, key):
    msg = expect(tmp_path, DataMissingError, 3, [f"{key}=/path/to/folder", "not available"],
                 run_stage, tmp_path, stage, *overrides)
    assert "dataset.raw_dir" not in msg


def test_documented_model_keys_give_types_and_choices():
    from recx.config.documented import Documented, parse, type_problem

    schema = parse(
        "hidden: 64              # (int) hidden size\n"
        "optim:\n"
        "  lr: 1.0e-3            # (float) Adam learning rate\n"
        "  loss: ce              # (str) ce = softmax | bce_1neg = one negative\n"
        "  stride: null          # (int|null) targets per window\n"
        "act: gelu               # (str) the activation, gelu | relu are common\n"
        "op: l1                  # (str) edge vector: hadamard | l1\n"
        "capabilities: {a: 1}\n")
    assert schema == {"hidden": Documented(("int",)), "optim.lr": Documented(("float",)),
                      "optim.loss": Documented(("str",), ("ce", "bce_1neg")),
                      "optim.stride": Documented(("int", "null")),
                      "act": Documented(("str",)),  # prose: its value is not a listed word
                      "op": Documented(("str",), ("hadamard", "l1"))}
    assert type_problem(3, schema["optim.lr"]) is None
    assert type_problem(True, schema["hidden"]) == "must be an integer"
    assert type_problem("x", schema["optim.stride"]) == "must be an integer or null"


def test_every_choice_field_of_the_schemas_is_listed():
    from recx.config.schema import DatasetSchema, EvalSchema, TrainSchema, choice_fields

    assert set(choice_fields(EvalSchema)) == {"scenario", "candidates", "sampler",
                                              "mask_history", "mask_variants", "ties",
                                              "select_protocol"}
    assert set(choice_fields(TrainSchema)) == {"amp", "resume", "ddp.backend"}
    assert set(choice_fields(DatasetSchema)) == {"origin.archive", "timestamp.unit",
                                                 "filters.dedup", "verify"}


# =================================================================== damaged state
@pytest.fixture
def tiny_entry(tmp_path):
    """A finished cache entry of `tiny` and the stage result that built it."""
    first = run_stage(tmp_path, "train", "model=pop", "dataset=tiny")
    (entry,) = data_entries(tmp_path, "tiny")
    return entry, first


def _rerun_rebuilds(tmp_path, entry, first, caplog):
    with caplog.at_level(logging.WARNING, logger="recx"):
        again = run_stage(tmp_path, "train", "model=pop", "dataset=tiny")
    assert any("damaged cache entry" in r.getMessage() and "rebuilding it" in r.getMessage()
               for r in caplog.records)
    assert is_ready(entry) and data_entries(tmp_path, "tiny") == [entry]
    assert [r["NDCG@10"] for r in again.rows] == [r["NDCG@10"] for r in first.rows]
    assert_cache_clean(tmp_path)


@pytest.mark.parametrize("name", ["interactions.parquet", "domain.json", "stats.json",
                                  "items.parquet"])
def test_truncated_cache_file_is_detected_and_rebuilt(tmp_path, tiny_entry, caplog, name):
    entry, first = tiny_entry
    f = entry / name
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    _rerun_rebuilds(tmp_path, entry, first, caplog)


def test_same_size_damage_is_caught_by_the_reader_and_rebuilt(tmp_path, tiny_entry, caplog):
    entry, first = tiny_entry
    f = entry / "interactions.parquet"
    data = bytearray(f.read_bytes())
    data[-12:] = b"\0" * 12  # the footer: same size, unreadable
    f.write_bytes(bytes(data))
    _rerun_rebuilds(tmp_path, entry, first, caplog)


def test_deleted_cache_file_is_rebuilt(tmp_path, tiny_entry, caplog):
    entry, first = tiny_entry
    (entry / "items.parquet").unlink()
    _rerun_rebuilds(tmp_path, entry, first, caplog)


def test_truncated_evaluation_cache_is_ranked_again(tmp_path, tiny_entry):
    _, first = tiny_entry
    files = list((tmp_path / "outputs/cache/eval").glob("*.npz"))
    assert files
    for f in files:
        f.write_bytes(f.read_bytes()[:100])
    again = run_stage(tmp_path, "train", "model=pop", "dataset=tiny")
    assert [r["NDCG@10"] for r in again.rows] == [r["NDCG@10"] for r in first.rows]


SASREC = ["model=sasrec", "dataset=tiny", "train=fast"]


def test_damaged_or_deleted_checkpoint_is_retrained_by_its_stage(tmp_path, caplog):
    """Before: recx said "delete it and run again", and then "does not exist, run the stage
    that creates it", even with train.resume=never."""
    first = run_stage(tmp_path, "train", *SASREC)
    (entry,) = [p.parent for p in (tmp_path / "outputs/artifacts/train/sasrec/tiny").glob(
        f"*/{SUCCESS}")]
    ckpt = entry / "model.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    assert "model.pt has 300 bytes" in entry_problem(entry)
    with caplog.at_level(logging.WARNING, logger="recx"):
        again = run_stage(tmp_path, "train", *SASREC, "train.resume=never")
    assert "damaged cache entry" in caplog.text and is_ready(entry)
    ckpt.unlink()
    third = run_stage(tmp_path, "train", *SASREC)
    assert is_ready(entry)
    ndcg = [[r["NDCG@10"] for r in res.rows] for res in (first, again, third)]
    assert ndcg[0] == ndcg[1] == ndcg[2]  # the same seed retrains the same weights
    assert_cache_clean(tmp_path)


def test_transfer_after_a_damaged_pretrain_checkpoint_names_the_command(tmp_path):
    run_stage(tmp_path, "pretrain", "model=preprec", "source=tiny", "train=fast")
    (entry,) = [p.parent for p in (tmp_path / "outputs/artifacts/pretrain").rglob(SUCCESS)]
    (entry / "model.pt").write_bytes(b"")
    with pytest.raises(ArtifactMissingError, match="recx pretrain model=preprec") as e:
        run_stage(tmp_path, "transfer", "model=preprec", "source=tiny", "target=tiny_b",
                  "train=fast")
    assert e.value.exit_code == 4
    run_stage(tmp_path, "pretrain", "model=preprec", "source=tiny", "train=fast")  # the advice
    assert is_ready(entry)
    assert_cache_clean(tmp_path)
    run_stage(tmp_path, "transfer", "model=preprec", "source=tiny", "target=tiny_b",
              "train=fast")


def test_unreadable_resume_point_restarts_training(tmp_path, caplog):
    from recx import artifacts

    cfg = compose("train", SASREC, root=tmp_path)
    run_stage(tmp_path, "preprocess", "dataset=tiny", "figures=false")
    (data,) = data_entries(tmp_path, "tiny")
    h = artifacts.ckpt_hash(cfg, cfg.model, [json.loads((data / "domain.json").read_text())
                                             ["data_hash"]])
    partial = Store.partial_of(artifacts.train_dir(cfg, "sasrec", "tiny", h))
    partial.mkdir(parents=True)
    (partial / "last.pt").write_bytes(b"PK\x03\x04 cut short")
    with caplog.at_level(logging.WARNING, logger="recx"):
        run_stage(tmp_path, "train", *SASREC)
    assert "starts again from epoch 1" in caplog.text
    assert_cache_clean(tmp_path)


def test_failed_training_leaves_no_empty_partial_folder(tmp_path):
    """The run diverges (a NaN loss or NaN scores, whichever comes first) before any resume
    point exists: the entry's partial folder goes with it."""
    msg = expect(tmp_path, EvalError, 6, [], run_stage, tmp_path, "train", *SASREC,
                 "model.optim.lr=1e30")
    assert "non-finite" in msg or "NaN" in msg
    assert not list((tmp_path / "outputs/artifacts").rglob("*.partial"))


def test_leftover_temporary_file_never_enters_a_finished_entry(tmp_path):
    """A kill during preprocessing leaves `<entry>.partial/stats.json.tmp<pid>`: the next build
    starts from a clean folder."""
    run_stage(tmp_path, "preprocess", "dataset=tiny", "figures=false")
    (entry,) = data_entries(tmp_path, "tiny")
    names = sorted(p.name for p in entry.iterdir())
    import shutil

    shutil.rmtree(entry)
    partial = Store.partial_of(entry)
    partial.mkdir()
    write(partial / "stats.json.tmp99999", "{")
    write(partial / "interactions.parquet", "half")
    run_stage(tmp_path, "preprocess", "dataset=tiny", "figures=false")
    assert sorted(p.name for p in entry.iterdir()) == names
    assert_cache_clean(tmp_path)


def test_store_keeps_a_resume_point_but_not_temporary_files(tmp_path):
    store = Store(tmp_path)
    entry = store.entry("m", "h")
    with pytest.raises(KeyboardInterrupt), store.building(entry) as work:
        write(work / "last.pt", "epoch 2")
        write(work / "last.pt.tmp123", "half")
        raise KeyboardInterrupt
    partial = Store.partial_of(entry)
    assert sorted(p.name for p in partial.iterdir()) == ["last.pt"]
    with pytest.raises(RuntimeError), store.building(entry) as work:
        (work / "last.pt").unlink()
        raise RuntimeError("failed before any checkpoint")
    assert not partial.exists()  # nothing to resume from: no empty folder left
    store.get_or_build(entry, lambda p: write(p / "a.txt", "abc"))
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["files"] == {"a.txt": 3}
    write(entry / "a.txt", "ab")
    assert entry_problem(entry) == "a.txt has 2 bytes, 3 when it was written"
    assert not is_ready(entry)


def _zip_config(tmp_path, members: dict[str, bytes], pins: dict[str, str | None]):
    src = tmp_path / "mirror" / "d.zip"
    src.parent.mkdir()
    with zipfile.ZipFile(src, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    cfg = compose("preprocess", ["dataset=ml_latest_small", f"dataset.origin.url={src.as_uri()}"],
                  root=tmp_path)
    cfg.dataset.origin.files = pins
    return cfg


def test_archive_with_an_unsafe_member_leaves_nothing_extracted(tmp_path):
    """The good member came first; it must not wait in the data folder for the next run."""
    from recx.data.rawfiles import resolve_raw_files

    cfg = _zip_config(tmp_path, {"ml-latest-small/movies.csv": b"movieId,title\n1,a\n",
                                 "../ml-latest-small/ratings.csv": b"x"},
                      {"ml-latest-small/ratings.csv": None, "ml-latest-small/movies.csv": None})
    expect(tmp_path, DataFormatError, 3, ["would be written outside"],
           resolve_raw_files, cfg.dataset, cfg.paths)
    assert not list((tmp_path / "data").rglob("*.csv"))


# =================================================================== the command line
def cli(tmp_path, *args, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    out = subprocess.run([sys.executable, "-m", "recx", *args, f"paths.root={tmp_path}"],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=timeout)
    out.text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", out.stdout + out.stderr).split())
    return out


@pytest.mark.parametrize(("args", "words"), [
    (["train", "foo=1"], ["unknown key 'foo'", "+foo=1"]),
    (["train", "model=sasrec", "model.hiden=64"], ["did you mean 'model.hidden'?"]),
    (["train", "sed=1"], ["did you mean 'seed'?"]),
    (["train", "train=fst"], ["unknown train option 'fst'", "did you mean 'fast'?"]),
    (["train", "train.max_epochs=abc"], ["train.max_epochs=abc", "Integer"]),
    (["train", "experiment=run_tiy"], ["did you mean 'run_tiny'?"]),
    (["train", "eval.ks=[1,2"], ["cannot parse the override 'eval.ks=[1,2'"]),
    (["pretrain", "source=[]"], ["pick at least one"]),
    (["transfer", "source=null", "target=tiny"], ["pick at least one"]),
    (["train", "dataset=tiny", "dataset.name=../../x"], ["dataset.name='../../x'"]),
    (["train", "dataset=tiny", "run_name=../../../escaped"], ["run_name='../../../escaped'"]),
])
def test_command_line_mistakes_are_one_message_with_exit_code_2(tmp_path, args, words):
    """Hydra's own errors and names checked before Hydra creates the run dir from them."""
    out = cli(tmp_path, *args)
    assert out.returncode == 2, out.text
    assert "Traceback" not in out.stdout + out.stderr
    for w in words:
        assert w in out.text, out.text
    assert not (tmp_path / "outputs").exists() and not list(tmp_path.parent.glob("escaped*"))


def test_launcher_that_is_not_installed_names_the_extra(tmp_path):
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher"):
        pytest.skip("the submitit launcher is installed here")
    out = cli(tmp_path, "train", "-m", "model=pop", "dataset=tiny",
              "hydra/launcher=submitit_local")
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr
    assert "pip install 'recx[launchers]'" in out.text and "submitit" in out.text


def test_data_error_at_the_command_line_is_one_panel_with_exit_code_3(tmp_path):
    path = write(tmp_path / "c.csv", csv_text([(u, i, t * 1000) for u, i, t in ROWS]))
    out = cli(tmp_path, "train", "model=pop", *COLS, f"dataset.path={path}", *K2)
    assert out.returncode == 3 and "Traceback" not in out.stdout + out.stderr
    assert "milliseconds" in out.text and "dataset.timestamp.unit=ms" in out.text
    assert_cache_clean(tmp_path)


def test_ctrl_c_is_one_line_exit_130_and_the_resume_point_is_kept(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        # a shell's background job inherits SIGINT ignored: give the child Ctrl-C back
        p = subprocess.Popen([sys.executable, "-m", "recx", "train", "model=sasrec",
                              "dataset=tiny", "train.max_epochs=500", "progress=false",
                              "model.optim.patience=1000", f"paths.root={tmp_path}"],
                             stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 90
        while time.time() < deadline and "epoch 2:" not in log.read_text():
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        assert p.wait(60) == 130
    text = " ".join(log.read_text().split())
    assert "Traceback" not in text
    m = re.search(r"interrupted; the same command resumes from epoch (\d+)", text)
    assert m, text[-2000:]
    import torch

    (last,) = (tmp_path / "outputs/artifacts/train/sasrec/tiny").glob("*.partial/last.pt")
    assert torch.load(last, weights_only=True)["epoch"] == int(m.group(1)) - 1
    assert not list((tmp_path / "outputs").rglob("*.lock"))


def test_interrupt_outside_training_says_it_starts_again():
    from recx.errors import Interrupted

    assert Interrupted().line.startswith("interrupted; the same command starts again")
    assert Interrupted(7).line == "interrupted; the same command resumes from epoch 7"
    assert Interrupted.exit_code == 130

