"""recx transfer: zero-shot evaluation of a pretrained checkpoint on a target domain.

1. look the pretrain checkpoint up by hash (or take ckpt=PATH); 2. build the model;
3. `fit_inputs(target)` rebuilds every domain-specific input on the target; 4. load the weights
strictly; 5. evaluate valid and test with no gradient step. Pop has no checkpoint: it is counted
on the target and its rows have source null.
"""

from __future__ import annotations

from pathlib import Path

from recx import artifacts
from recx.config.resolvers import source_key
from recx.models.registry import build_model, model_class
from recx.stages import StageResult
from recx.stages.common import evaluate_rows, load_model_file
from recx.stages.pretrain import pretrain_entry, source_domains
from recx.stages.train import active_compat


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
    entry, h = pretrain_entry(ctx, source_domains(ctx), model_cfg)
    cmd = artifacts.create_command(
        "pretrain", cls.name, [f"source=[{','.join(sorted(cfg.source))}]"])
    path = artifacts.require(entry, f"pretrained {cls.name} on source "
                             f"{source_key(cfg.source)}", cmd, h)
    model, _ = load_model_file(path, model_cfg, ctx.device)
    return model, h


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    target = ctx.domain(cfg.target)
    model, h = pretrained_model(ctx)
    model.fit_inputs(target)
    src = source_key(cfg.source) if model.capabilities.trainable else None
    rows = evaluate_rows(ctx, model, target, setting="zero_shot", model=model.name, source=src,
                         ckpt_hash=h, paper_compat=active_compat(model))
    return StageResult(rows, title=f"{model.name} zero-shot on {target.name}"
                       + (f" (pretrained on {src})" if src else ""))
