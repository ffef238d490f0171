"""Explicit model registry: name → adapter class, and construction from a model config."""

from __future__ import annotations

import difflib
import importlib
import inspect

from recx.errors import ConfigError

# name → "module:Class"; imported lazily so `recx --help` stays fast
MODELS: dict[str, str] = {
    "bert4rec": "recx.models.bert4rec:BERT4Rec",
    "gru4rec": "recx.models.gru4rec:GRU4Rec",
    "idp": "recx.models.idp:IDP",
    "pop": "recx.models.pop:Pop",
    "preprec": "recx.models.preprec:PrepRec",
    "sasrec": "recx.models.sasrec:SASRec",
    "statmlp": "recx.models.statmlp:StatMLP",
    "unisrec": "recx.models.unisrec:UniSRec",
}

# keys of a model config that describe the model rather than parametrise its constructor
META_KEYS = ("_target_", "name", "capabilities")


def model_class(name: str):
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=1)
        raise ConfigError(
            f"unknown model {name!r}" + (f" — did you mean {close[0]!r}?" if close else ""),
            hint=f"use one of: {', '.join(sorted(MODELS))}")
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def model_kwargs(model_cfg) -> dict:
    from omegaconf import DictConfig, OmegaConf

    tree = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(
        model_cfg, DictConfig) else dict(model_cfg)
    return {k: v for k, v in tree.items() if k not in META_KEYS}


def check_hparams(model_cfg) -> list[str]:
    """Bind the config to the adapter's signature; return problems (a misspelt key names the
    valid ones)."""
    cls = model_class(model_cfg.name)
    kwargs = model_kwargs(model_cfg)
    params = [p for p in inspect.signature(cls).parameters if p != "n_items"]
    return [f"model.{k} is not a parameter of {cls.__name__}; valid: {', '.join(params)}"
            for k in kwargs if k not in params]


def build_model(model_cfg, n_items: int = 0):
    cls = model_class(model_cfg.name)
    problems = check_hparams(model_cfg)
    if problems:
        raise ConfigError("\n".join(problems), hint="fix the model.* override")
    return cls(n_items=n_items, **model_kwargs(model_cfg))
