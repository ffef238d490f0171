"""Cross-field checks before any expensive work (ARCHITECTURE §5.5). All problems are collected
and raised together, each with its fix."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from recx.config.schema import text_fields_of
from recx.errors import ConfigError

log = logging.getLogger(__name__)


def _missing_values(node, prefix: str) -> list[str]:
    out = []
    for key in node:
        path = f"{prefix}.{key}" if prefix else str(key)
        if OmegaConf.is_missing(node, key):
            out.append(path)
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            out += _missing_values(child, path)
    return out


def _datasets(cfg) -> dict[str, DictConfig]:
    out = {}
    if "dataset" in cfg:
        out["dataset"] = cfg.dataset
    if "target" in cfg:
        out["target"] = cfg.target
    for name, ds in (cfg.get("source") or {}).items():
        out[f"source.{name}"] = ds
    return out


def validate(cfg) -> None:
    from recx.models.registry import check_hparams, model_class

    problems: list[str] = []
    stage = str(cfg.stage)
    for key, ds in _datasets(cfg).items():
        if stage == "run" and key in ("source", "target"):
            continue
        for path in _missing_values(ds, key):
            problems.append(f"{path} is required (???) — set it on the command line: {path}=...")
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        problems.append(f"seed={seed!r} must be an integer")

    models = {}
    for key in ("model", "base"):
        if key in cfg and cfg[key] is not None:
            try:
                models[key] = model_class(str(cfg[key].name))
                problems += check_hparams(cfg[key]) if key == "model" else [
                    p.replace("model.", "base.", 1) for p in check_hparams(cfg[key])]
            except ConfigError as e:
                problems.append(str(e))
    model = models.get("model")
    opt = cfg.model.get("optim") if "model" in cfg else None
    if opt:
        for k in ("batch_size", "batch_users"):
            if k in opt and opt[k] is not None and int(opt[k]) <= 0:
                problems.append(f"model.optim.{k}={opt[k]} must be positive")
        if "lr" in opt and float(opt.lr) <= 0:
            problems.append(f"model.optim.lr={opt.lr} must be positive")
    if "train" in cfg:
        t = cfg.train
        if t.max_epochs is not None and t.max_epochs <= 0:
            problems.append(f"train.max_epochs={t.max_epochs} must be positive (or null)")
        if t.limit_batches is not None and t.limit_batches <= 0:
            problems.append(f"train.limit_batches={t.limit_batches} must be positive (or null)")
        if not 0 < t.user_fraction <= 1:
            problems.append(f"train.user_fraction={t.user_fraction} must be in (0, 1]")
        if t.resume not in ("auto", "never"):
            problems.append(f"train.resume={t.resume!r} must be auto or never")
    if "eval" in cfg:
        e = cfg.eval
        if e.batch_users <= 0:
            problems.append(f"eval.batch_users={e.batch_users} must be positive")
        if e.candidates == "sampled" and e.n_negatives <= 0:
            problems.append(f"eval.n_negatives={e.n_negatives} must be positive")
        if any(k <= 0 for k in e.ks):
            problems.append(f"eval.ks={list(e.ks)} must be positive")
        if "@" not in str(e.select_metric):
            problems.append(f"eval.select_metric={e.select_metric!r} must look like NDCG@10")

    if model is not None and stage in ("transfer", "interpolate") and \
            not model.capabilities.zero_shot and \
            not (stage == "interpolate" and cfg.interpolate["from"] == "finetune"):
        ds = cfg.target.name if "target" in cfg else "<target>"
        problems.append(
            f"{model.name} is ID-based and cannot transfer zero-shot. For an in-domain reference "
            f"run `recx train model={model.name} dataset={ds}`")
    if model is not None and stage == "finetune" and not model.capabilities.finetune:
        problems.append(f"{model.name} has no finetune stage; models with one: "
                        "unisrec, idp, preprec (few-shot)")
    if stage == "interpolate" and "base" in models and not models["base"].capabilities.trainable \
            and models["base"].name != "pop":
        problems.append(f"base={models['base'].name} is not trainable in-domain")
    if model is not None and model.capabilities.needs_text:
        for key, ds in _datasets(cfg).items():
            if stage in ("pretrain",) and key == "target":
                continue
            if not text_fields_of(ds):
                problems.append(f"{model.name} needs item text but {key} ({ds.name}) has no "
                                f"text_fields; set {key}.text_fields or pick a dataset with text")
    if ("source" in cfg and stage in ("pretrain", "transfer", "finetune", "interpolate")
            and not cfg.source):
        problems.append("source is empty; pick at least one: source=synth_a")
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems),
                          hint="fix the overrides listed above")
    if "source" in cfg and "target" in cfg and stage != "run" and cfg.target.name in (
            cfg.source or {}):
        log.warning("target %s is also a source: this is not a cross-domain transfer",
                    cfg.target.name)

