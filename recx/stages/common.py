"""What every stage shares: the run context and its domains, evaluation into metrics rows, and
the validation score that early stopping reads. How a stage obtains a model is
`recx.stages.checkpoints`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from recx.artifacts import task_overrides
from recx.config.hashing import drop_keys, stable_hash
from recx.data.canonical import check_evaluable, role_key
from recx.data.domain import DomainData, load_domain
from recx.errors import RecxError
from recx.eval.cache import scorer_key
from recx.eval.evaluator import Evaluator, SplitResult
from recx.store import git_state
from recx.version import __version__

log = logging.getLogger(__name__)


@dataclass
class Context:
    cfg: DictConfig
    run_dir: Path
    device: torch.device
    progress: object = None  # a rich Progress shared by evaluation bars, or None
    started: float = field(default_factory=time.time)
    _domains: dict = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    def domain(self, ds_cfg) -> DomainData:
        """The processed domain of a dataset config (cached per context)."""
        key = stable_hash(OmegaConf.to_container(ds_cfg, resolve=True),
                          {k: self.cfg.eval[k] for k in ("scenario", "valid_quantile",
                                                         "test_quantile", "cold_item_fraction")})
        if key not in self._domains:
            role = role_key(self.cfg, ds_cfg)
            try:
                d = load_domain(ds_cfg, self.cfg.eval, self.cfg.paths,
                                offline=bool(self.cfg.offline))
                if str(self.cfg.stage) != "preprocess" and not ds_cfg.get("pretrain_only"):
                    check_evaluable(d, role, str(self.cfg.eval.scenario))
            except RecxError as e:  # data code says dataset.<key>; name this stage's key
                raise e.for_role(role) from None
            d.env = self.feature_env()
            self._domains[key] = d
        return self._domains[key]

    def source_domains(self) -> list[DomainData]:
        """The processed domains of `source`, by name."""
        return [self.domain(ds) for _, ds in sorted(self.cfg.source.items())]

    def feature_env(self):
        from recx.data.features import FeatureEnv

        cfg = self.cfg
        return FeatureEnv(cache_root=Path(cfg.paths.cache), text=cfg.get("text"),
                          seed=int(cfg.seed), deterministic=bool(cfg.deterministic),
                          offline=bool(cfg.offline), progress=str(cfg.progress))


def selection_eval(ev) -> DictConfig:
    """Early stopping and α selection use full ranking unless eval.select_protocol=same."""
    if ev.select_protocol == "same":
        return ev
    sel = OmegaConf.merge(ev, {"candidates": "full", "ties": "pessimistic"})
    return sel


def score_fn(model):
    def fn(batch, cand):
        return model.score_all(batch) if cand is None else model.score_candidates(batch, cand)

    return fn


def make_evaluator(ctx: Context, model, domain, ev=None, label: str | None = None) -> Evaluator:
    """The evaluator of `domain`'s candidate policy: the same candidates for every model."""
    ev = ev if ev is not None else ctx.cfg.eval
    model.eval()  # evaluation never runs with dropout
    return Evaluator(domain, ev, cache_root=ctx.cfg.paths.cache,
                     max_len=model.max_len, device=model.device,
                     label=label or model.name, progress=ctx.progress,
                     query_order=model.query_order)


def valid_sample(model) -> int | None:
    """`model.optim.valid_sample_users`: early stopping on a seeded sample of that many
    validation users (a recipe setting, so it is part of the model's checkpoint hash; for
    models whose full ranking is expensive, e.g. statmlp on 10k+ items). Test ranks everyone."""
    n = model.optim.get("valid_sample_users")  # a recipe key of some models only
    return int(n) if n else None


def validation_score(ctx: Context, model, domains: list[DomainData]) -> float:
    """Mean of the select metric on the domains' validation splits."""
    ev = selection_eval(ctx.cfg.eval)
    metric = ev.select_metric
    scores = []
    for d in domains:
        if len(domains) > 1:
            model.fit_inputs(d)
        res = make_evaluator(ctx, model, d, ev).run(score_fn(model), "valid",
                                                    sample=valid_sample(model))
        scores.append(res.metrics([metric.split("@")[0]], [int(metric.split("@")[1])])
                      ["all"][metric])
    if len(domains) > 1:
        model.fit_inputs(domains[0])
    return float(np.mean(scores))


# what never makes two runs different experiments: bookkeeping, printing, and the reporting
# side of `eval` (the candidate set and cut-offs are in each row's protocol already)
_NOT_EXPERIMENT = ("seed", "progress", "print_config", "paths", "optimized_metric", "hydra",
                   "threads", "figures", "diagnostics", "offline", "store", "tag")
_EVAL_REPORTING = ("candidates", "n_negatives", "sampler", "popularity_power",
                   "share_valid_test_negatives", "negatives_seed", "mask_history",
                   "mask_variants", "ties", "metrics", "ks", "batch_users", "max_scores",
                   "slices", "sample_users", "cache")


def experiment_config(cfg) -> dict:
    """The run's config apart from its seed, bookkeeping and reporting-side evaluation keys."""
    tree = drop_keys(OmegaConf.to_container(cfg, resolve=False), _NOT_EXPERIMENT)
    if isinstance(tree.get("eval"), dict):
        tree["eval"] = drop_keys(tree["eval"], _EVAL_REPORTING)
    datasets = [tree.get("dataset"), tree.get("target"), *(tree.get("source") or {}).values()]
    for ds in datasets:  # how an input file is known unchanged is no part of the experiment
        if isinstance(ds, dict):
            ds.pop("verify", None)
    for key in ("model", "base"):  # what the model can do is part of what ran
        if isinstance(tree.get(key), dict):
            tree[key]["capabilities"] = _capabilities(tree[key].get("name"))
    return tree


def _capabilities(name) -> dict | None:
    """A model's capabilities (declared on its class; model configs once carried them too, so
    runs recorded either way share their experiment hash)."""
    from dataclasses import asdict

    from recx.models.registry import model_class

    try:
        return asdict(model_class(str(name)).capabilities)
    except RecxError:  # not a registered model: nothing to add
        return None


def experiment_hash(cfg) -> str:
    """`recx report` averages only rows that share it: runs that differ in their seed alone."""
    return stable_hash(experiment_config(cfg))


def base_row(ctx: Context, **fields) -> dict:
    cfg = ctx.cfg
    git = git_state()
    row = {
        "status": "ok", "stage": str(cfg.stage), "setting": None, "model": None, "mode": None,
        "base": None, "source": None, "target": None, "split": None, "slice": "all",
        "seed": int(cfg.seed), "alpha": None, "selected": None,
        "user_fraction": float(cfg.train.user_fraction) if "train" in cfg else None,
        "tag": cfg.get("tag"),
    }
    row.update(fields)
    row.update({
        "config_hash": stable_hash(OmegaConf.to_container(cfg, resolve=False)),
        "experiment_hash": experiment_hash(cfg), "overrides": task_overrides(),
        "device": str(ctx.device), "deterministic": bool(cfg.deterministic),
        "recx_version": __version__, "git_sha": git["git_sha"], "git_dirty": git["git_dirty"],
        "duration_s": round(time.time() - ctx.started, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "run_dir": str(ctx.run_dir),
    })
    return row


def eval_fields(ev, evaluator: Evaluator, res: SplitResult) -> dict:
    """The protocol of one candidate set: `policy` is true on the domain's own rule."""
    return {
        "protocol": evaluator.protocol_of(res), "policy": bool(res.policy),
        "scenario": str(ev.scenario), "candidates": str(ev.candidates),
        "n_negatives": int(ev.n_negatives) if ev.candidates == "sampled" else None,
        "sampler": str(ev.sampler) if ev.candidates == "sampled" else None,
        "mask_history": "n-a" if res.mask is None else ("on" if res.mask else "off"),
        "ties": str(ev.ties), "negatives_seed": int(ev.negatives_seed),
    }


def result_rows(ctx: Context, res: SplitResult, evaluator: Evaluator, domain: DomainData, *,
                variant: int = 0, **fields) -> list[dict]:
    """Rows of every candidate set counted (the policy's, then the other rule's)."""
    ev = evaluator.ev
    rows = []
    for cand in res.candidate_sets():
        for slice_name, mets in cand.metrics(list(ev.metrics), list(ev.ks), variant).items():
            n_users = mets.pop("n_users")
            rows.append(base_row(
                ctx, split=cand.split, slice=slice_name, target=domain.name, **fields,
                **eval_fields(ev, evaluator, cand), n_users=n_users,
                n_items=int(domain.n_items), n_repeat_targets=int(cand.n_repeat_targets),
                data_hash=domain.data_hash, **mets))
    return rows


def evaluate_rows(ctx: Context, net, domain: DomainData, splits=("valid", "test"),
                  sample_valid: bool = False, **fields) -> list[dict]:
    """Evaluate model `net` on `domain` (already fitted to it) with the configured protocol;
    `sample_valid` ranks only the model's early-stopping sample of validation users
    (`valid_sample`; rows say how many in n_users). Under torchrun only rank 0 evaluates; the
    other ranks return no rows."""
    from recx.train import distributed as D

    if not D.is_main():
        return []
    ev = ctx.cfg.eval
    evaluator = make_evaluator(ctx, net, domain, ev)
    if net.capabilities.needs_text and "text" in ctx.cfg:
        from recx.data.features.text import encoder_identity

        fields.setdefault("text_encoder", encoder_identity(ctx.cfg.text))
    rows = []
    key = scorer_key(ctx.cfg, ctx.device, net)
    for split in splits:
        sample = valid_sample(net) if sample_valid and split == "valid" else None
        res = evaluator.run(score_fn(net), split, sample=sample, cache_key=key)
        rows += result_rows(ctx, res, evaluator, domain, **fields)
    return rows
