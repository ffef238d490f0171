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
META_KEYS = ("_target_", "name")


def model_class(name: str):
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=1)
        raise ConfigError(
            f"unknown model {name!r}" + (f" — did you mean {close[0]!r}?" if close else ""),
            hint=f"use one of: {', '.join(sorted(MODELS))}")
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def model_config(name: str, **overrides):
    """The model's own config, `conf/model/<name>.yaml` (its one home of defaults), with
    `overrides` merged in: nested mappings key by key, other values replaced. For building a
    model outside a stage (tests, notebooks): `build_model(model_config("sasrec", hidden=32))`."""
    from omegaconf import OmegaConf

    from recx.config.location import conf_dir

    path = conf_dir() / "model" / f"{name}.yaml"
    if not path.is_file():
        model_class(name)  # an unknown name: the "did you mean" error
        raise ConfigError(f"no config file for model {name!r}", hint=f"add {path}")
    tree = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return OmegaConf.create(_merged(tree, overrides))


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = _merged(out[k], v) if both else v
    return out


def model_kwargs(model_cfg) -> dict:
    from omegaconf import DictConfig, OmegaConf

    tree = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(
        model_cfg, DictConfig) else dict(model_cfg)
    return {k: v for k, v in tree.items() if k not in META_KEYS}


def check_hparams(model_cfg) -> list[str]:
    """Bind the config to the adapter's signature; return problems (a misspelt key names the
    valid ones; a missing one says where the model's settings live)."""
    cls = model_class(model_cfg.name)
    kwargs = model_kwargs(model_cfg)
    signature = inspect.signature(cls).parameters
    params = [p for p in signature if p != "n_items"]
    out = []
    for k in kwargs:
        if k == "capabilities":
            out.append(f"model.capabilities is not a setting: {cls.__name__} declares its "
                       "capabilities on its class; remove the key")
        elif k not in params:
            out.append(f"model.{k} is not a parameter of {cls.__name__}; valid: "
                       f"{', '.join(params)}")
    out += [f"model.{k} is missing (every setting of {cls.__name__} is in "
            f"conf/model/{cls.name}.yaml)" for k in params
            if k not in kwargs and signature[k].default is inspect.Parameter.empty]
    if "optim" in params and "optim" in kwargs:
        out += cls.recipe_problems(kwargs["optim"])
    return out


def build_model(model_cfg, n_items: int = 0):
    cls = model_class(model_cfg.name)
    problems = check_hparams(model_cfg)
    if problems:
        raise ConfigError("\n".join(problems), hint="fix the model.* override")
    return cls(n_items=n_items, **model_kwargs(model_cfg))
