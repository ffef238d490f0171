"""recx transfer: zero-shot evaluation of a pretrained checkpoint on a target domain.

1. look the pretrain checkpoint up by hash (or take ckpt=PATH; `recx.stages.checkpoints`);
2. build the model and load the weights strictly; 3. `fit_inputs(target)` rebuilds every
domain-specific input on the target; 4. evaluate valid and test with no gradient step. Pop has
no checkpoint: it is counted on the target and its rows have source null.
"""

from __future__ import annotations

import logging

from recx.config.resolvers import source_key
from recx.stages import StageResult
from recx.stages.checkpoints import pretrained_model
from recx.stages.common import evaluate_rows

log = logging.getLogger(__name__)


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    target = ctx.domain(cfg.target)
    model, h = pretrained_model(ctx, fit_to=target)
    src = source_key(cfg.source) if model.capabilities.trainable else None
    rows = evaluate_rows(ctx, model, target, setting="zero_shot", model=model.name, source=src,
                         ckpt_hash=h, paper_compat=model.active_compat())
    if cfg.get("figures", True) and src is not None:
        _figures(ctx, model, target)
    if cfg.get("diagnostics", True) and src is not None:
        _diagnostics(ctx, model, target)
    return StageResult(rows, title=f"{model.name} zero-shot on {target.name}"
                       + (f" (pretrained on {src})" if src else ""))


def _diagnostics(ctx, model, target) -> None:
    """diagnostics.json beside the metrics (docs/transferability.md). A diagnostic: a failure is
    logged and the evaluated run stands."""
    from recx.diagnostics.pair import identity, pair_diagnostics, write_pair

    sources = ctx.source_domains()
    try:
        diag = pair_diagnostics(sources, target, model)
    except Exception as e:  # never lose an evaluation to a diagnostic
        log.warning("diagnostics of %s skipped: %s: %s", model.name, type(e).__name__, e)
        return
    write_pair(ctx.run_dir, diag, identity(model.name, source_key(ctx.cfg.source), target,
                                           ctx.seed, sources))
    log.info("diagnostics: %d values in %s", len(diag), ctx.run_dir / "diagnostics.json")


def _figures(ctx, model, target) -> None:
    """The model's input figures of sources and target, beside the metrics. A diagnostic: a
    failure is logged and the evaluated run stands."""
    domains = {d.name: d for d in ctx.source_domains()}
    roles = dict.fromkeys(domains, "source")
    domains[target.name], roles[target.name] = target, "target"
    try:
        from recx.plots import draw

        names = draw(model.figures(domains, roles), ctx.run_dir / "features")
    except Exception as e:  # never lose an evaluation to a plot
        log.warning("figures of %s skipped: %s: %s", model.name, type(e).__name__, e)
        return
    if names:
        log.info("figures: %s", ", ".join(names))
