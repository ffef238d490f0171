"""recx transfer: zero-shot evaluation of a pretrained checkpoint on a target domain.

1. look the pretrain checkpoint up by hash (or take ckpt=PATH); 2. build the model;
3. `fit_inputs(target)` rebuilds every domain-specific input on the target; 4. load the weights
strictly; 5. evaluate valid and test with no gradient step. Pop has no checkpoint: it is counted
on the target and its rows have source null.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from omegaconf import open_dict

from recx import artifacts
from recx.config.resolvers import source_key
from recx.models.registry import build_model, model_class
from recx.stages import StageResult
from recx.stages.common import evaluate_rows, load_model_file
from recx.stages.pretrain import pretrain_entry, source_domains, training_domains
from recx.stages.train import active_compat

log = logging.getLogger(__name__)


def pretrained_model(ctx, model_cfg=None):
    """The pretrained model of `model_cfg` (default cfg.model) and its ckpt hash; Pop: (model,
    None)."""
    cfg = ctx.cfg
    model_cfg = model_cfg if model_cfg is not None else cfg.model
    cls = model_class(str(model_cfg.name))
    if not cls.capabilities.trainable:
        return build_model(model_cfg).to(ctx.device), None
    ckpt = str(cfg.get("ckpt", "auto"))
    if ckpt != "auto":
        model, _ = load_model_file(Path(ckpt), model_cfg, ctx.device)
        return model, f"file:{Path(ckpt).name}"
    # train.user_fraction is the cold setting of the TARGET's training (EVALUATION §1.3): the
    # parent is the sources' pre-training on all their users, whatever the fraction here
    parent_ctx = replace(ctx, cfg=_all_users(cfg))
    entry, h = pretrain_entry(parent_ctx, source_domains(ctx), model_cfg)
    cmd = artifacts.create_command(
        "pretrain", cls.name, [f"source=[{','.join(sorted(cfg.source))}]"])
    cmd = " ".join(a for a in cmd.split(" ") if not a.startswith("train.user_fraction="))
    path = artifacts.require(entry, f"pretrained {cls.name} on source "
                             f"{source_key(cfg.source)}", cmd, h)
    model, _ = load_model_file(path, model_cfg, ctx.device)
    if cls.uses_pretraining_domain:
        model.attach_pretraining(training_domains(ctx, cls, source_domains(ctx))[0])
    return model, h


def _all_users(cfg):
    if float(cfg.train.user_fraction) == 1.0:
        return cfg
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.train.user_fraction = 1.0
    return cfg


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    target = ctx.domain(cfg.target)
    model, h = pretrained_model(ctx)
    model.fit_inputs(target)
    src = source_key(cfg.source) if model.capabilities.trainable else None
    rows = evaluate_rows(ctx, model, target, setting="zero_shot", model=model.name, source=src,
                         ckpt_hash=h, paper_compat=active_compat(model))
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

    sources = source_domains(ctx)
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
    domains = {d.name: d for d in source_domains(ctx)}
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
