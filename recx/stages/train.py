"""recx train: in-domain training and evaluation of any model on one dataset (setting in_domain).

The checkpoint is an artifact keyed by its content hash, because `interpolate` reuses it as
`base`; a second identical run is a cache hit that only evaluates (and reads its ranks back
from the evaluation cache, `recx.eval.cache`).
"""

from __future__ import annotations

import logging

from recx import artifacts
from recx.models.registry import build_model
from recx.seed import reseed_for_model
from recx.stages import StageResult
from recx.stages.common import evaluate_rows, load_model_file, train_and_save

log = logging.getLogger(__name__)


def fit_in_domain(ctx, model_cfg, domain):
    """Train (or load from the store) `model_cfg` on `domain`; returns (model, ckpt_hash)."""
    cfg = ctx.cfg
    reseed_for_model(ctx.seed)
    model = build_model(model_cfg, n_items=domain.n_items).to(ctx.device)
    if not model.capabilities.trainable:
        model.fit_inputs(domain)
        model.fit_nonparametric(domain, domain.train_users(float(cfg.train.user_fraction),
                                                           ctx.seed))
        return model, None
    from recx.stages.pretrain import text_identity

    h = artifacts.ckpt_hash(cfg, model_cfg, [domain.data_hash],
                            text_identity=text_identity(ctx, model_cfg))
    entry = artifacts.train_dir(cfg, model.name, domain.name, h)
    model.fit_inputs(domain)
    train_and_save(ctx, model, model_cfg, [domain], entry, label=f"{model.name}@{domain.name}",
                   meta={"kind": "train", "model": model.name, "dataset": domain.name,
                         "ckpt_hash": h})
    model, _ = load_model_file(entry / "model.pt", model_cfg, ctx.device)
    model.fit_inputs(domain)
    return model, h


def trained_model(ctx, model_cfg, domain, *, ckpt: str = "auto", key: str = "model"):
    """The in-domain model of `model_cfg` on `domain` as `recx train` made it, found by hash
    (or the file `ckpt`), fitted to `domain`; Pop is counted on it. A missing checkpoint raises
    with the `recx train` command that creates it (`key.*` overrides become `model.*` there).
    Returns (model, ckpt_hash)."""
    from pathlib import Path

    from recx.models.registry import model_class
    from recx.stages.pretrain import text_identity

    cfg = ctx.cfg
    cls = model_class(str(model_cfg.name))
    if not cls.capabilities.trainable:
        model = build_model(model_cfg).to(ctx.device)
        model.fit_inputs(domain)
        return model, None
    if str(ckpt) != "auto":
        model, _ = load_model_file(Path(ckpt), model_cfg, ctx.device)
        model.fit_inputs(domain)
        return model, f"file:{Path(ckpt).name}"
    h = artifacts.ckpt_hash(cfg, model_cfg, [domain.data_hash],
                            text_identity=text_identity(ctx, model_cfg))
    entry = artifacts.train_dir(cfg, cls.name, domain.name, h)
    # the command keeps the run's own model.* overrides; another key's become model.* there
    over = [] if key == "model" else [o.replace(key, "model", 1)
                                      for o in artifacts._task_overrides()
                                      if o.startswith(f"{key}.")]
    cmd = artifacts.create_command("train", cls.name, [f"dataset={domain.name}", *over])
    path = artifacts.require(entry, f"in-domain {cls.name} on {domain.name}", cmd, h)
    model, _ = load_model_file(path, model_cfg, ctx.device)
    model.fit_inputs(domain)
    return model, h


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    domain = ctx.domain(cfg.dataset)
    model, h = fit_in_domain(ctx, cfg.model, domain)
    rows = evaluate_rows(ctx, model, domain, setting="in_domain", model=model.name, ckpt_hash=h,
                         paper_compat=active_compat(model))
    return StageResult(rows, title=f"{model.name} in-domain on {domain.name}")


def active_compat(model) -> list[str]:
    flags = getattr(model, "paper_compat", None) or {}
    return sorted(k for k, v in dict(flags).items() if v is True)
