"""PrepRec popularity features (models/preprec.md §2): a hand-worked timeline, the encoding
example, causality (no feature uses information from after its event), caching."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recx.data.domain import DomainData
from recx.data.features import FeatureEnv
from recx.data.features.popularity import (
    PAD,
    AdjustedFine,
    PopularityConfig,
    active_percentiles,
    auto_period_days,
    build_popularity,
    encode,
    feat_hash,
    popularity_tables,
    raw_periods,
)
from recx.data.scenarios import TEST, TRAIN, VALID
from recx.errors import ConfigError

DAY = 86400
T0 = 1_600_000_000  # 2020-09-13 12:26:40 UTC
A, B, C = 1, 2, 3


def make_domain(events, name="hand", split=None, n_items=None) -> DomainData:
    """events: [(user, item, day)] → a domain with the given ids (no k-core, no re-indexing)."""
    frame = pd.DataFrame(events, columns=["user", "item", "day"])
    frame["ts"] = (T0 + frame["day"] * DAY).astype(np.int64)
    frame["split"] = TRAIN if split is None else split
    frame = frame.sort_values(["user", "ts"], kind="stable").reset_index(drop=True)
    n_items = int(frame["item"].max()) if n_items is None else n_items
    h = str(pd.util.hash_pandas_object(frame, index=False).sum())
    return DomainData.from_frames(name, h, frame, int(frame["user"].max()), n_items)


# day: items — coarse periods of 2 days, fine periods of 1 day (days 3 and 5 are empty)
HAND = [(1, A, 0), (2, A, 0), (3, B, 0), (4, A, 1), (5, B, 2), (6, C, 2), (7, C, 4), (8, A, 6)]
HAND_CFG = dict(coarse_days=2, fine_days=1, coarse_history=2, coarse_decay=0.5,
                coarse_truncate=2, fine_window=2)


def hand_tables(**over):
    return build_popularity(make_domain(HAND), PopularityConfig(**{**HAND_CFG, **over}))


def test_hand_worked_periods_and_tables():
    t = hand_tables()
    d = make_domain(HAND)
    day = (d.ts - T0) // DAY
    # coarse: days 0,1 → 0; 2,3 → 1; 4 → 2; 6 → 3.  fine: days 0,1,2,4,6 → 0..4 (empty skipped)
    assert dict(zip(day.tolist(), t.event_coarse.tolist(), strict=True)) == \
        {0: 0, 1: 0, 2: 1, 4: 2, 6: 3}
    assert dict(zip(day.tolist(), t.event_fine.tolist(), strict=True)) == \
        {0: 0, 1: 1, 2: 2, 4: 3, 6: 4}
    third = 100 / 3
    # decayed coarse counts (w = 0.5, the current and the previous period):
    # p0: A 3, B 1 | p1: A 1.5, B 1.5, C 1 | p2: B 0.5, C 1.5 (A truncated) | p3: A 1, C 0.5
    expected_coarse = np.array([
        [PAD] * 4, [PAD] * 4,  # two periods before the data
        [PAD, 100, 50, 0],
        [PAD, 2.5 * third, 2.5 * third, third],  # A and B tie at ranks 2 and 3 → 2.5 of 3
        [PAD, 0, 50, 100],
        [PAD, 100, 0, 50],
    ])
    np.testing.assert_allclose(t.coarse, expected_coarse, rtol=1e-6)
    # fine window of 2 days: f0: A 2, B 1 | f1: A 3, B 1 | f2: A 1, B 1, C 1 | f3: B 1, C 2 |
    # f4: A 1, C 1
    expected_fine = np.array([
        [PAD] * 4,
        [PAD, 100, 50, 0],
        [PAD, 100, 50, 0],
        [PAD, 2 * third, 2 * third, 2 * third],
        [PAD, 0, 50, 100],
        [PAD, 75, 0, 75],
    ])
    np.testing.assert_allclose(t.fine, expected_fine, rtol=1e-6)


def test_hand_worked_item_vector():
    """The day-4 event of C (P = 2, F = 3) sees coarse periods 0, 1 and fine period 2."""
    t = hand_tables()
    cfg = t.config
    pc = torch.from_numpy(t.coarse[2:4, C])  # rows P .. P + H − 1 = periods P − 2, P − 1
    pf = torch.tensor(t.fine[3, C])
    vec = torch.cat([encode(pc, cfg.coarse_anchors).flatten(), encode(pf, cfg.fine_anchors)])
    assert vec.shape == (2 * 11 + 6,)
    expected = np.zeros(28)
    expected[11 + 3], expected[11 + 4] = 2 / 3, 1 / 3  # coarse 33.3 → anchors 30 and 40
    expected[22 + 3], expected[22 + 4] = 2 / 3, 1 / 3  # fine 66.7 → anchors 60 and 80
    np.testing.assert_allclose(vec.numpy(), expected, atol=1e-5)


def test_linear_encoding_example():
    v = encode(torch.tensor([37.0, 0.0, 100.0, 40.0, PAD]), 10)
    expected = np.zeros((5, 11))
    expected[0, 3], expected[0, 4] = 0.3, 0.7  # the spec's example
    expected[2, 10] = 1.0
    expected[3, 4] = 1.0
    np.testing.assert_allclose(v.numpy(), expected, atol=1e-6)
    f = encode(torch.tensor([50.0]), 5)  # r = 20: 50 → anchors 40 (0.5) and 60 (0.5)
    np.testing.assert_allclose(f.numpy(), [[0, 0, 0.5, 0.5, 0, 0]], atol=1e-6)


def test_sinusoidal_encoding_is_the_original_basis():
    p = 37.0
    v = encode(torch.tensor([p, 0.0, PAD]), 10, "sinusoidal")
    freq = np.array([0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]) / 100
    expected = np.where(np.arange(11) % 2 == 0, np.sin(p * freq), np.cos(p * freq))
    np.testing.assert_allclose(v[0].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(v[1].numpy(), np.where(np.arange(11) % 2, 1.0, 0.0))
    assert not v[2].any()  # before the data: zeros
    assert encode(torch.tensor([p]), 5, "sinusoidal", fine=True).shape == (1, 7)
    assert PopularityConfig(encoding="sinusoidal").input_dim == 12 * 11 + 7
    assert PopularityConfig().input_dim == 138


def test_without_skipping_empty_periods():
    t = hand_tables(skip_empty_periods=False)
    d = make_domain(HAND)
    day = (d.ts - T0) // DAY
    assert dict(zip(day.tolist(), t.event_fine.tolist(), strict=True)) == \
        {0: 0, 1: 1, 2: 2, 4: 4, 6: 6}
    # fine period 3 (day 3, empty) still sums days 2 and 3: A 0, B 1, C 1 (tie: 1.5 of 2)
    np.testing.assert_allclose(t.fine[1 + 3, 1:], [0, 75, 75])


def test_year_reset_periods():
    """The original's calendar periods restart on 1 January; recx's are continuous."""
    dec30 = 1609286400  # 2020-12-30 00:00 UTC (day 365 of 2020)
    ts = np.array([dec30, dec30 + 3 * DAY])  # 2021-01-02
    assert raw_periods(ts, 7, dec30).tolist() == [0, 0]
    slots = 54  # ceil(366 / 7) + 1
    assert raw_periods(ts, 7, dec30, year_reset=True).tolist() == [53, slots + 1]


def test_no_feature_uses_later_information():
    """Perturb every event at or after a cut time (other items, extra events): the tables seen by
    every earlier event, and the candidate features at those events' times, do not change."""
    rng = np.random.default_rng(0)
    n_items, days = 30, 200
    events = [(u, int(rng.integers(1, n_items + 1)), int(rng.integers(0, days)))
              for u in range(1, 301)]
    cut = 120
    later = [(u, int(rng.integers(1, n_items + 1)), d) if d >= cut else (u, i, d)
             for u, i, d in events]
    later += [(500 + k, int(rng.integers(1, n_items + 1)), int(rng.integers(cut, days + 50)))
              for k in range(200)]
    cfg = PopularityConfig(coarse_days=10, fine_days=3, coarse_history=4, fine_window=2)
    base, pert = make_domain(events, n_items=n_items), make_domain(later, n_items=n_items)
    tb, tp = build_popularity(base, cfg), build_popularity(pert, cfg)
    h = cfg.coarse_history

    def features(t, d, sel):
        P, F = t.event_coarse[sel], t.event_fine[sel]
        rows = P[:, None] + np.arange(h)
        return t.coarse[rows, :], t.fine[F, :]  # every item at the event's time

    early_b = np.flatnonzero((base.ts - T0) // DAY < cut)
    early_p = np.flatnonzero((pert.ts - T0) // DAY < cut)
    key = lambda d, s: list(zip(d.user[s].tolist(), d.ts[s].tolist(), strict=True))  # noqa: E731
    assert key(base, early_b) == key(pert, early_p)  # the same earlier events, same order
    cb, fb = features(tb, base, early_b)
    cp, fp = features(tp, pert, early_p)
    np.testing.assert_array_equal(cb, cp)
    np.testing.assert_array_equal(fb, fp)
    # and the perturbation did change the tables of the later periods
    assert tb.coarse.shape != tp.coarse.shape or not np.array_equal(tb.coarse, tp.coarse)


def test_own_period_is_never_used():
    """An event is invisible to every feature of its own period: only later periods see it."""
    base = [(1, A, 0), (2, B, 0), (3, A, 5), (4, B, 5)]
    extra = [*base, (5, B, 5)]  # one more B at day 5: B overtakes A only after day 5's period
    cfg = PopularityConfig(coarse_days=5, fine_days=5, coarse_history=2, fine_window=1)
    t0, t1 = (build_popularity(make_domain(e), cfg) for e in (base, extra))
    # the day-5 events (period 1) read rows 1..2 (coarse) and row 1 (fine): periods ≤ 0
    np.testing.assert_array_equal(t0.coarse[1:3], t1.coarse[1:3])
    np.testing.assert_array_equal(t0.fine[1], t1.fine[1])
    assert t1.fine[2, B] > t1.fine[2, A]  # visible from period 2 on


def test_train_only_ignores_held_out_events():
    events = [(1, A, 0), (1, B, 1), (1, C, 2), (2, B, 0), (2, A, 1), (2, C, 3)]
    split = [TRAIN, VALID, TEST, TRAIN, VALID, TEST]
    d = make_domain(events, split=split)
    cfg = PopularityConfig(coarse_days=10, fine_days=10, popularity_source="train_only")
    t = build_popularity(d, cfg)
    # one period; only the two training events (A, B) count
    np.testing.assert_allclose(t.coarse[12, 1:], [75, 75, 0])
    t_all = build_popularity(d, PopularityConfig(coarse_days=10, fine_days=10))
    np.testing.assert_allclose(t_all.coarse[12, 1:], [100 * 2 / 3] * 3)


def test_percentiles_match_pandas_average_rank():
    rng = np.random.default_rng(1)
    vals = rng.integers(0, 6, size=(7, 40))
    vals[2] = 0
    ours = active_percentiles(vals)
    ref = pd.DataFrame(np.where(vals > 0, vals, np.nan).T).rank(method="average")
    ref = (100 * ref / ref.count()).fillna(0).to_numpy().T
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    floats = vals * 0.37  # the sort path
    np.testing.assert_allclose(active_percentiles(floats), ref, rtol=1e-6)


def test_adjusted_fine_counts_the_current_period_before_the_query():
    # fine periods of 2 days; query at day 5.5 (period 2): window = periods 0, 1 (days 0–3),
    # plus day-4/5 events strictly before day 5.5
    events = [(1, A, 0), (2, A, 1), (3, B, 2), (4, C, 4), (5, C, 5), (6, B, 5.5), (7, A, 5.9)]
    d = make_domain(events, n_items=4)  # item 4 never occurs
    t = build_popularity(d, PopularityConfig(coarse_days=2, fine_days=2, fine_window=2))
    adj = AdjustedFine(d, t)
    q_ts = np.array([T0 + int(5.5 * DAY)])
    perc = adj.percentiles(t.periods_at(q_ts)[1], q_ts)
    # counts: A 2, B 1, C 2 (day 4 and 5), item 4 0 → ranks among all 4 items:
    # 4 → 1, B → 2, A and C tie at 3.5
    np.testing.assert_allclose(perc[0], [PAD, 87.5, 50, 87.5, 25])


def test_time_scale_override_and_hash():
    d = make_domain(HAND)
    cfg = PopularityConfig.from_dict({"coarse_days": 30}, {"coarse_days": 2, "fine_days": None})
    assert cfg.coarse_days == 2 and cfg.fine_days == 7
    assert feat_hash(d, cfg) != feat_hash(d, PopularityConfig())
    # the encoding is applied at gather time: it does not change the stored tables
    assert feat_hash(d, PopularityConfig(encoding="sinusoidal")) == feat_hash(d, PopularityConfig())
    with pytest.raises(ConfigError, match="coarse_dayz"):
        PopularityConfig.from_dict({"coarse_dayz": 3})


def test_auto_periods_scale_to_the_domain_span():
    day = 86400
    # 100 events evenly over 260 days: the central 98 % span 254.8 days; 2 × 13 coarse periods
    # → 9.8 days, the fine period keeps 7/30 of it
    ts = np.linspace(0, 260 * day, 100)
    coarse, fine = auto_period_days(ts, 12, 30, 7)
    assert coarse == pytest.approx(254.8 / 26) and fine == pytest.approx(coarse * 7 / 30)
    # ten years already fill the history: the configured lengths stay
    assert auto_period_days(np.linspace(0, 3650 * day, 100), 12, 30, 7) == (30.0, 7.0)
    cfg = PopularityConfig.from_dict({"periods": "auto"}, ts=ts)
    assert cfg.coarse_days == pytest.approx(coarse)
    # a dataset's own time_scale still wins; fixed ignores the span
    assert PopularityConfig.from_dict({"periods": "auto"}, {"coarse_days": 2}, ts=ts
                                      ).coarse_days == 2
    assert PopularityConfig.from_dict({"periods": "fixed"}, ts=ts).coarse_days == 30
    with pytest.raises(ConfigError, match="periods"):
        PopularityConfig.from_dict({"periods": "sometimes"})


def test_tables_are_cached_in_the_store(tmp_path):
    d = make_domain(HAND)
    d.env = FeatureEnv(cache_root=tmp_path)
    cfg = PopularityConfig(**HAND_CFG)
    first = popularity_tables(d, cfg)
    entry = tmp_path / "features" / "hand" / f"popularity-{feat_hash(d, cfg)}"
    assert (entry / "_SUCCESS").exists() and (entry / "tables.npz").exists()
    again = popularity_tables(d, cfg)
    np.testing.assert_array_equal(first.coarse, again.coarse)
    np.testing.assert_array_equal(first.event_fine, again.event_fine)
    assert again.t0 == first.t0 == T0
    np.testing.assert_array_equal(again.coarse, hand_tables().coarse)
