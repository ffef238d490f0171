"""recx finetune: adapt a pretrained checkpoint on the target, then evaluate (setting finetune).

The model decides what adaptation means (`RecModel.prepare_finetune`): UniSRec inductive or
transductive, IDP's retrieved-embedding initialisation, PrepRec's few-shot epochs. The resolved
`finetune` block and the parent checkpoint hash are part of the finetune checkpoint hash
(`recx.stages.checkpoints.finetuned`).
"""

from __future__ import annotations

from recx.config.resolvers import source_key
from recx.stages import StageResult
from recx.stages.checkpoints import finetune_block, finetuned_model
from recx.stages.common import evaluate_rows


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    target = ctx.domain(cfg.target)
    model, h = finetuned_model(ctx, target, train=True)
    rows = evaluate_rows(ctx, model, target, setting="finetune", model=model.name,
                         mode=finetune_block(cfg).get("mode"), source=source_key(cfg.source),
                         ckpt_hash=h, paper_compat=model.active_compat())
    return StageResult(rows, title=f"{model.name} finetuned on {target.name}")
