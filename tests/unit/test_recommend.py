"""recx recommend: top-k per user under the domain's candidate policy, original ids, every way a
model is made (train, transfer, finetune, interpolate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recx.data.domain import domain_from_frame
from recx.errors import ArtifactMissingError, ConfigError
from recx.stages.recommend import recommendation_frame, top_items, user_ids
from tests.conftest import run_stage, timeline_frame

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hand_domain(repeat: bool = False):
    """Items a..e get ids 1..5 (sorted raw ids). Leave-one-out: the last event is test, the one
    before valid, the rest train; train counts: a 1 (ua), b 3 (ua, ub, uc); c, d, e none."""
    events = {"ua": [("a", 1), ("b", 2), ("c", 3), ("d", 4)],
              "ub": [("b", 1), ("c", 2), ("e", 3)],
              "uc": [("b", 1), ("a", 2), ("c", 3)]}
    if repeat:  # uc's last event repeats b: the data keep repeats
        events["uc"] = [("b", 1), ("a", 2), ("c", 3), ("b", 4)]
    return domain_from_frame(timeline_frame(events), "hand", dedup="all" if repeat else "earliest")


def popularity_scorer(domain):
    counts = torch.from_numpy(domain.train_item_counts.astype(np.float32))

    def score(batch):
        return counts.expand(1, len(batch), -1)

    return score


def test_hand_checked_top_items_under_each_candidate_rule():
    d = hand_domain()
    assert d.repeat_free and list(d.items["raw_id"]) == list("abcde")
    assert d.train_item_counts.tolist() == [0, 1, 3, 0, 0, 0]
    users = user_ids(d, None)
    vals, ids = top_items(d, popularity_scorer(d), users, 3, mask_history=True, max_len=10)
    # masked: ua has seen a-d (only e is left), ub b, c, e (a 1 > d 0), uc a-c (d, e tie at 0:
    # the smaller id first); −∞ marks the places no candidate fills
    assert ids[0, 0] == 5 and ids[1, :2].tolist() == [1, 4] and ids[2, :2].tolist() == [4, 5]
    assert np.isneginf(vals[0, 1:]).all() and np.isneginf(vals[1:, 2]).all()
    frame = recommendation_frame(d, users, vals, ids)
    assert frame[["user", "rank", "item"]].values.tolist() == [
        ["ua", 1, "e"], ["ub", 1, "a"], ["ub", 2, "d"], ["uc", 1, "d"], ["uc", 2, "e"]]
    assert frame["score"].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    # no mask: the counts alone, ties (c, d, e at 0) to the smaller id
    _, ids = top_items(d, popularity_scorer(d), users, 3, mask_history=False, max_len=10)
    assert ids.tolist() == [[2, 1, 3]] * 3


def test_users_by_original_id_and_chunking_do_not_change_the_lists():
    d = hand_domain()
    sel = user_ids(d, ["uc", "ua"])
    assert sel.tolist() == [3, 1]
    whole = top_items(d, popularity_scorer(d), user_ids(d, None), 2, mask_history=True,
                      max_len=10)
    one_by_one = top_items(d, popularity_scorer(d), user_ids(d, None), 2, mask_history=True,
                           max_len=10, max_scores=12)  # 12 // (2 · 6 scores): one user a chunk
    assert np.array_equal(whole[1], one_by_one[1])
    with pytest.raises(ConfigError, match="not in hand: zz"):
        user_ids(d, ["ua", "zz"])


def test_users_from_a_file(tmp_path):
    d = hand_domain()
    path = tmp_path / "users.txt"
    path.write_text("ub\n\nua\n")
    assert user_ids(d, str(path)).tolist() == [2, 1]
    with pytest.raises(ConfigError, match="no such file"):
        user_ids(d, str(tmp_path / "none.txt"))


def test_next_item_batch_holds_the_whole_sequence():
    from recx.data.sequences import next_item_batch

    d = hand_domain(repeat=True)
    assert not d.repeat_free
    b = next_item_batch(d, np.array([3, 1]), 3, np.array([9, 9]))
    # uc: b a c b → the last 3 (every split); ua: a b c d → b c d
    assert b.items.tolist() == [[1, 3, 2], [2, 3, 4]]
    assert b.query_pos.tolist() == [-1, -1] and b.users.tolist() == [3, 1]
    assert b.query_ts.tolist() == [9, 9] and b.lengths.tolist() == [3, 3]


def _recs(res) -> pd.DataFrame:
    assert res.table is not None and not res.write
    return res.table


def _train_popularity_reference(domain, k: int) -> list[list[str]]:
    """The definition: training counts, the user's items masked, count desc then id asc."""
    counts = domain.train_item_counts
    raw = domain.items.set_index("item")["raw_id"]
    out = []
    for u in range(1, domain.n_users + 1):
        seen = set(domain.item[domain.indptr[u]:domain.indptr[u + 1]].tolist())
        cand = [i for i in range(1, domain.n_items + 1) if i not in seen]
        cand.sort(key=lambda i: (-counts[i], i))
        out.append([raw[i] for i in cand[:k]])
    return out


def test_stage_in_domain_pop_equals_the_definition(tmp_path):
    from recx.data.domain import load_domain
    from tests.conftest import compose

    res = run_stage(tmp_path, "recommend", "model=pop", "dataset=tiny", "recommend.k=4")
    recs = _recs(res)
    run_dir = next((tmp_path / "runs").glob("recommend_*"))
    on_disk = pd.read_parquet(run_dir / "recommendations.parquet")
    pd.testing.assert_frame_equal(on_disk, recs)
    csv = pd.read_csv(run_dir / "recommendations.csv", dtype={"user": str, "item": str})
    cols = ["user", "rank", "item"]
    assert csv[cols].values.tolist() == recs[cols].values.tolist()
    assert list(recs.columns) == ["user", "rank", "item", "score", "title", "category", "brand"]
    cfg = compose("recommend", ["dataset=tiny"], root=tmp_path)
    d = load_domain(cfg.dataset, cfg.eval, cfg.paths)
    assert d.repeat_free
    got = recs.groupby("user", sort=False)["item"].apply(list)
    ref = _train_popularity_reference(d, 4)
    assert got.tolist() == ref and list(got.index) == list(d.users["raw_id"])


def test_stage_transfer_finetune_and_interpolate(tmp_path):
    run_stage(tmp_path, "pretrain", "model=preprec", "source=tiny", "train=fast")
    res = run_stage(tmp_path, "recommend", "model=preprec", "source=tiny", "target=tiny_b",
                    "train=fast", "recommend.users=[]")
    assert len(_recs(res)) == 0  # an empty list of users: an empty file, not every user
    zero_shot = _recs(run_stage(tmp_path, "recommend", "model=preprec", "source=tiny",
                                "target=tiny_b", "train=fast"))
    assert zero_shot.groupby("user").size().eq(10).all()
    assert (zero_shot.groupby("user")["score"].diff().dropna() <= 0).all()
    run_stage(tmp_path, "finetune", "model=preprec", "source=tiny", "target=tiny_b",
              "train=fast", "finetune.epochs=1")
    tuned = _recs(run_stage(tmp_path, "recommend", "model=preprec", "source=tiny",
                            "target=tiny_b", "train=fast", "finetune.epochs=1",
                            "recommend.from=finetune"))
    assert len(tuned) == len(zero_shot) and not tuned["score"].equals(zero_shot["score"])
    # an interpolation at α = 0 is the base alone: the same lists as the in-domain model's
    with pytest.raises(ArtifactMissingError, match="recx train model=sasrec dataset=tiny_b"):
        run_stage(tmp_path, "recommend", "model=preprec", "base=sasrec", "source=tiny",
                  "target=tiny_b", "train=fast")
    run_stage(tmp_path, "train", "model=sasrec", "dataset=tiny_b", "train=fast")
    in_domain = _recs(run_stage(tmp_path, "recommend", "model=sasrec", "dataset=tiny_b",
                                "train=fast"))
    base_only = _recs(run_stage(tmp_path, "recommend", "model=preprec", "base=sasrec",
                                "source=tiny", "target=tiny_b", "train=fast",
                                "recommend.alpha=0.0"))
    assert base_only[["user", "item"]].equals(in_domain[["user", "item"]])
    chosen = _recs(run_stage(tmp_path, "recommend", "model=preprec", "base=sasrec",
                             "source=tiny", "target=tiny_b", "train=fast"))  # α* on valid
    assert len(chosen) == len(in_domain)
    with pytest.raises(ConfigError, match="needs the overrides"):
        run_stage(tmp_path, "recommend", "model=sasrec")
    with pytest.raises(ConfigError, match=r"recommend\.from=finetune needs"):
        run_stage(tmp_path, "recommend", "model=unisrec", "dataset=tiny",
                  "recommend.from=finetune")
