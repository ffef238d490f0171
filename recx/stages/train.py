"""recx train: in-domain training and evaluation of any model on one dataset (setting in_domain).

The checkpoint is an artifact keyed by its content hash, because `interpolate` reuses it as
`base`; a second identical run is a cache hit that only evaluates (and reads its ranks back
from the evaluation cache, `recx.eval.cache`).
"""

from __future__ import annotations

from recx.stages import StageResult
from recx.stages.checkpoints import in_domain_model
from recx.stages.common import evaluate_rows


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    domain = ctx.domain(cfg.dataset)
    model, h = in_domain_model(ctx, cfg.model, domain, train=True)
    rows = evaluate_rows(ctx, model, domain, setting="in_domain", model=model.name, ckpt_hash=h,
                         paper_compat=model.active_compat())
    return StageResult(rows, title=f"{model.name} in-domain on {domain.name}")
