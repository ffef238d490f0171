"""`recx preprocess` on a hand-made official-format file: cache entry, stats and figures."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recx.stages import execute
from tests.conftest import compose
from tests.data import _fixtures as fx


@pytest.mark.slow  # imports torch and runs a whole stage (about 7 s)
def test_preprocess_writes_stats_and_figures(tmp_path):
    folder = fx.ml_csv(tmp_path / "raw", "ml-latest-small")
    cfg = compose("preprocess", ["dataset=ml_latest_small", f"dataset.raw_dir={folder}",
                                 "dataset.filters.k_core.user=0", "dataset.filters.k_core.item=0",
                                 f"paths.root={tmp_path}"])
    cfg.dataset.origin.files = {}  # hand-made files: nothing pinned
    run = tmp_path / "run"
    execute(cfg, run)
    stats = json.loads((run / "stats.json").read_text())
    assert stats["interactions"] == 3 and stats["items_with_text"] == 1.0
    assert stats["reader"]["layout"] == "default" and stats["filters"]["read"]["users"] == 2
    for fig in ("popularity_over_time", "distributions"):
        assert (run / f"{fig}.png").stat().st_size > 0 and (run / f"{fig}.csv").exists()
    kinds = set(pd.read_csv(run / "popularity_over_time.csv")["kind"])
    assert {"top_item", "top_item_percentile", "p50", "p75", "p90", "p99"} <= kinds
    assert list((tmp_path / "outputs" / "cache" / "data" / "ml_latest_small").glob("*/_SUCCESS"))


def test_popularity_figure_has_preprec_bands(tmp_path):
    import numpy as np

    from recx.data.domain import DomainData
    from recx.plots import distributions, popularity_over_time

    rng = np.random.default_rng(0)
    n = 4000
    inter = pd.DataFrame({"user": np.sort(rng.integers(1, 101, n)).astype(np.int32),
                          "item": rng.zipf(1.5, n).clip(1, 50).astype(np.int32),
                          "ts": 1_600_000_000 + rng.integers(0, 400 * 86400, n),
                          "split": np.zeros(n, np.int8)})
    d = DomainData.from_frames("toy", "h", inter, 100, 50)
    popularity_over_time(tmp_path / "pop", d, top=3)
    distributions(tmp_path / "dist", d)
    data = pd.read_csv(tmp_path / "pop.csv")
    perc = data[data["kind"] == "top_item_percentile"]["value"]
    assert perc.between(0, 100).all() and perc.max() > 50  # top items rank high
    bands = data[data["kind"].isin(["p50", "p99"])].pivot(index="week", columns="kind",
                                                          values="value")
    assert (bands["p99"] >= bands["p50"]).all()
    assert (tmp_path / "pop.png").exists() and (tmp_path / "dist.png").exists()
