"""recx diagnose: transferability diagnostics of a (sources, target) pair before any transfer.

Loads the source and target domains, builds the model's adapter only for its feature
configuration (no checkpoint is read: PrepRec's periods and popularity features, statmlp's
graph statistics, a text model's encoder) and writes diagnostics.json and
diagnostics_pair.json into the run dir, as `recx transfer` does beside its metrics. A sweep
over candidate sources (`recx diagnose -m source=a,b,'[a,b]' target=t`) gives the source
advisor (`recx report report.view=advisor`) what it ranks. docs/transferability.md lists every
value.
"""

from __future__ import annotations

import logging

from recx.config.resolvers import source_key
from recx.diagnostics.pair import identity, pair_diagnostics, write_pair
from recx.models.registry import build_model
from recx.stages import StageResult

log = logging.getLogger(__name__)


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    sources = ctx.source_domains()
    target = ctx.domain(cfg.target)
    model = build_model(cfg.model)  # its feature configuration only; no weights
    diag = pair_diagnostics(sources, target, model, text=str(cfg.diagnostics.text))
    skey = source_key(cfg.source)
    path = write_pair(ctx.run_dir, diag, identity(model.name, skey, target, ctx.seed, sources))
    _print(diag, f"diagnostics of {model.name}: {skey} → {target.name}")
    log.info("wrote %s", path)
    return StageResult([], title="diagnose", write=False)


def _print(diag: dict[str, float], title: str) -> None:
    from rich.table import Table

    from recx.console import console

    t = Table(title=title, title_justify="left")
    t.add_column("diagnostic")
    for col in ("source", "target", "distance"):
        t.add_column(col, justify="right")
    rows: dict[str, dict[str, float]] = {}
    for key, value in diag.items():
        stem, _, side = key.rpartition(".")
        if side in ("source", "target", "dist"):
            rows.setdefault(stem, {})[side] = value
        else:
            rows.setdefault(key, {})["dist"] = value
    for name, r in rows.items():
        t.add_row(name, *(f"{r[c]:.4g}" if c in r else "" for c in ("source", "target", "dist")))
    console.print(t)
