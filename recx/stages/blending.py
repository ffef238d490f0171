"""A transferred model T blended with an in-domain base D, shared by `recx interpolate` (which
reports every α of the grid) and `recx recommend` (which recommends at the α interpolate
selects): the two models, their joint scorer, the ranks of the α grid and the choice of α*
(EVALUATION §7)."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch

from recx.errors import ConfigError
from recx.eval import metrics as M
from recx.eval.cache import scorer_key
from recx.eval.interpolation import ZERO_SHOT_GATED, Blend, gated_alpha, select_alpha
from recx.stages.checkpoints import finetuned_model, in_domain_model, pretrained_model
from recx.stages.common import Context, make_evaluator

log = logging.getLogger(__name__)


def base_model(ctx: Context, target):
    """The in-domain base D: found by hash in the store (Pop is counted on the target)."""
    return in_domain_model(ctx, ctx.cfg.base, target, ckpt=ctx.cfg.get("base_ckpt", "auto"),
                           key="base")


def transferred_model(ctx: Context, target):
    """T: the zero-shot weights, or the finetuned ones under interpolate.from=finetune."""
    if ctx.cfg.interpolate["from"] == "finetune":
        return finetuned_model(ctx, target)
    return pretrained_model(ctx, fit_to=target)


def gated_tag(cfg, base) -> str:
    """`zero_shot_gated` for a pre-trained model gated against Pop counted on the target (no
    training on the target), `alpha_gated` for every other gated blend."""
    zero_shot = not base.capabilities.trainable and cfg.interpolate["from"] == "pretrain"
    return ZERO_SHOT_GATED if zero_shot else "alpha_gated"


def check_select(ip, alphas) -> None:
    """Before any scoring: a typo must not cost a whole evaluation."""
    select = str(ip.select)
    if select not in ("argmax", "gated"):
        raise ConfigError(f"interpolate.select={select!r}", hint="use argmax or gated")
    if select == "gated" and 0.0 not in alphas:
        raise ConfigError("interpolate.select=gated needs 0.0 in interpolate.alphas",
                          hint="the gate compares α* with the base model alone (α = 0)")


def blend_scorer(t_model, d_model):
    """The pair's score_fn: [2, B, ·] (transferred, base), each model over its own history
    window; and the longer window, which the batches must carry."""
    max_len = max(t_model.max_len, d_model.max_len)

    def both(batch, cand):
        def one(m):
            b = batch
            if m.max_len < max_len:  # each model sees its own window
                b = _trim(batch, m.max_len)
            return m.score_all(b) if cand is None else m.score_candidates(b, cand)

        t, d = one(t_model), one(d_model)
        # float64 where a model breaks its ties below float32's step (statmlp)
        dtype = torch.float64 if torch.float64 in (t.dtype, d.dtype) else torch.float32
        return torch.stack([t.to(dtype), d.to(dtype)])

    return both, max_len


def _trim(batch, max_len):
    return replace(batch, items=batch.items[:, -max_len:], ts=batch.ts[:, -max_len:],
                   event_idx=batch.event_idx[:, -max_len:])


def evaluate_blends(ctx: Context, target, t_model, d_model, splits=("valid", "test")):
    """Ranks of every α of the grid on `splits`: (evaluator, {split: SplitResult})."""
    cfg = ctx.cfg
    ip = cfg.interpolate
    both, max_len = blend_scorer(t_model, d_model)
    blend = Blend([float(a) for a in ip.alphas], str(ip.norm))
    evaluator = make_evaluator(ctx, t_model, target, cfg.eval,
                               label=f"{t_model.name}+{d_model.name}")
    evaluator.max_len = max_len
    # α grid and norm are in cfg; the blending code counts for this scorer's key only
    key = scorer_key(cfg, ctx.device, t_model, d_model, code=("recx.eval.interpolation",))
    return evaluator, {s: evaluator.run(both, s, count=blend, variants=2, cache_key=key)
                       for s in splits}


def select_score(ranks, metric: str) -> float:
    """The select metric (e.g. NDCG@10) of one α's ranks."""
    name, k = metric.split("@")
    return M.compute(ranks, [name], [int(k)])[metric]


def chosen_alpha(ctx: Context, valid) -> tuple[int, list[float], dict | None]:
    """α* by `interpolate.select` on the validation ranks of the grid: (index of α*, the
    validation curve, the gate's decision under select=gated)."""
    ip = ctx.cfg.interpolate
    alphas = [float(a) for a in ip.alphas]
    metric = str(ctx.cfg.eval.select_metric)
    curve = [select_score(valid.ranks[i], metric) for i in range(len(alphas))]
    best = select_alpha(alphas, curve)
    i0 = alphas.index(0.0) if 0.0 in alphas else None
    gate = _gate(ip, valid, alphas, curve, i0, metric, ctx.seed)
    if gate is not None:
        best = gate["index"]
    return best, curve, gate


def _gate(ip, valid, alphas, valid_curve, i0, metric, seed) -> dict | None:
    """interpolate.select=gated: keep α* only where its validation gain over α = 0 is
    significant (paired bootstrap over the validation users); None under select=argmax."""
    if str(ip.select) == "argmax":
        return None
    name, k = metric.split("@")
    best, bound = gated_alpha(
        alphas, valid_curve, lambda i: M.per_user(valid.ranks[i], name, int(k)), i0,
        float(ip.gate_confidence), int(ip.gate_resamples), np.random.default_rng(seed))
    if bound is not None:
        log.info("α gate: α* = %.2f gains %s ≥ %.5f on valid at %.0f %% confidence → %s",
                 alphas[select_alpha(alphas, valid_curve)], metric, bound,
                 100 * float(ip.gate_confidence), "kept" if best != i0 else "α = 0")
    return {"index": best, "bound": bound}
