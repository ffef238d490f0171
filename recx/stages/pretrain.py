"""recx pretrain: train on one or several source domains; writes a checkpoint artifact.

Zero-shot models see every source with its own domain inputs (each batch from one domain).
ID-based models train one shared item table over the union of the sources' items
(domain-prefixed ids, ARCHITECTURE §4.3); `recx.stages.checkpoints.training_domains`.
"""

from __future__ import annotations

import logging

from recx.config.resolvers import source_key
from recx.models.registry import model_class
from recx.stages import StageResult
from recx.stages.checkpoints import pretrained_model, training_domains
from recx.stages.common import evaluate_rows

log = logging.getLogger(__name__)


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    cls = model_class(str(cfg.model.name))
    domains = ctx.source_domains()
    if not cls.capabilities.trainable:
        log.info("%s has nothing to pretrain (it is fitted on the target)", cls.name)
        return StageResult([], title="pretrain")
    train_on = training_domains(ctx, cls, domains)
    model, h = pretrained_model(ctx, train_on=train_on)
    skey = source_key(cfg.source)
    rows = []
    for d in domains if cls.mixes_domains else train_on:  # a mixing model reports each source
        model.fit_inputs(d)
        # the source's validation, on the early-stopping sample when one is set
        rows += evaluate_rows(ctx, model, d, splits=("valid",), sample_valid=True,
                              setting="pretrain", model=cls.name, source=skey, ckpt_hash=h,
                              paper_compat=model.active_compat())
    return StageResult(rows, title=f"{cls.name} pretrained on {skey} (source validation)")
