"""recx interpolate: blend a transferred model T with an in-domain base D on the target.

Both score the same candidates with the same history; scores are normalised per user, blended
for every α of the grid, α* is chosen on validation and test is reported at α* (EVALUATION §7).
Rows: one per (α, split), `selected: true` on α*; `alpha_curve.{png,pdf,csv}` in the run dir.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from recx.config.resolvers import source_key
from recx.errors import ConfigError
from recx.eval import metrics as M
from recx.eval.cache import scorer_key
from recx.eval.interpolation import ZERO_SHOT_GATED, Blend, gated_alpha, select_alpha
from recx.stages import StageResult
from recx.stages.common import Context, make_evaluator, result_rows
from recx.stages.train import active_compat, trained_model
from recx.stages.transfer import pretrained_model

log = logging.getLogger(__name__)


def base_model(ctx: Context, target):
    """The in-domain base D: found by hash in the store (Pop is counted on the target)."""
    return trained_model(ctx, ctx.cfg.base, target, ckpt=ctx.cfg.get("base_ckpt", "auto"),
                         key="base")


def transferred_model(ctx: Context, target):
    if ctx.cfg.interpolate["from"] == "finetune":
        from recx.stages.finetune import finetuned_model

        return finetuned_model(ctx, target, require_only=True)
    model, h = pretrained_model(ctx)
    model.fit_inputs(target)
    return model, h


def blend_scorer(t_model, d_model):
    """The pair's score_fn: [2, B, ·] (transferred, base), each model over its own history
    window; and the longer window, which the batches must carry."""
    max_len = max(getattr(t_model, "max_len", 1), getattr(d_model, "max_len", 1))

    def both(batch, cand):
        def one(m):
            b = batch
            if getattr(m, "max_len", max_len) < max_len:  # each model sees its own window
                b = _trim(batch, m.max_len)
            return m.score_all(b) if cand is None else m.score_candidates(b, cand)

        t, d = one(t_model), one(d_model)
        # float64 where a model breaks its ties below float32's step (statmlp)
        dtype = torch.float64 if torch.float64 in (t.dtype, d.dtype) else torch.float32
        return torch.stack([t.to(dtype), d.to(dtype)])

    return both, max_len


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
    return evaluator, {s: evaluator.run(both, s, count=blend.counts, variants=2, cache_key=key)
                       for s in splits}


def chosen_alpha(ctx: Context, valid) -> tuple[int, list[float], dict | None]:
    """α* by `interpolate.select` on the validation ranks of the grid: (index of α*, the
    validation curve, the gate's decision under select=gated)."""
    ip = ctx.cfg.interpolate
    alphas = [float(a) for a in ip.alphas]
    metric = str(ctx.cfg.eval.select_metric)
    mname, k = metric.split("@")
    curve = [M.compute(valid.ranks[i], [mname], [int(k)])[metric] for i in range(len(alphas))]
    best = select_alpha(alphas, curve)
    i0 = alphas.index(0.0) if 0.0 in alphas else None
    gate = _gate(ip, valid, alphas, curve, i0, metric, ctx.seed)
    if gate is not None:
        best = gate["index"]
    return best, curve, gate


def run(ctx: Context) -> StageResult:
    cfg = ctx.cfg
    ip = cfg.interpolate
    alphas = [float(a) for a in ip.alphas]
    check_select(ip, alphas)
    target = ctx.domain(cfg.target)
    t_model, t_hash = transferred_model(ctx, target)
    d_model, d_hash = base_model(ctx, target)
    evaluator, results = evaluate_blends(ctx, target, t_model, d_model)
    ev = cfg.eval
    metric = str(ev.select_metric)
    mname, k = metric.split("@")

    def score(split, i, sel=None):
        res = results[split]
        r = res.ranks[i] if sel is None else res.ranks[i][sel]
        return M.compute(r, [mname], [int(k)])[metric]

    best, valid_curve, gate = chosen_alpha(ctx, results["valid"])
    test_curve = [score("test", i) for i in range(len(alphas))]
    i0 = alphas.index(0.0) if 0.0 in alphas else None
    holdout = _holdout_check(results["valid"], alphas, score, ctx.seed, metric, i0) \
        if ip.holdout_check else {}
    skey = source_key(cfg.source) if t_model.capabilities.trainable else None
    rows = []
    base_test = {} if i0 is None else {  # the base alone (α = 0) under each candidate set
        c.policy: M.compute(c.ranks[i0], [mname], [int(k)])[metric]
        for c in results["test"].candidate_sets()}
    for i, a in enumerate(alphas):
        for split in ("valid", "test"):
            fields = dict(setting="interpolate", model=t_model.name, base=d_model.name,
                          source=skey, alpha=a, selected=(i == best), ckpt_hash=t_hash,
                          base_ckpt_hash=d_hash, interpolation_norm=str(ip.norm),
                          alpha_select=str(ip.select), paper_compat=active_compat(t_model))
            if i == best:
                fields.update(holdout)
            if gate is not None:  # a variant of the method: reports keep it apart by tag
                fields.update(alpha_gain_lower_bound=gate["bound"],
                              tag=cfg.get("tag") or gated_tag(cfg, d_model))
            new = result_rows(ctx, results[split], evaluator, target, variant=i, **fields)
            if split == "test" and i == best:
                for r in new:  # each candidate set against its own base (the policy's first)
                    if r["slice"] == "all" and base_test.get(r["policy"]):
                        r["gain_vs_base"] = r[metric] / base_test[r["policy"]] - 1
            rows += new
    log.info("α* = %.2f (valid %s %.4f); test %s %.4f vs base %.4f", alphas[best], metric,
             valid_curve[best], metric, test_curve[best], base_test.get(True, float("nan")))
    from recx.plots import alpha_curve

    alpha_curve(ctx.run_dir, alphas, valid_curve, test_curve, best, metric,
                title=f"{t_model.name} + {d_model.name} on {target.name}")
    shown = [r for r in rows if r["slice"] == "all" and (r["selected"] or r["alpha"] in (0, 1))]
    return StageResult(rows, title=f"interpolation {t_model.name}+{d_model.name} on "
                       f"{target.name}: α*={alphas[best]:.2f} (shown: α*, 0, 1)", display=shown)


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


def _trim(batch, max_len):
    from dataclasses import replace

    return replace(batch, items=batch.items[:, -max_len:], ts=batch.ts[:, -max_len:],
                   event_idx=batch.event_idx[:, -max_len:])


def _holdout_check(valid, alphas, score, seed, metric, i0) -> dict:
    """Validation users in two seeded halves: α chosen on half A, scored on half B (next to the
    base, α = 0, on half B); a warning when the halves' α* differ by more than 0.2."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(valid.users))
    half_a = np.zeros(len(perm), dtype=bool)
    half_a[perm[: len(perm) // 2]] = True
    a_idx = select_alpha(alphas, [score("valid", i, half_a) for i in range(len(alphas))])
    b_idx = select_alpha(alphas, [score("valid", i, ~half_a) for i in range(len(alphas))])
    a_star, b_star = alphas[a_idx], alphas[b_idx]
    out = {"holdout_alpha_a": a_star, "holdout_alpha_b": b_star,
           "holdout_b_score": score("valid", a_idx, ~half_a),
           "holdout_b_base_score": score("valid", i0, ~half_a) if i0 is not None else None}
    if abs(a_star - b_star) > 0.2:
        log.warning("holdout check: α* differs between valid halves (%.2f vs %.2f): the choice "
                    "of α is unstable", a_star, b_star)
    base = out["holdout_b_base_score"]
    log.info("holdout check: α* %.2f on half A, %.2f on half B; valid %s on half B at α* of A "
             "%.4f (base %s)", a_star, b_star, metric, out["holdout_b_score"],
             "n/a" if base is None else f"{base:.4f}")
    return out
