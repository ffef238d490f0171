"""How a stage obtains a model: in-domain, pre-trained or fine-tuned (ARCHITECTURE §7.4).

Each of the three is one path: the config's checkpoint hash → its store entry → trained there
(by the stage that makes it, `train=True`) or required (any other stage: a miss raises with the
`recx` command that creates it) → loaded strictly → fitted to the domain it will score. A model
without weights (Pop) has no checkpoint: it is counted on the domain and its hash is None.

    in_domain_model(ctx, model_cfg, domain)   recx train      artifacts/train/…
    pretrained_model(ctx)                     recx pretrain   artifacts/pretrain/…
    finetuned_model(ctx, target)              recx finetune   artifacts/finetune/…

`ckpt=PATH` (`base_ckpt=PATH` for an interpolation's base) loads a file instead of looking the
hash up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from recx import artifacts
from recx.config.hashing import stat_identity
from recx.config.resolvers import source_key
from recx.data.domain import DomainData
from recx.models.registry import build_model, model_class
from recx.seed import reseed_for_model
from recx.stages.common import Context, validation_score
from recx.store import Store, atomic_write_json
from recx.train import checkpoint


@dataclass(frozen=True)
class Checkpoint:
    """Where a checkpoint lives and how it is made."""

    what: str  # e.g. "in-domain sasrec on synth_t", for the miss message
    hash: str
    entry: Path  # the store entry (model.pt inside)
    command: str  # the recx command that creates it

    def require(self) -> Path:
        """model.pt of the entry; a miss raises with the command that creates it."""
        return artifacts.require(self.entry, self.what, self.command, self.hash)


# ------------------------------------------------------------------------------ the hashes
def text_identity(ctx: Context, model_cfg) -> str | None:
    """The text encoder a text model's checkpoint depends on (part of its hash)."""
    if not model_class(str(model_cfg.name)).capabilities.needs_text:
        return None
    from recx.data.features.text import encoder_identity

    return encoder_identity(ctx.cfg.text)


def in_domain(ctx: Context, model_cfg, domain: DomainData, *, key: str = "model") -> Checkpoint:
    """The `recx train` checkpoint of `model_cfg` on `domain`. The command keeps the run's own
    model.* overrides; those of another config key (`base`) become model.* there."""
    cfg = ctx.cfg
    name = model_class(str(model_cfg.name)).name
    h = artifacts.ckpt_hash(cfg, model_cfg, [domain.data_hash],
                            text_identity=text_identity(ctx, model_cfg))
    over = [] if key == "model" else [o.replace(key, "model", 1)
                                      for o in artifacts.task_overrides()
                                      if o.startswith(f"{key}.")]
    return Checkpoint(f"in-domain {name} on {domain.name}", h,
                      artifacts.train_dir(cfg, name, domain.name, h),
                      artifacts.create_command("train", name, [f"dataset={domain.name}", *over]))


def pretrain_model_cfg(model_cfg):
    """The model config without the keys that only act after pre-training (the model class's
    dotted `posttrain_keys`, e.g. IDP's retrieval settings), so one pretrain checkpoint serves
    a sweep over them."""
    keys = model_class(str(model_cfg.name)).posttrain_keys
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


def pretrained(ctx: Context, model_cfg=None) -> Checkpoint:
    """The `recx pretrain` checkpoint of `model_cfg` (default cfg.model) on the sources."""
    cfg = ctx.cfg
    model_cfg = model_cfg if model_cfg is not None else cfg.model
    name = model_class(str(model_cfg.name)).name
    h = artifacts.ckpt_hash(cfg, pretrain_model_cfg(model_cfg),
                            [d.data_hash for d in ctx.source_domains()],
                            text_identity=text_identity(ctx, model_cfg))
    # the cold setting's fraction is the target's, never the sources' (see all_users)
    cmd = artifacts.create_command("pretrain", name, [f"source=[{','.join(sorted(cfg.source))}]"])
    cmd = " ".join(a for a in cmd.split(" ") if not a.startswith("train.user_fraction="))
    return Checkpoint(f"pretrained {name} on source {source_key(cfg.source)}", h,
                      artifacts.pretrain_dir(cfg, name, source_key(cfg.source), h), cmd)


def finetune_block(cfg) -> dict:
    """The stage's `finetune` block, keys left null dropped (part of the finetune hash)."""
    block = OmegaConf.to_container(cfg.finetune, resolve=True) if "finetune" in cfg else {}
    return {k: v for k, v in block.items() if v is not None}


def finetuned(ctx: Context, target: DomainData, parent_hash: str | None) -> Checkpoint:
    """The `recx finetune` checkpoint of cfg.model on `target`, child of `parent_hash`."""
    cfg = ctx.cfg
    name = model_class(str(cfg.model.name)).name
    block = finetune_block(cfg)
    # few-shot blocks keep the end state (before: the better of the validated epochs); the
    # marker keeps checkpoints of that older procedure from being reused
    hashed = {**block, "end_state": True} if block.get("epochs") else block
    h = artifacts.ckpt_hash(cfg, cfg.model, [target.data_hash], parent=parent_hash,
                            finetune=hashed)
    return Checkpoint(
        f"finetuned {name} on {target.name}", h,
        artifacts.finetune_dir(cfg, name, source_key(cfg.source), target.name, h),
        artifacts.create_command("finetune", name, [
            f"source=[{','.join(sorted(cfg.source))}]", f"target={target.name}"]))


def all_users(cfg):
    """`cfg` with train.user_fraction = 1. The fraction is the cold setting of the TARGET's
    training (EVALUATION §1.3): a target stage's parent is the sources' pre-training on all
    their users, whatever the fraction of the target stage."""
    if float(cfg.train.user_fraction) == 1.0:
        return cfg
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.train.user_fraction = 1.0
    return cfg


# ------------------------------------------------------------------------------ the models
def in_domain_model(ctx: Context, model_cfg, domain: DomainData, *, train: bool = False,
                    ckpt: str = "auto", key: str = "model"):
    """The in-domain model of `model_cfg` on `domain`, fitted to it: (model, ckpt hash).
    `train`: train it on a miss (recx train); else look it up by hash, or load the file `ckpt`
    (a miss raises). Pop is counted on `domain` (with `train`: on the training users of
    `train.user_fraction`)."""
    trainable = model_class(str(model_cfg.name)).capabilities.trainable
    if not train:
        if not trainable:
            return _fitted(build_model(model_cfg).to(ctx.device), domain), None
        if str(ckpt) != "auto":
            return _loaded(Path(ckpt), model_cfg, ctx, domain), f"file:{Path(ckpt).name}"
        cp = in_domain(ctx, model_cfg, domain, key=key)
        return _loaded(cp.require(), model_cfg, ctx, domain), cp.hash
    reseed_for_model(ctx.seed)
    model = build_model(model_cfg, n_items=domain.n_items).to(ctx.device)
    model.fit_inputs(domain)
    if not trainable:
        model.fit_nonparametric(domain, domain.train_users(float(ctx.cfg.train.user_fraction),
                                                           ctx.seed))
        return model, None
    cp = in_domain(ctx, model_cfg, domain, key=key)
    train_and_save(ctx, model, model_cfg, [domain], cp.entry,
                   label=f"{model.name}@{domain.name}",
                   meta={"kind": "train", "model": model.name, "dataset": domain.name,
                         "ckpt_hash": cp.hash})
    return _loaded(cp.entry / "model.pt", model_cfg, ctx, domain), cp.hash


def training_domains(ctx: Context, model_cls, domains: list[DomainData]) -> list[DomainData]:
    """What pre-training on `domains` trains on. Zero-shot models train on each source; ID
    models on their union. A model whose batches mix domains (`mixes_domains`: UniSRec's
    multi-domain negatives) trains on the union too, which keeps its sources as `.sources`
    (each with its own item text and feature cache)."""
    from recx.data.merge import merge_domains

    if len(domains) == 1:
        return domains
    if model_cls.mixes_domains:
        union = merge_domains(domains, ctx.cfg.paths.cache)
        union.sources = sorted(domains, key=lambda d: d.name)
        return [union]
    if model_cls.capabilities.zero_shot:
        return domains
    return [merge_domains(domains, ctx.cfg.paths.cache)]


def pretrained_model(ctx: Context, model_cfg=None, *, fit_to: DomainData | None = None,
                     train_on: list[DomainData] | None = None):
    """The model of `model_cfg` (default cfg.model) pre-trained on the sources: (model, ckpt
    hash), fitted to `fit_to` when given. `train_on` (what `training_domains` gives): train it
    there on a miss (recx pretrain); else look up the pre-training on all the sources' users,
    or load the file `ckpt` (a miss raises)."""
    cfg = ctx.cfg
    model_cfg = model_cfg if model_cfg is not None else cfg.model
    cls = model_class(str(model_cfg.name))
    if not cls.capabilities.trainable:
        return _fitted(build_model(model_cfg).to(ctx.device), fit_to), None
    if train_on is not None:
        cp = pretrained(ctx, model_cfg)
        reseed_for_model(ctx.seed)
        model = build_model(model_cfg, n_items=train_on[0].n_items).to(ctx.device)
        model.fit_inputs(train_on[0])
        skey = source_key(cfg.source)
        train_and_save(ctx, model, model_cfg, train_on, cp.entry, label=f"{cls.name}@{skey}",
                       meta={"kind": "pretrain", "model": cls.name, "source": skey,
                             "ckpt_hash": cp.hash})
        return _loaded(cp.entry / "model.pt", model_cfg, ctx, fit_to), cp.hash
    ckpt = str(cfg.get("ckpt", "auto"))
    if ckpt != "auto":
        return _loaded(Path(ckpt), model_cfg, ctx, fit_to), f"file:{Path(ckpt).name}"
    cp = pretrained(replace(ctx, cfg=all_users(cfg)), model_cfg)
    model, _ = load_model_file(cp.require(), model_cfg, ctx.device)
    if cls.uses_pretraining_domain:
        model.attach_pretraining(training_domains(ctx, cls, ctx.source_domains())[0])
    return _fitted(model, fit_to), cp.hash


def finetuned_model(ctx: Context, target: DomainData, *, train: bool = False):
    """The pretrained cfg.model adapted on `target`, fitted to it: (model, ckpt hash).
    `train`: fine-tune it on a miss (recx finetune); else look it up (a miss raises)."""
    cfg = ctx.cfg
    parent, parent_hash = pretrained_model(ctx)
    block = finetune_block(cfg)
    cp = finetuned(ctx, target, parent_hash)
    if train:
        parent.fit_inputs(target)
        parent.prepare_finetune(target, block)
        kw = {}
        if block.get("epochs"):  # few-shot: a fixed number of epochs, evaluated at the end
            kw["max_epochs"], kw["validate"] = int(block["epochs"]), False
        if block.get("batch_fraction"):
            kw["batch_fraction"] = float(block["batch_fraction"])
        train_and_save(ctx, parent, cfg.model, [target], cp.entry,
                       label=f"{parent.name}→{target.name}",
                       meta={"kind": "finetune", "model": parent.name, "target": target.name,
                             "ckpt_hash": cp.hash, "parent": parent_hash}, **kw)
        path = cp.entry / "model.pt"
    else:
        path = cp.require()

    def reshape(m):
        m.fit_inputs(target)
        m.prepare_finetune(target, block)

    model, _ = load_model_file(path, cfg.model, ctx.device, before_load=reshape)
    return _fitted(model, target), cp.hash


def _fitted(model, domain: DomainData | None):
    if domain is not None:
        model.fit_inputs(domain)
    return model


def _loaded(path: Path, model_cfg, ctx: Context, domain: DomainData | None):
    return _fitted(load_model_file(path, model_cfg, ctx.device)[0], domain)


# ------------------------------------------------------------------------- model artifacts
def save_model(path: Path, model, model_cfg, fit=None) -> None:
    checkpoint.save(path, {
        "model": model.name,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": OmegaConf.to_yaml(model_cfg),
        "extra": model.ckpt_extra(),
        "fit": {"best_epoch": fit.best_epoch, "best_score": fit.best_score,
                "epochs_run": fit.epochs_run, "seconds": fit.seconds,
                "samples_per_s": fit.samples_per_s} if fit is not None else {},
    })


def load_model_file(path: Path, model_cfg, device, mode: str = "same", before_load=None):
    """Rebuild the model of `model_cfg` with the checkpoint's sizes and load it strictly.

    `before_load(model)` may reshape the model first (e.g. add a finetuned target table)."""
    ck = checkpoint.load(path)
    reseed_for_model(0)
    model = build_model(model_cfg, n_items=int(ck["extra"].get("n_items", 0)))
    if before_load is not None:
        before_load(model)
    checkpoint.load_state(model, ck["state_dict"], mode)
    model.weights_identity = stat_identity(path)  # what the evaluation cache keys on
    return model.to(device).eval(), ck


def train_and_save(ctx: Context, model, model_cfg, domains: list[DomainData], entry: Path, *,
                   label: str, meta: dict, **fit_kw):
    """Fit `model` with validation on `domains` and commit `entry` (resumable via last.pt).

    Under torchrun every rank trains; rank 0 alone holds the store lock, writes the entry and
    tells the others whether there is anything to train (a ready entry is a cache hit)."""
    from recx.train import distributed as D

    cfg = ctx.cfg
    store = Store(cfg.paths.artifacts, cfg.store.wait_timeout_s)
    info = D.ensure_initialized(cfg.train.get("ddp"), ctx.device)
    result = {}
    if not info.is_main:
        if D.broadcast_object(None):
            import tempfile

            with tempfile.TemporaryDirectory(prefix=f"recx-rank{info.rank}-") as tmp:
                result["fit"] = _fit_into(ctx, model, domains, Path(tmp), label, **fit_kw)
        D.barrier()  # rank 0 has committed the entry
        return result.get("fit")
    with store.building(entry, meta=meta, keep_partial=True) as work:
        D.broadcast_object(work is not None)
        if work is not None:
            if cfg.train.resume == "never":
                (work / "last.pt").unlink(missing_ok=True)
            res = _fit_into(ctx, model, domains, work, label, **fit_kw)
            save_model(work / "model.pt", model, model_cfg, res)
            (work / "last.pt").unlink(missing_ok=True)
            atomic_write_json(work / "fit.json", {
                "history": res.history, "best_epoch": res.best_epoch,
                "best_score": res.best_score, "seconds": res.seconds,
                "samples_per_s": res.samples_per_s, "world_size": info.world})
            (work / "config.yaml").write_text(OmegaConf.to_yaml(model_cfg))
            result["fit"] = res
    D.barrier()
    return result.get("fit")


def _fit_into(ctx: Context, model, domains: list[DomainData], work: Path, label: str, *,
              validate: bool = True, **fit_kw):
    """`validate=False`: a fixed number of epochs, the end state kept (few-shot fine-tuning)."""
    from recx.train.loop import fit

    cfg = ctx.cfg
    users = [d.train_users(float(cfg.train.user_fraction), ctx.seed) for d in domains]
    return fit(model, domains, users, train_cfg=cfg.train, seed=ctx.seed, work_dir=work,
               validate=(lambda: validation_score(ctx, model, domains)) if validate else None,
               label=label, progress=cfg.progress,
               keep_best="last_epoch_as_best" not in model.active_compat(),
               sampling=model.sampling, **fit_kw)
