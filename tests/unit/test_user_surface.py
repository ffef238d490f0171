"""What a user meets first: report.where as written, the item text they name, optional
extras, a notebook's plotting backend and progress bars."""

from __future__ import annotations

import pytest

from recx.config.schema import text_fields_of
from recx.errors import ConfigError, DataFormatError
from tests.conftest import compose


def test_report_where_takes_any_field_as_written():
    cfg = compose("report", ["report.where.target=synth_t", "report.where.model=[pop,sasrec]"])
    assert dict(cfg.report.where) == {"split": "test", "target": "synth_t",
                                      "model": ["pop", "sasrec"]}
    with pytest.raises(Exception, match=r"report\.wher"):  # the rest of the config stays closed
        compose("report", ["report.wher=1"])


def test_report_where_null_selects_the_rows_without_a_value():
    import pandas as pd

    from recx.stages.report_rows import select

    rows = pd.DataFrame({"split": "test", "model": "preprec", "seed": 0,
                         "tag": [None, "zero_shot_gated", "periods_auto", float("nan")]})
    kept = select(rows, {"tag": [None, "zero_shot_gated"]})
    assert kept["tag"].isna().tolist() == [True, False, True]
    assert kept["tag"].iloc[1] == "zero_shot_gated"
    assert select(rows, {"tag": "periods_auto"})["tag"].tolist() == ["periods_auto"]


def _custom(tmp_path, *extra):
    (tmp_path / "clicks.csv").write_text(
        "uid,sku,ts,blurb\n" + "".join(f"u{u},i{i},{10 * u + i},{'note ' + str(i)}\n"
                                       for u in range(6) for i in range(6)))
    (tmp_path / "items.csv").write_text(
        "sku,name,colour\n" + "".join(f"i{i},item {i},red\n" for i in range(6)))
    return compose("train", ["model=unisrec", "text=hashing", "dataset=custom",
                             f"dataset.path={tmp_path / 'clicks.csv'}", "dataset.columns.user=uid",
                             "dataset.columns.item=sku", "dataset.columns.timestamp=ts",
                             "dataset.filters.k_core.user=0", "dataset.filters.k_core.item=0",
                             *extra], root=tmp_path)


def test_text_a_user_names_is_the_text_models_read(tmp_path):
    from recx.config.validate import validate
    from recx.data.domain import load_domain

    with pytest.raises(ConfigError, match="no text_fields"):
        validate(_custom(tmp_path))
    items = [f"dataset.items.path={tmp_path / 'items.csv'}", "dataset.items.key=sku",
             "dataset.items.text_columns=[name,colour]"]
    cfg = _custom(tmp_path, "dataset.columns.text=blurb", *items)
    assert text_fields_of(cfg.dataset) == ["blurb", "name", "colour"]
    validate(cfg)
    d = load_domain(cfg.dataset, cfg.eval, cfg.paths)
    assert d.text_fields == ["blurb", "name", "colour"]
    from recx.data.features.text import item_texts

    assert item_texts(d)[1] == "note 0. item 0. red."
    explicit = _custom(tmp_path, *items, "dataset.text_fields=[name]")
    assert text_fields_of(explicit.dataset) == ["name"]
    assert load_domain(explicit.dataset, explicit.eval, explicit.paths).text_fields == ["name"]


def test_xlsx_without_openpyxl_names_the_extra(tmp_path, monkeypatch):
    import sys

    from recx.data.readers.others import _require_openpyxl

    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import openpyxl → ImportError
    with pytest.raises(DataFormatError, match=r"recx\[xlsx\]"):
        _require_openpyxl(tmp_path / "Online Retail.xlsx")


def test_figures_leave_the_plotting_backend_alone(tmp_path):
    import matplotlib

    from recx.plots import alpha_curve

    before = matplotlib.get_backend()
    matplotlib.use("pdf")  # as a notebook would pick its own
    try:
        alpha_curve(tmp_path, [0.0, 0.5, 1.0], [0.1, 0.2, 0.15], [0.1, 0.25, 0.1], 1,
                    "NDCG@10", "t")
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use(before)
    assert (tmp_path / "alpha_curve.png").stat().st_size > 1000
    assert (tmp_path / "alpha_curve.pdf").exists() and (tmp_path / "alpha_curve.csv").exists()


def test_progress_bars_render_in_a_notebook(monkeypatch):
    from recx import console

    monkeypatch.setattr(console.sys.stdout, "isatty", lambda: False, raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr(console, "_NOTEBOOK_BARS", False)
    assert not console.progress_enabled("auto")
    monkeypatch.setattr(console, "_NOTEBOOK_BARS", True)
    assert console.progress_enabled("auto") and not console.progress_enabled("false")
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    assert not console.progress_enabled("auto")
