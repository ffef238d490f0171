"""Transferability diagnostics (recx/diagnostics): each value by hand on a small timeline, the
model-input profiles against what the models themselves read, a pair against itself at distance
0, and the store cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recx.data.domain import domain_from_frame
from recx.data.features import FeatureEnv
from recx.diagnostics import pair_diagnostics
from recx.diagnostics.activity import (
    activity_diagnostics,
    activity_profile,
    gini,
    log_w1,
    pool,
)
from recx.diagnostics.inputs import input_diagnostics, percentile_states, preprec_profile
from recx.diagnostics.temporal import period_config, time_diagnostics, time_profile
from recx.diagnostics.text import nearest_cos
from recx.errors import ConfigError
from recx.models.registry import build_model, model_config
from tests.conftest import compose, timeline_frame

DAY = 86400
# leave-one-out: the last event of a user is its test target, the one before its valid target
#   u1: a@0 b@1 c@100 | d@200 | e@201
#   u2: a@2 b@3       | c@4   | d@5
#   u3: a@6           | c@7   | e@8
EVENTS = {
    "u1": [("a", 0), ("b", DAY), ("c", 100 * DAY), ("d", 200 * DAY), ("e", 201 * DAY)],
    "u2": [("a", 2 * DAY), ("b", 3 * DAY), ("c", 4 * DAY), ("d", 5 * DAY)],
    "u3": [("a", 6 * DAY), ("c", 7 * DAY), ("e", 8 * DAY)],
}


@pytest.fixture
def small():
    return domain_from_frame(timeline_frame(EVENTS), "small")


def test_gini_by_hand():
    # item training counts 3, 2, 1, 0, 0: Σ|x_i − x_j| over ordered pairs = 32, mean 1.2,
    # G = 32 / (2 · 5² · 1.2) = 0.5333…
    assert gini(np.array([0, 1, 2, 3]), np.array([2, 1, 1, 1])) == pytest.approx(32 / 60)
    assert gini(np.array([4]), np.array([7])) == 0.0
    assert gini(np.array([0, 4]), np.array([3, 1])) == pytest.approx(0.75)


def test_log_w1_is_the_shift_in_decades():
    assert log_w1(np.array([1]), np.array([5]), np.array([10]), np.array([5])) == \
        pytest.approx(1.0)
    # half the mass moves one decade: 0.5
    assert log_w1(np.array([1, 10]), np.array([1, 1]), np.array([10]), np.array([2])) == \
        pytest.approx(0.5)


def test_activity_profile_by_hand(small):
    p = activity_profile(small)
    # training events per user: u1 3, u2 2, u3 1; per item: a 3, b 2, c 1, d 0, e 0
    assert p["user_values"].tolist() == [1, 2, 3] and p["user_counts"].tolist() == [1, 1, 1]
    assert p["item_values"].tolist() == [0, 1, 2, 3]
    assert p["item_counts"].tolist() == [2, 1, 1, 1]
    assert int(p["train_pairs"]) == 6 and float(p["cells"]) == 15.0
    d = activity_diagnostics([p], p)
    assert d["activity.item_gini.target"] == pytest.approx(32 / 60)
    assert d["activity.log10_density.target"] == pytest.approx(np.log10(6 / 15))
    assert d["activity.repeat_share.target"] == 0.0
    assert d["size.log10_train_events.target"] == pytest.approx(np.log10(6))
    assert d["activity.user_log_activity_w1"] == 0.0 and d["activity.item_gini.dist"] == 0.0


def test_sources_pool_into_one_mixture(small):
    p = activity_profile(small)
    both = pool([p, p])
    assert both["user_counts"].tolist() == [2, 2, 2]
    assert int(both["train_events"]) == 12 and float(both["cells"]) == 30.0
    # the mixture of a domain with itself has the domain's shape: no distance
    d = activity_diagnostics([p, p], p)
    assert d["activity.item_log_popularity_w1"] == pytest.approx(0.0)
    assert d["activity.log10_density.dist"] == pytest.approx(0.0)


def test_repeat_share_counts_training_repeats():
    events = {"u1": [("a", 1), ("a", 2), ("b", 3), ("c", 4), ("d", 5)],
              "u2": [("b", 1), ("c", 2), ("d", 3), ("a", 4)]}
    d = domain_from_frame(timeline_frame(events), "rep", dedup="all")
    p = activity_profile(d)
    # training events: u1 a a b (one repeat), u2 b c: 1 of 5
    assert activity_diagnostics([p], p)["activity.repeat_share.target"] == pytest.approx(0.2)


def test_time_profile_by_hand(small):
    cfg = period_config(small)  # no model: 30 and 7 days
    assert (cfg.coarse_days, cfg.fine_days) == (30.0, 7.0)
    p = time_profile(small, cfg)
    # training times (days) 0 1 100 2 3 6: coarse periods 0 0 3 0 0 0 → 4 calendar periods,
    # 2 with events; fine periods 0 0 14 0 0 0 → 15, 2 with events
    assert float(p["span_days"]) == 100.0
    assert (int(p["coarse_calendar"]), int(p["coarse_nonempty"])) == (4, 2)
    assert (int(p["fine_calendar"]), int(p["fine_nonempty"])) == (15, 2)
    d = time_diagnostics([p], p)
    assert d["time.empty_coarse_share.target"] == pytest.approx(0.5)
    assert d["time.empty_fine_share.target"] == pytest.approx(13 / 15)
    assert d["time.log10_span_days.target"] == pytest.approx(2.0)
    assert d["time.log10_events_per_coarse.target"] == pytest.approx(np.log10(3))
    # PrepRec's own lengths and a domain's time_scale decide the periods
    model = build_model(model_config("preprec", features={"coarse_days": 10, "periods": "fixed"}))
    assert period_config(small, model).coarse_days == 10.0
    # periods=auto (the default), as PrepRec scales them: the central 98 % of the 12 event times
    # span 0.11 → 200.89 days, 200.78 / (2 × (12 + 1)) = 7.7223 days < 10, fine in proportion
    auto = build_model(model_config("preprec", features={"coarse_days": 10}))
    cfg = period_config(small, auto)
    assert cfg.coarse_days == pytest.approx(200.78 / 26)
    assert cfg.fine_days == pytest.approx(200.78 / 26 * 7 / 10)
    small.time_scale = {"coarse_days": 50.0}
    assert period_config(small, model).coarse_days == 50.0
    assert period_config(small, auto).coarse_days == 50.0


def test_percentile_states():
    perc = np.array([-1.0, 0.0, 0.5, 10.0, 10.01, 99.9, 100.0])
    assert percentile_states(perc, 10).tolist() == [0, 0, 1, 1, 2, 10, 10]


def test_input_distance_is_total_variation_by_hand():
    def prof(p_lag1, p_fine, w):
        return {"weight": np.float64(w), "p.pos.coarse.lag_1": np.array(p_lag1),
                "p.pos.fine.lag_1": np.array(p_fine), "e.coarse.lag_1": np.int64(0),
                "e.fine.lag_1": np.int64(0)}

    src = prof([0.5, 0.5, 0.0], [1.0, 0.0, 0.0], 1)
    tgt = prof([0.0, 0.5, 0.5], [1.0, 0.0, 0.0], 1)
    d = input_diagnostics([src], tgt)
    assert d["input.pos.tv_coarse"] == pytest.approx(0.5)
    assert d["input.pos.tv_fine"] == 0.0 and d["input.pos.tv"] == pytest.approx(0.25)
    assert d["input.pos.empty_coarse.source"] == 0.5
    assert d["input.pos.empty_coarse.target"] == 0.0
    assert d["input.pos.empty_coarse.dist"] == 0.5
    # two sources mix by their weights: 3:1 of [1, 0, 0] and [0, 0, 1] against the target
    a, b = prof([1.0, 0.0, 0.0], [1, 0, 0], 3), prof([0.0, 0.0, 1.0], [1, 0, 0], 1)
    d = input_diagnostics([a, b], tgt)  # mixture [0.75, 0, 0.25] vs [0, 0.5, 0.5]
    assert d["input.pos.tv_coarse"] == pytest.approx(0.75)


def test_preprec_profile_is_what_the_model_reads(tmp_path):
    """The empty share of each block equals the share of training events whose encoded block is
    the zero vector in PrepRec's own input."""
    from recx.stages.common import Context

    cfg = compose("transfer", ["model=preprec", "target=tiny", "text=hashing"], root=tmp_path)
    ctx = Context(cfg=cfg, run_dir=tmp_path, device=torch.device("cpu"))
    d = ctx.domain(cfg.target)
    model = build_model(cfg.model)
    model.fit_inputs(d)
    p = preprec_profile(d, model)
    idx = torch.from_numpy(np.flatnonzero(d.train_mask))
    x = model.item_inputs(model.event_item[idx], model.event_P[idx], model.event_F[idx])
    H, K = model.feat.coarse_history, model.feat.coarse_dim
    for k in range(1, H + 1):  # lag k is block H − k of the vector (oldest first)
        block = x[:, (H - k) * K:(H - k + 1) * K]
        empty = float((block.abs().sum(1) == 0).float().mean())
        assert float(p[f"p.pos.coarse.lag_{k}"][0]) == pytest.approx(empty)
    fine = x[:, H * K:]
    assert float(p["p.pos.fine.lag_1"][0]) == pytest.approx(
        float((fine.abs().sum(1) == 0).float().mean()))
    # cached in the feature store, beside the popularity tables it is computed from
    assert list((tmp_path / "outputs" / "cache" / "features" / "tiny").glob(
        "diagnostics-input-preprec-*/_SUCCESS"))


def test_a_pair_of_a_domain_with_itself_is_at_distance_zero(tmp_path):
    from recx.stages.common import Context

    small = ["model.features.node2vec.dim=8", "model.features.node2vec.walks_per_node=2",
             "model.features.node2vec.walk_length=10"]
    for name, extra in (("preprec", []), ("statmlp", small), ("unisrec", [])):
        cfg = compose("diagnose", [f"model={name}", "target=tiny", "source=tiny", "text=hashing",
                                   *extra], root=tmp_path)

        ctx = Context(cfg=cfg, run_dir=tmp_path, device=torch.device("cpu"))
        d = ctx.domain(cfg.target)
        diag = pair_diagnostics([d], d, build_model(cfg.model))
        distances = {k: v for k, v in diag.items() if k.endswith((".dist", "_w1"))
                     or (k.startswith("input.") and ".tv" in k)}
        assert distances and all(v == pytest.approx(0.0, abs=1e-12) for v in distances.values())
        if name == "unisrec":  # text: every item is its own nearest neighbour
            assert diag["text.centroid_cos"] == pytest.approx(1.0)
            assert diag["text.nn_cos"] == pytest.approx(1.0)
        else:
            assert not any(k.startswith("text.") for k in diag)
        assert any(k.startswith("input.") for k in diag) == (name != "unisrec")


def test_nearest_cosine_by_hand():
    e = np.eye(3)
    q = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]])
    assert nearest_cos(q, e) == pytest.approx((1.0 + 0.8) / 2)
    # within one set, the item itself does not count
    assert nearest_cos(q, q, exclude_self=True) == pytest.approx(0.6)


def test_text_on_request_needs_text_everywhere(small):
    with pytest.raises(ConfigError, match="small has no item text"):
        pair_diagnostics([small], small, None, text="true")
    with pytest.raises(ConfigError, match="auto, true or false"):
        pair_diagnostics([small], small, None, text="maybe")


def test_profiles_are_cached_in_the_feature_store(tmp_path, small):
    small.env = FeatureEnv(cache_root=tmp_path)
    first = activity_profile(small)
    entries = list((tmp_path / "features" / "small").glob("diagnostics-activity-*"))
    assert len(entries) == 1 and (entries[0] / "_SUCCESS").exists()
    assert (entries[0] / "meta.json").exists()
    import recx.diagnostics.cache as cache

    cache._LOADED.clear()  # a new process: read back from the store
    again = activity_profile(small)
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_statmlp_profile_is_what_the_model_reads(tmp_path):
    """Field distributions over the training pairs, and over (user, random item) pairs with the
    edge cluster the model assigns, equal the model's own codes."""
    from recx.diagnostics.inputs import STATMLP_SAMPLE, statmlp_profile
    from recx.stages.common import Context

    cfg = compose("transfer", ["model=statmlp", "target=tiny", "model.features.node2vec.dim=8",
                               "model.features.node2vec.walks_per_node=2",
                               "model.features.node2vec.walk_length=10"], root=tmp_path)
    d = Context(cfg=cfg, run_dir=tmp_path, device=torch.device("cpu")).domain(cfg.target)
    model = build_model(cfg.model)
    model.fit_inputs(d)
    e = model.entry
    p = statmlp_profile(d, model)

    def dist(codes, n):
        c = np.bincount(np.asarray(codes), minlength=n)
        return c / c.sum()

    n_act, n_cl = model.stats_cfg.activity_bins, model.stats_cfg.cluster_bins + 1
    assert p["p.pos.item.act_i"] == pytest.approx(dist(e["item_codes"][e["edge_i"], 0], n_act))
    assert p["p.pos.user.dens_u"] == pytest.approx(dist(e["user_codes"][e["edge_u"], 2], n_cl))
    assert p["p.pos.edge.size_e"] == pytest.approx(
        dist(e["edge_codes"][e["edge_label"], 0], n_cl))
    rng = np.random.default_rng(0)  # the profile's draw of (user, random item) pairs
    pick = rng.integers(0, len(e["edge_u"]), size=min(STATMLP_SAMPLE, len(e["edge_u"])))
    items = rng.integers(1, d.n_items + 1, size=len(pick))
    rows = model._pair_edge_codes(torch.from_numpy(e["edge_u"][pick]), torch.from_numpy(items))
    assert p["p.cat.edge.dens_e"] == pytest.approx(dist(e["edge_codes"][rows, 1], n_cl))
