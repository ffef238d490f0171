"""recx finetune: adapt a pretrained checkpoint on the target, then evaluate (setting finetune).

The model decides what adaptation means (`RecModel.prepare_finetune`): UniSRec inductive or
transductive, IDP's retrieved-embedding initialisation, PrepRec's few-shot epochs. The resolved
`finetune` block and the parent checkpoint hash are part of the finetune checkpoint hash.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from recx import artifacts
from recx.config.resolvers import source_key
from recx.stages import StageResult
from recx.stages.common import evaluate_rows, load_model_file, train_and_save
from recx.stages.train import active_compat
from recx.stages.transfer import pretrained_model


def finetune_block(cfg) -> dict:
    block = OmegaConf.to_container(cfg.finetune, resolve=True) if "finetune" in cfg else {}
    return {k: v for k, v in block.items() if v is not None}


def finetuned_model(ctx, target, require_only: bool = False):
    """Finetune (or load) the pretrained model on `target`; returns (model, ckpt_hash)."""
    cfg = ctx.cfg
    parent, parent_hash = pretrained_model(ctx)
    block = finetune_block(cfg)
    # few-shot blocks keep the end state (before: the better of the validated epochs); the
    # marker keeps checkpoints of that older procedure from being reused
    hashed = {**block, "end_state": True} if block.get("epochs") else block
    h = artifacts.ckpt_hash(cfg, cfg.model, [target.data_hash], parent=parent_hash,
                            finetune=hashed)
    entry = artifacts.finetune_dir(cfg, parent.name, source_key(cfg.source), target.name, h)
    if require_only:
        cmd = artifacts.create_command("finetune", parent.name, [
            f"source=[{','.join(sorted(cfg.source))}]", f"target={target.name}"])
        path = artifacts.require(entry, f"finetuned {parent.name} on {target.name}", cmd, h)
    else:
        parent.fit_inputs(target)
        parent.prepare_finetune(target, block)
        kw = {}
        if block.get("epochs"):  # few-shot: a fixed number of epochs, evaluated at the end
            kw["max_epochs"], kw["validate"] = int(block["epochs"]), False
        if block.get("batch_fraction"):
            kw["batch_fraction"] = float(block["batch_fraction"])
        train_and_save(ctx, parent, cfg.model, [target], entry,
                       label=f"{parent.name}→{target.name}",
                       meta={"kind": "finetune", "model": parent.name, "target": target.name,
                             "ckpt_hash": h, "parent": parent_hash}, **kw)
        path = entry / "model.pt"
    def reshape(m):
        m.fit_inputs(target)
        m.prepare_finetune(target, block)

    model, _ = load_model_file(path, cfg.model, ctx.device, before_load=reshape)
    model.fit_inputs(target)
    return model, h


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    target = ctx.domain(cfg.target)
    model, h = finetuned_model(ctx, target)
    block = finetune_block(cfg)
    rows = evaluate_rows(ctx, model, target, setting="finetune", model=model.name,
                         mode=block.get("mode"), source=source_key(cfg.source), ckpt_hash=h,
                         paper_compat=active_compat(model))
    return StageResult(rows, title=f"{model.name} finetuned on {target.name}")
