"""Cross-field checks before any expensive work (ARCHITECTURE §5.5). All problems are collected
and raised together, each with its fix: values of the wrong type, choices with a "did you mean",
names that would write outside the configured folders, and what stages need of each other."""

from __future__ import annotations

import difflib
import logging
import re

from omegaconf import DictConfig, OmegaConf

from recx.config.schema import text_fields_of
from recx.errors import ConfigError

log = logging.getLogger(__name__)

STAGES_WITH_SOURCE = ("pretrain", "transfer", "finetune", "interpolate")
# numbers in model configs that must be positive, and probabilities that must be in [0, 1)
_POSITIVE = ("lr", "batch_size", "batch_users", "hidden", "heads", "layers", "blocks", "inner",
             "max_len", "max_epochs", "epochs", "eval_every", "patience", "dim")
_DROPOUT = re.compile(r"(dropout|_drop|drop_prob)$")
_TABLE_READERS = ("auto", "csv", "tsv", "parquet", "jsonl")  # dataset.columns.* name the columns
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=-]*$")


def did_you_mean(value, options) -> str:
    close = difflib.get_close_matches(str(value), [str(o) for o in options], n=1, cutoff=0.5)
    return f" — did you mean {close[0]!r}?" if close else ""


def name_problem(key: str, value, *, loose: bool = False) -> str | None:
    """A name that becomes a folder (`dataset.name`, `run_name`, ...) must stay one folder
    under the configured roots: no `/`, no `..`, not absolute (`loose`: any other character)."""
    text = str(value)
    if ".." not in text and (_PLAIN_NAME.match(text) if not loose else
                             text.strip() and not any(c in text for c in "/\\\0")):
        return None
    allowed = "any characters but '/' and '\\'" if loose else \
        "letters, digits and _ . + = - only"
    return (f"{key}={text!r} is not a plain name: it names a folder under the outputs or the "
            f"data folder, so it may hold {allowed} (no '..')")


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
    if "dataset" in cfg and isinstance(cfg.dataset, DictConfig):
        out["dataset"] = cfg.dataset
    if "target" in cfg and isinstance(cfg.target, DictConfig):
        out["target"] = cfg.target
    for name, ds in (cfg.get("source") or {}).items():
        out[f"source.{name}"] = ds
    return out


_ABSENT = object()


def _select(node, path: str, default=None):
    try:
        return OmegaConf.select(node, path, default=default, throw_on_missing=False)
    except Exception:  # an interpolation that does not resolve: the stage reports it
        return default


def choice_problems(node, schema, key: str) -> list[str]:
    """Every `Choice` field of `schema` (recx.config.schema) set to a value it does not list."""
    from recx.config.schema import TimestampUnit, choice_fields

    out = []
    for path, kind in choice_fields(schema).items():
        value = _select(node, path)
        if value is None:
            continue
        text = str(value)
        if kind is TimestampUnit and "%" in text:  # a strptime format
            continue
        allowed = kind.values()
        if (text.lower() if path == "mask_history" else text) in allowed:
            continue
        extra = " or a strptime format such as '%Y-%m-%d %H:%M:%S'" if \
            kind is TimestampUnit else ""
        out.append(f"{key}.{path}={text!r}{did_you_mean(text, allowed)} (use "
                   f"{', '.join(allowed)}{extra})")
    return out


def model_problems(model_cfg, key: str) -> list[str]:
    """Types and choices of the model's documented keys (`recx.config.documented`), and the
    numbers that must be positive or probabilities."""
    from recx.config.documented import model_schema, type_problem
    from recx.config.location import conf_dir

    schema = model_schema(str(model_cfg.name), (str(conf_dir()),))
    out = []
    for path, doc in schema.items():
        value = _select(model_cfg, path, _ABSENT)
        if value is _ABSENT:  # not in this config (e.g. an experiment removed it)
            continue
        where = f"{key}.{path}={value!r}" if not isinstance(value, str) else \
            f"{key}.{path}={value}"
        why = type_problem(value, doc)
        if why is not None:
            out.append(f"{where} {why}")
            continue
        if doc.choices and isinstance(value, str) and value not in doc.choices:
            out.append(f"{where}{did_you_mean(value, doc.choices)} (use "
                       f"{', '.join(doc.choices)})")
            continue
        leaf = path.rsplit(".", 1)[-1]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and leaf in _POSITIVE and value <= 0:
            out.append(f"{where} must be positive")
        elif number and _DROPOUT.search(leaf) and not 0 <= value < 1:
            out.append(f"{where} must be a probability in [0, 1)")
    return out


def _hparam_problems(model_cfg, key: str) -> list[str]:
    """Keys that are not parameters of the adapter, with a "did you mean"."""
    from recx.models.registry import check_hparams

    out = []
    for p in check_hparams(model_cfg):
        m = re.match(r"model\.(\w+) is not a parameter of \w+; valid: (.*)$", p)
        if m:
            p += did_you_mean(m.group(1), m.group(2).split(", "))
        out.append(p.replace("model.", f"{key}.", 1))
    return out


def validate(cfg) -> None:
    """Raise one ConfigError listing every problem of `cfg` with its fix; warn about what is
    allowed but probably unintended."""
    stage = str(cfg.stage)
    problems = _stage_problems(cfg, stage) + _value_problems(cfg, stage)
    models, model_problems_ = _model_classes(cfg)
    problems += model_problems_
    if "train" in cfg:
        problems += _train_problems(cfg.train)
    if "eval" in cfg:
        problems += _eval_problems(cfg.eval)
    problems += _capability_problems(cfg, stage, models)
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems),
                          hint="fix the overrides listed above")
    if "source" in cfg and "target" in cfg and stage != "run" and cfg.target.name in (
            cfg.source or {}):
        log.warning("target %s is also a source: this is not a cross-domain transfer",
                    cfg.target.name)


def _stage_problems(cfg, stage: str) -> list[str]:
    """The data sets a stage needs, in the keys it reads them from."""
    out = []
    if stage in STAGES_WITH_SOURCE and "source" in cfg and not cfg.source:
        out.append("source is empty; pick at least one: source=synth_a "
                   "(or 'source=[synth_a,synth_b]')")
    if "dataset" in cfg and stage in STAGES_WITH_SOURCE:
        given = [f"dataset.{k}" for k in (cfg.dataset or {})] or ["dataset"]
        leaf = str(next(iter(cfg.dataset or {}), "<key>"))
        out.append(f"{', '.join(given)} has no effect in `recx {stage}`, whose data sets "
                   f"are target= and source=: set target.{leaf}=... or "
                   f"source.<name>.{leaf}=... instead")
    return out


def _value_problems(cfg, stage: str) -> list[str]:
    """Missing values, choices and names of the data sets and the schema-backed groups."""
    from recx.config.schema import DatasetSchema, EvalSchema, TextSchema, TrainSchema

    out = []
    for key, ds in _datasets(cfg).items():
        if stage == "run" and key in ("source", "target"):
            continue
        for path in _missing_values(ds, key):
            out.append(f"{path} is required (???) — set it on the command line: {path}=...")
        out += choice_problems(ds, DatasetSchema, key)
        out += _dataset_problems(ds, key)
    for key, schema in (("train", TrainSchema), ("eval", EvalSchema), ("text", TextSchema)):
        if key in cfg and isinstance(cfg[key], DictConfig):
            out += choice_problems(cfg[key], schema, key)
    if cfg.get("run_name") is not None and (p := name_problem("run_name",
                                                              _select(cfg, "run_name"))):
        out.append(p)
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        out.append(f"seed={seed!r} must be a non-negative integer (numpy seeds are ≥ 0)")
    return out


def _model_classes(cfg) -> tuple[dict, list[str]]:
    """The adapter class of `model` and `base` (those that name one), and the problems of
    their settings: names, keys, the recipe, types and choices."""
    from recx.models.registry import model_class

    models, out = {}, []
    for key in ("model", "base"):
        if key in cfg and cfg[key] is not None and _select(cfg[key], "name") is None:
            out.append(f"{key}.* is set but recx {cfg.stage} selects no {key} (no {key}.name): "
                       f"the experiment or override that sets {key}.* is for a stage that "
                       f"selects a {key}")
        elif key in cfg and cfg[key] is not None:
            try:
                models[key] = model_class(str(cfg[key].name))
            except ConfigError as e:
                out.append(str(e))
                continue
            out += _hparam_problems(cfg[key], key)
            out += model_problems(cfg[key], key)
    return models, out


def _capability_problems(cfg, stage: str, models: dict) -> list[str]:
    """What the stage needs of its models (zero-shot, fine-tuning, in-domain training) and
    of their data (item text)."""
    from recx.models.registry import MODELS, model_class

    out = []
    model = models.get("model")
    if model is not None and stage in ("transfer", "interpolate") and \
            not model.capabilities.zero_shot and \
            not (stage == "interpolate" and cfg.interpolate["from"] == "finetune"):
        ds = cfg.target.name if "target" in cfg else "<target>"
        out.append(f"{model.name} is ID-based and cannot transfer zero-shot. For an in-domain "
                   f"reference run `recx train model={model.name} dataset={ds}`")
    if model is not None and stage == "finetune" and not model.capabilities.finetune:
        out.append(f"{model.name} has no finetune stage; models with one: "
                   + ", ".join(n for n in MODELS if model_class(n).capabilities.finetune))
    base = models.get("base")
    if stage == "interpolate" and base is not None and not base.capabilities.trainable \
            and base.name != "pop":
        out.append(f"base={base.name} is not trainable in-domain")
    if model is not None and model.capabilities.needs_text:
        for key, ds in _datasets(cfg).items():
            if stage in ("pretrain",) and key == "target":
                continue
            if not text_fields_of(ds):
                out.append(f"{model.name} needs item text but {key} ({ds.name}) has no "
                           f"text_fields; set {key}.text_fields or pick a dataset with text")
    return out


def _dataset_problems(ds, key: str) -> list[str]:
    out = []
    for field in ("name", "category"):
        value = _select(ds, field)
        if value is not None and str(value) != "???" and (
                p := name_problem(f"{key}.{field}", value, loose=field == "category")):
            out.append(p)
    if str(_select(ds, "reader")) in _TABLE_READERS:  # a file of the user's own
        if not _select(ds, "path") and not _select(ds, "file"):
            out.append(f"{key}.path is not set: name the interactions file, "
                       f"{key}.path=<file.csv|.parquet|.jsonl>")
        for col in ("user", "item", "timestamp"):
            if _select(ds, f"columns.{col}") is None:
                out.append(f"{key}.columns.{col} is not set: name the file's {col} column, "
                           f"{key}.columns.{col}=<column>")
    for side in ("user", "item"):
        k = _select(ds, f"filters.k_core.{side}")
        if isinstance(k, int) and k < 0:
            out.append(f"{key}.filters.k_core.{side}={k} must be ≥ 0 (0 turns the filter off)")
    return out


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _train_problems(t) -> list[str]:
    out = []
    for k in ("max_epochs", "limit_batches"):
        v = t.get(k)
        if v is not None and _number(v) and v <= 0:
            out.append(f"train.{k}={v} must be positive (or null)")
    uf = t.get("user_fraction")
    if _number(uf) and not 0 < uf <= 1:
        out.append(f"train.user_fraction={uf} must be in (0, 1]")
    return out


def _eval_problems(e) -> list[str]:
    from recx.eval.metrics import KNOWN

    out = []
    if _number(e.batch_users) and e.batch_users <= 0:
        out.append(f"eval.batch_users={e.batch_users} must be positive")
    if e.candidates == "sampled" and _number(e.n_negatives) and e.n_negatives <= 0:
        out.append(f"eval.n_negatives={e.n_negatives} must be positive")
    if any(_number(k) and k <= 0 for k in e.ks):
        out.append(f"eval.ks={list(e.ks)} must be positive")
    for m in e.metrics:
        if str(m) not in KNOWN:
            out.append(f"eval.metrics: {m!r}{did_you_mean(m, KNOWN)} (use {', '.join(KNOWN)})")
    slices = ("all", "cold_target", "long_tail", "head", "activity_q1", "activity_q2",
              "activity_q3", "activity_q4")
    for s in e.slices:
        if str(s) not in slices:
            out.append(f"eval.slices: {s!r}{did_you_mean(s, slices)} (use {', '.join(slices)})")
    metric = str(e.select_metric)
    name, _, k = metric.partition("@")
    if not k.isdigit():
        out.append(f"eval.select_metric={metric!r} must look like NDCG@10")
    elif name not in KNOWN:
        out.append(f"eval.select_metric={metric!r}: {name!r}{did_you_mean(name, KNOWN)} "
                   f"(use one of {', '.join(KNOWN)}, e.g. NDCG@10)")
    return out
