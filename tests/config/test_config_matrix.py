"""Every primary config × every group option × every `experiment=` composes and validates, or
fails for the reason the documentation gives: an experiment overriding a group the stage does
not have does not compose; an ID-based model cannot transfer zero-shot; a model without a
fine-tuning stage cannot be fine-tuned; `custom` needs the user's file; a model that needs item
text needs data sets with text; an experiment's model.* keys belong to the model it is for.

The full product is `slow` (about 5,900 compositions, 20 minutes on 2 cores); the default suite
composes every experiment in every primary config and every option of the groups but `model`
(whose options the product and the contract tests compose)."""

from __future__ import annotations

import functools

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from recx.config.aliases import option_names
from recx.config.validate import validate
from recx.errors import ConfigError
from recx.models.registry import model_class
from tests.conftest import CONF, compose

PRIMARY = sorted(p.stem for p in CONF.glob("*.yaml")
                 if p.stem != "common" and not p.stem.endswith("_block"))
EXPERIMENTS = option_names([CONF], "experiment")
DATASETS = option_names([CONF], "dataset")
MODELS = option_names([CONF], "model")
OPTIONS = {"model": MODELS, "base": MODELS, "dataset": DATASETS, "source": DATASETS,
           "target": DATASETS, **{g: option_names([CONF], g)
                                  for g in ("train", "eval", "text", "debug")}}


# data sets that cannot be validated without the user's own input, and what validate says
NEEDS_INPUT = {"custom": "path is not set"}


@functools.cache
def groups_of(primary: str) -> tuple[str, ...]:
    """The config groups a primary config selects options of (its defaults list)."""
    out = []
    for entry in OmegaConf.to_container(OmegaConf.load(CONF / f"{primary}.yaml"))["defaults"]:
        for key in entry if isinstance(entry, dict) else []:
            key = key.replace("optional ", "").replace("override ", "")
            if key in OPTIONS:
                out.append(key)
    return tuple(out)


@functools.cache
def experiment(name: str) -> dict:
    """(overridden groups, top-level model keys) of an experiment file."""
    tree = OmegaConf.to_container(OmegaConf.load(CONF / "experiment" / f"{name}.yaml"))
    overridden = {next(iter(d)).removeprefix("override /") for d in tree.get("defaults", [])
                  if isinstance(d, dict)}
    return {"groups": overridden, "model_keys": set(_paths(tree.get("model") or {}))}


@functools.cache
def yaml_keys(group: str, name: str) -> set[str]:
    """Every dotted key path (and prefix) of a config file."""
    return set(_paths(OmegaConf.to_container(OmegaConf.load(CONF / group / f"{name}.yaml"))))


def _paths(tree: dict, prefix: str = ""):
    for k, v in tree.items():
        yield f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _paths(v, f"{prefix}{k}.")


def expected_problems(primary: str, exp: str | None, cfg) -> list[str]:
    """What validate must report for `cfg` (composed from `primary`, `exp` and one option)."""
    stage = primary
    out = []
    model = cfg.get("model")
    named = model is not None and model.get("name") is not None
    cls = model_class(str(model.name)) if named else None
    if exp is not None and experiment(exp)["model_keys"]:
        if model is not None and not named:
            out.append("selects no model")
        elif named:  # the experiment's model.* keys that the composed model lacks
            own = yaml_keys("model", str(model.name))
            for key in sorted(experiment(exp)["model_keys"] - own):
                first = next(p for p in _prefixes(key) if p not in own)
                if "." not in first:
                    out.append(f"model.{first} is not a parameter")
                elif first.startswith("optim."):  # the recipe schema's words
                    out.append(f"model.{first} is unknown")
    if cls is not None and stage in ("transfer", "interpolate") \
            and not cls.capabilities.zero_shot:
        out.append("is ID-based and cannot transfer zero-shot")
    if cls is not None and stage == "finetune" and not cls.capabilities.finetune:
        out.append("has no finetune stage")
    slots = {"dataset": cfg.get("dataset"), "target": cfg.get("target"),
             **{f"source.{k}": v for k, v in (cfg.get("source") or {}).items()}}
    for slot, ds in slots.items():
        if ds is None or (stage == "run" and slot == "target"):  # run's steps check it
            continue
        if ds.name in NEEDS_INPUT:
            out.append(NEEDS_INPUT[ds.name])
        needs_text = cls is not None and cls.capabilities.needs_text
        if needs_text and not (stage == "pretrain" and slot == "target") \
                and not _has_text(ds):
            out.append("needs item text")
    return out


def _prefixes(key: str) -> list[str]:
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _has_text(ds) -> bool:
    from recx.config.schema import text_fields_of

    return bool(text_fields_of(ds))


def check(primary: str, exp: str | None, overrides: list[str]) -> None:
    """Compose and validate one combination against `expected_problems`."""
    over = [*overrides, *([f"experiment={exp}"] if exp else [])]
    missing = set(experiment(exp)["groups"]) - set(groups_of(primary)) if exp else set()
    if missing:  # an experiment for stages with a group this one lacks
        with pytest.raises(ConfigCompositionException, match="Could not override"):
            compose(primary, over)
        return
    cfg = compose(primary, over)
    want = expected_problems(primary, exp, cfg)
    if not want:
        validate(cfg)
        return
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    for phrase in want:
        assert phrase in e.value.message, (primary, over, phrase, e.value.message)


def intended(exp: str, primary: str) -> list[str]:
    """The model an experiment's model.* keys are for, where it does not select one itself."""
    keys = experiment(exp)["model_keys"]
    if not keys or "model" in experiment(exp)["groups"] or "model" not in groups_of(primary):
        return []
    return [f"model={m}" for m in MODELS if keys <= yaml_keys("model", m)]


# ----------------------------------------------------------------------------- default suite
@pytest.mark.parametrize("primary", PRIMARY)
def test_every_experiment_in_every_primary_config(primary):
    for exp in EXPERIMENTS:
        check(primary, exp, [])
        for model in intended(exp, primary):
            check(primary, exp, [model])


def test_every_group_option_but_the_models():
    for group in ("train", "eval", "text", "debug"):
        for option in OPTIONS[group]:
            check("train", None, [f"{group}={option}"])
    # every data set at once, as sources of a text model (item text is checked) and of pop
    everything = f"source=[{','.join(DATASETS)}]"
    check("pretrain", None, ["model=unisrec", everything])
    check("pretrain", None, ["model=pop", everything])


# ----------------------------------------------------------------------------- the product
@pytest.mark.slow
@pytest.mark.parametrize("primary", ["train", "transfer", "finetune", "interpolate"])
def test_every_model_option_where_the_stages_check_models(primary):
    for group in ("model", "base"):
        for option in OPTIONS[group] if group in groups_of(primary) else []:
            check(primary, None, [f"{group}={option}"])


@pytest.mark.slow
@pytest.mark.parametrize("primary", PRIMARY)
def test_every_group_option_with_every_experiment(primary):
    for group in groups_of(primary):
        for option in OPTIONS[group]:
            for exp in [None, *EXPERIMENTS]:
                check(primary, exp, [f"{group}={option}"])
