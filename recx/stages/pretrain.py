"""recx pretrain: train on one or several source domains; writes a checkpoint artifact.

Zero-shot models see every source with its own domain inputs (each batch from one domain).
ID-based models train one shared item table over the union of the sources' items
(domain-prefixed ids, ARCHITECTURE §4.3).
"""

from __future__ import annotations

import logging

from omegaconf import OmegaConf

from recx import artifacts
from recx.config.resolvers import source_key
from recx.data.merge import merge_domains
from recx.models.registry import build_model, model_class
from recx.seed import reseed_for_model
from recx.stages import StageResult
from recx.stages.common import evaluate_rows, load_model_file, train_and_save
from recx.stages.train import active_compat

log = logging.getLogger(__name__)


def source_domains(ctx) -> list:
    return [ctx.domain(ds) for _, ds in sorted(ctx.cfg.source.items())]


def pretrain_entry(ctx, domains, model_cfg=None):
    cfg = ctx.cfg
    model_cfg = model_cfg if model_cfg is not None else cfg.model
    h = artifacts.ckpt_hash(cfg, pretrain_model_cfg(model_cfg), [d.data_hash for d in domains],
                            text_identity=text_identity(ctx, model_cfg))
    return artifacts.pretrain_dir(cfg, str(model_cfg.name), source_key(cfg.source), h), h


def pretrain_model_cfg(model_cfg):
    """The model config without the keys that only act after pre-training (the model class's
    dotted `posttrain_keys`, e.g. IDP's retrieval settings), so one pretrain checkpoint serves
    a sweep over them."""
    keys = getattr(model_class(str(model_cfg.name)), "posttrain_keys", ())
    if not keys:
        return model_cfg
    tree = OmegaConf.to_container(model_cfg, resolve=True)
    for key in keys:
        *path, last = key.split(".")
        node = tree
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return OmegaConf.create(tree)


def text_identity(ctx, model_cfg) -> str | None:
    cls = model_class(str(model_cfg.name))
    if not cls.capabilities.needs_text:
        return None
    from recx.data.features.text import encoder_identity

    return encoder_identity(ctx.cfg.text)


def training_domains(ctx, model_cls, domains):
    """Zero-shot models train on each source; ID models on their union. A model whose batches
    mix domains (`mixes_domains`: UniSRec's multi-domain negatives) trains on the union too,
    which keeps its sources as `.sources` (each with its own item text and feature cache)."""
    if len(domains) == 1:
        return domains
    if getattr(model_cls, "mixes_domains", False):
        union = merge_domains(domains, ctx.cfg.paths.cache)
        union.sources = sorted(domains, key=lambda d: d.name)
        return [union]
    if model_cls.capabilities.zero_shot:
        return domains
    return [merge_domains(domains, ctx.cfg.paths.cache)]


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    domains = source_domains(ctx)
    cls = model_class(str(cfg.model.name))
    train_on = training_domains(ctx, cls, domains)
    entry, h = pretrain_entry(ctx, domains)
    rows = []
    skey = source_key(cfg.source)
    if not cls.capabilities.trainable:
        log.info("%s has nothing to pretrain (it is fitted on the target)", cls.name)
        return StageResult([], title="pretrain")
    reseed_for_model(ctx.seed)
    model = build_model(cfg.model, n_items=train_on[0].n_items).to(ctx.device)
    model.fit_inputs(train_on[0])
    train_and_save(ctx, model, cfg.model, train_on, entry, label=f"{cls.name}@{skey}",
                   meta={"kind": "pretrain", "model": cls.name, "source": skey, "ckpt_hash": h})
    model, _ = load_model_file(entry / "model.pt", cfg.model, ctx.device)
    mixed = getattr(cls, "mixes_domains", False)
    for d in domains if mixed else train_on:  # a mixing model still reports each source
        model.fit_inputs(d)
        # the source's validation, on the early-stopping sample when one is set
        rows += evaluate_rows(ctx, model, d, splits=("valid",), sample_valid=True,
                              setting="pretrain", model=cls.name, source=skey, ckpt_hash=h,
                              paper_compat=active_compat(model))
    return StageResult(rows, title=f"{cls.name} pretrained on {skey} (source validation)")
