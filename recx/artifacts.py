"""Checkpoint artifacts: what their hash covers (ARCHITECTURE §7.2), where they live, and the
exact command that creates a missing one (§7.4).

    artifacts/train/<model>/<dataset>/<ckpt_hash>/
    artifacts/pretrain/<model>/<source_key>/<ckpt_hash>/
    artifacts/finetune/<model>/<source_key>__to__<target>/<ckpt_hash>/
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from recx.config.hashing import drop_keys, stable_hash
from recx.config.resolvers import source_key
from recx.errors import ArtifactMissingError

CODE_VERSION = 2  # 2: early stopping on the target domain's candidate policy
_MODEL_EXCLUDE = ("name", "capabilities", "_target_")
_TRAIN_EXCLUDE = ("num_workers", "resume", "checkpoint_every", "compile", "ddp")


def select_protocol(ev) -> dict:
    """The early-stopping protocol: the only reporting-side eval settings in the hash."""
    users = {"sample_users": int(ev.sample_users)} if getattr(ev, "sample_users", None) else {}
    if ev.select_protocol == "full":
        return {"select_metric": ev.select_metric, "candidates": "full", **users}
    return {"select_metric": ev.select_metric, "candidates": ev.candidates,
            "n_negatives": ev.n_negatives, "sampler": ev.sampler, "ties": ev.ties,
            "mask_history": ev.mask_history, "negatives_seed": ev.negatives_seed,
            "share": ev.share_valid_test_negatives, **users}


def ckpt_hash(cfg, model_cfg, data_hashes: list[str], *, parent: str | None = None,
              finetune: dict | None = None, text_identity: str | None = None) -> str:
    model = drop_keys(OmegaConf.to_container(model_cfg, resolve=True), _MODEL_EXCLUDE)
    train = drop_keys(OmegaConf.to_container(cfg.train, resolve=True), _TRAIN_EXCLUDE)
    return stable_hash({
        "data": sorted(data_hashes), "model": model, "train": train,
        "select": select_protocol(cfg.eval), "finetune": finetune, "text": text_identity,
        "parent": parent, "seed": int(cfg.seed), "code": CODE_VERSION,
    })


def train_dir(cfg, model_name: str, dataset: str, h: str) -> Path:
    return Path(cfg.paths.artifacts) / "train" / model_name / dataset / h


def pretrain_dir(cfg, model_name: str, skey: str, h: str) -> Path:
    return Path(cfg.paths.artifacts) / "pretrain" / model_name / skey / h


def finetune_dir(cfg, model_name: str, skey: str, target: str, h: str) -> Path:
    return Path(cfg.paths.artifacts) / "finetune" / model_name / f"{skey}__to__{target}" / h


def task_overrides() -> list[str]:
    """The command line's overrides of the running Hydra job (none outside one)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return [str(o) for o in HydraConfig.get().overrides.task]
    except (ValueError, ImportError):
        return []


_HASH_PREFIXES = ("model", "seed", "train", "text", "eval.select", "experiment", "paths",
                  "deterministic")


def create_command(stage: str, model: str, extra: list[str], keep_prefixes=_HASH_PREFIXES) -> str:
    """The command that makes a missing artifact, with the overrides that affect its hash."""
    overrides = [o for o in task_overrides()
                 if o.lstrip("+~").split("=")[0].split(".")[0] in
                 {p.split(".")[0] for p in keep_prefixes}
                 and not o.startswith(("model=",))]
    parts = ["recx", stage, f"model={model}", *extra, *overrides]
    return " ".join(_quote(p) for p in parts)


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in "[]{}, $") else arg


def require(entry: Path, what: str, command: str, h: str) -> Path:
    from recx.store import is_ready

    if is_ready(entry):
        return entry / "model.pt"
    raise ArtifactMissingError(
        f"No {what} checkpoint (ckpt_hash {h}).\nCreate it with:\n  {command}\n"
        f"or pass an explicit file:  ckpt={entry}/model.pt",
        hint=command)


def source_key_of(cfg) -> str:
    return source_key(cfg.source)
