"""recx interpolate: blend a transferred model T with an in-domain base D on the target.

Both score the same candidates with the same history; scores are normalised per user, blended
for every α of the grid, α* is chosen on validation and test is reported at α* (EVALUATION §7).
Rows: one per (α, split), `selected: true` on α*; `alpha_curve.{png,pdf,csv}` in the run dir.
"""

from __future__ import annotations

import logging

import numpy as np

from recx.config.resolvers import source_key
from recx.eval.interpolation import select_alpha
from recx.stages import StageResult
from recx.stages.blending import (
    base_model,
    check_select,
    chosen_alpha,
    evaluate_blends,
    gated_tag,
    select_score,
    transferred_model,
)
from recx.stages.common import Context, result_rows

log = logging.getLogger(__name__)


def run(ctx: Context) -> StageResult:
    cfg = ctx.cfg
    ip = cfg.interpolate
    alphas = [float(a) for a in ip.alphas]
    check_select(ip, alphas)
    target = ctx.domain(cfg.target)
    t_model, t_hash = transferred_model(ctx, target)
    d_model, d_hash = base_model(ctx, target)
    evaluator, results = evaluate_blends(ctx, target, t_model, d_model)
    metric = str(cfg.eval.select_metric)
    best, valid_curve, gate = chosen_alpha(ctx, results["valid"])
    test_curve = [select_score(results["test"].ranks[i], metric) for i in range(len(alphas))]
    fields = dict(setting="interpolate", model=t_model.name, base=d_model.name,
                  source=source_key(cfg.source) if t_model.capabilities.trainable else None,
                  ckpt_hash=t_hash, base_ckpt_hash=d_hash, interpolation_norm=str(ip.norm),
                  alpha_select=str(ip.select), paper_compat=t_model.active_compat())
    holdout = _holdout_check(results["valid"], alphas, metric, ctx.seed) \
        if ip.holdout_check else {}
    # a variant of the method: reports keep it apart by tag
    gated = {} if gate is None else {"alpha_gain_lower_bound": gate["bound"],
                                     "tag": cfg.get("tag") or gated_tag(cfg, d_model)}
    rows, base_test = _alpha_rows(ctx, evaluator, target, results, alphas, best, metric,
                                  {**fields, **gated}, {**fields, **holdout, **gated})
    log.info("α* = %.2f (valid %s %.4f); test %s %.4f vs base %.4f", alphas[best], metric,
             valid_curve[best], metric, test_curve[best], base_test.get(True, float("nan")))
    from recx.plots import alpha_curve

    alpha_curve(ctx.run_dir, alphas, valid_curve, test_curve, best, metric,
                title=f"{t_model.name} + {d_model.name} on {target.name}")
    shown = [r for r in rows if r["slice"] == "all" and (r["selected"] or r["alpha"] in (0, 1))]
    return StageResult(rows, title=f"interpolation {t_model.name}+{d_model.name} on "
                       f"{target.name}: α*={alphas[best]:.2f} (shown: α*, 0, 1)", display=shown)


def _alpha_rows(ctx, evaluator, target, results, alphas, best, metric, fields,
                best_fields) -> tuple[list[dict], dict]:
    """Rows of every (α, split) with `fields` (`best_fields` on α*, marked `selected`), α*'s
    test rows with the gain over the base alone (α = 0) under the same candidate set; and that
    base score per candidate set (policy → score)."""
    i0 = alphas.index(0.0) if 0.0 in alphas else None
    base_test = {} if i0 is None else {c.policy: select_score(c.ranks[i0], metric)
                                       for c in results["test"].candidate_sets()}
    rows = []
    for i, a in enumerate(alphas):
        for split in ("valid", "test"):
            new = result_rows(ctx, results[split], evaluator, target, variant=i, alpha=a,
                              selected=(i == best), **(best_fields if i == best else fields))
            if split == "test" and i == best:
                for r in new:  # each candidate set against its own base (the policy's first)
                    if r["slice"] == "all" and base_test.get(r["policy"]):
                        r["gain_vs_base"] = r[metric] / base_test[r["policy"]] - 1
            rows += new
    return rows, base_test


def _holdout_check(valid, alphas, metric, seed) -> dict:
    """Validation users in two seeded halves: α chosen on half A, scored on half B (next to the
    base, α = 0, on half B); a warning when the halves' α* differ by more than 0.2."""
    i0 = alphas.index(0.0) if 0.0 in alphas else None
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(valid.users))
    half_a = np.zeros(len(perm), dtype=bool)
    half_a[perm[: len(perm) // 2]] = True

    def score(i, sel):
        return select_score(valid.ranks[i][sel], metric)

    a_idx = select_alpha(alphas, [score(i, half_a) for i in range(len(alphas))])
    b_idx = select_alpha(alphas, [score(i, ~half_a) for i in range(len(alphas))])
    a_star, b_star = alphas[a_idx], alphas[b_idx]
    out = {"holdout_alpha_a": a_star, "holdout_alpha_b": b_star,
           "holdout_b_score": score(a_idx, ~half_a),
           "holdout_b_base_score": score(i0, ~half_a) if i0 is not None else None}
    if abs(a_star - b_star) > 0.2:
        log.warning("holdout check: α* differs between valid halves (%.2f vs %.2f): the choice "
                    "of α is unstable", a_star, b_star)
    base = out["holdout_b_base_score"]
    log.info("holdout check: α* %.2f on half A, %.2f on half B; valid %s on half B at α* of A "
             "%.4f (base %s)", a_star, b_star, metric, out["holdout_b_score"],
             "n/a" if base is None else f"{base:.4f}")
    return out
