"""The source advisor: rank candidate sources for a target by predicted zero-shot gain over
Pop, before any transfer, from the pairs' diagnostics — and its honest validation.

The prediction is fitted on the cells of a development matrix (`explain.transfer_cells`) of
one model, protocol and metric. The response is the log ratio log(zero-shot / Pop) (gains are
multiplicative: +140 % and −50 % are equally far from 0). The features are what can tell two
sources of one target apart: the distances between source and target (every diagnostic that
compares the two: `*.dist`, `*_w1`, `input.*.tv*`, `text.centroid_cos`, `text.nn_cos`) and the
source's size (`size.log10_train_events.source`); a diagnostic missing in any cell is left out.

- `ridge` (default): ridge regression on the standardised features (penalty `alpha`);
- `single`: the one feature (and sign) whose ranking of each training target's sources agrees
  best with their measured gains (mean within-target Spearman), used as the score.

Validation leaves one target out: fit on the other targets' cells, rank the held-out target's
sources, and compare with the measured gains: a hit when the top-ranked source is (one of) the
best, the within-target Spearman ρ of predicted and measured gain, and the regret (best gain −
gain of the chosen source). Baselines on the same targets: a random source (the expected hit
rate 1/n per target, ρ 0, the mean regret) and the largest source (most training events).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recx.diagnostics.explain import diagnostic_columns, spearman
from recx.errors import ConfigError

SIZE = "size.log10_train_events.source"
METHODS = ("ridge", "single")


def advisor_features(cells: pd.DataFrame) -> list[str]:
    """The source-versus-target distances and the source size, present in every cell."""
    out = []
    for c in diagnostic_columns(cells):
        compares = (c.endswith((".dist", "_w1")) or (c.startswith("input.") and ".tv" in c)
                    or c in ("text.centroid_cos", "text.nn_cos"))
        if (compares or c == SIZE) and cells[c].notna().all() and np.ptp(cells[c]) > 0:
            out.append(c)
    return out


def log_gain(cells: pd.DataFrame, metric: str) -> pd.Series:
    ref = cells[f"pop:{metric}"].astype(float)
    return np.log(np.maximum(cells[metric].astype(float), 1e-6) / np.maximum(ref, 1e-6))


@dataclass
class Advisor:
    method: str
    features: list[str]
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    coef: np.ndarray | None = None
    intercept: float = 0.0
    chosen: str | None = None  # single: the feature
    sign: float = 1.0

    def predict(self, cells: pd.DataFrame) -> np.ndarray:
        """Predicted log(zero-shot / Pop) (ridge) or a score in the same order (single)."""
        if self.method == "single":
            return self.sign * cells[self.chosen].to_numpy(dtype=np.float64)
        x = (cells[self.features].to_numpy(dtype=np.float64) - self.mean) / self.scale
        return x @ self.coef + self.intercept

    def describe(self) -> str:
        if self.method == "single":
            return f"{'+' if self.sign > 0 else '−'}{self.chosen}"
        top = np.argsort(-np.abs(self.coef))[:3]
        return ", ".join(f"{self.coef[i]:+.2f}·{self.features[i]}" for i in top)


def fit(cells: pd.DataFrame, metric: str, method: str = "ridge", alpha: float = 1.0,
        features: list[str] | None = None) -> Advisor:
    if method not in METHODS:
        raise ConfigError(f"advisor method {method!r}", hint=f"use one of {', '.join(METHODS)}")
    features = advisor_features(cells) if features is None else features
    if not features:
        raise ConfigError("the advisor has no diagnostic that varies across the cells",
                          hint="transfer from more sources, or run `recx diagnose` for them")
    y = log_gain(cells, metric).to_numpy()
    if method == "single":
        groups = [g for _, g in cells.groupby("target") if len(g) >= 2]
        best = (-np.inf, features[0], 1.0)
        for f in features:
            rhos = [_rank_corr(g[f], log_gain(g, metric)) for g in groups]
            if not rhos or np.all(np.isnan(rhos)):
                continue
            mean = float(np.nanmean(rhos))
            for sign in (1.0, -1.0):
                if sign * mean > best[0]:
                    best = (sign * mean, f, sign)
        return Advisor("single", features, chosen=best[1], sign=best[2])
    x = cells[features].to_numpy(dtype=np.float64)
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    yc = y - y.mean()
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ yc)
    return Advisor("ridge", features, mean, scale, coef, float(y.mean()))


def _two_point(x, y) -> float:
    """ρ of two points: +1 when they are in the same order, −1 when reversed, 0 on a tie."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != 2:
        return float("nan")
    return float(np.sign(x[1] - x[0]) * np.sign(y[1] - y[0]))


def _rank_corr(x, y) -> float:
    return _two_point(x, y) if len(x) == 2 else spearman(x, y)


def leave_one_target_out(cells: pd.DataFrame, metric: str, method: str = "ridge",
                         alpha: float = 1.0) -> tuple[pd.DataFrame, dict]:
    """Per held-out target (with ≥ 2 sources): the advisor's pick and the baselines'; and the
    summary (hits out of targets, mean within-target ρ, pooled ρ, mean regret)."""
    cells = cells.dropna(subset=[metric, f"pop:{metric}"]).reset_index(drop=True)
    rows, pred_all = [], pd.Series(np.nan, index=cells.index)
    for target, test in cells.groupby("target"):
        train = cells[cells["target"] != target]
        if len(test) < 2 or train["target"].nunique() < 2:
            continue
        # features from the training cells only (the held-out values are never looked at)
        features = [f for f in advisor_features(train) if test[f].notna().all()]
        if not features:
            continue
        adv = fit(train, metric, method, alpha, features)
        pred = adv.predict(test)
        pred_all.loc[test.index] = pred
        gain = log_gain(test, metric).to_numpy()
        best = gain.max()
        pick = int(np.argmax(pred))
        size = test[SIZE].to_numpy() if SIZE in test else np.zeros(len(test))
        largest = int(np.argmax(size))
        n_best = int(np.isclose(gain, best).sum())
        rows.append({
            "target": target, "n_sources": len(test),
            "best": " | ".join(test["source"].to_numpy()[np.isclose(gain, best)]),
            "advisor": test["source"].iloc[pick], "hit": bool(np.isclose(gain[pick], best)),
            "rho": _rank_corr(pred, gain), "regret": float(best - gain[pick]),
            "largest": test["source"].iloc[largest],
            "largest_hit": bool(np.isclose(gain[largest], best)),
            "largest_rho": _rank_corr(size, gain) if SIZE in test else float("nan"),
            "largest_regret": float(best - gain[largest]),
            "random_hit": n_best / len(test), "random_regret": float(best - gain.mean()),
            "rule": adv.describe()})
    per_target = pd.DataFrame(rows)
    if per_target.empty:
        return per_target, {}
    held = pred_all.notna()
    summary = {
        "targets": len(per_target), "method": method,
        "hits": int(per_target["hit"].sum()),
        "largest_hits": int(per_target["largest_hit"].sum()),
        "random_hits": float(per_target["random_hit"].sum()),
        "rho": float(per_target["rho"].mean()),
        "largest_rho": float(per_target["largest_rho"].mean()),
        "random_rho": 0.0,
        "pooled_rho": spearman(pred_all[held], log_gain(cells[held], metric)),
        "regret": float(per_target["regret"].mean()),
        "largest_regret": float(per_target["largest_regret"].mean()),
        "random_regret": float(per_target["random_regret"].mean())}
    return per_target, summary


def rank_candidates(cells: pd.DataFrame, candidates: pd.DataFrame, metric: str,
                    method: str = "ridge", alpha: float = 1.0) -> pd.DataFrame:
    """Candidate (source, target) pairs ranked per target by the advisor fitted on every cell;
    `predicted_gain` = predicted zero-shot / Pop − 1 (ridge)."""
    cells = cells.dropna(subset=[metric, f"pop:{metric}"])
    features = [f for f in advisor_features(cells) if f in candidates
                and candidates[f].notna().all()]
    adv = fit(cells, metric, method, alpha, features)
    out = candidates[["model", "source", "target"]].copy()
    score = adv.predict(candidates)
    out["score"] = score
    if method == "ridge":
        out["predicted_gain"] = np.exp(score) - 1
    out["rank"] = out.groupby("target")["score"].rank(ascending=False, method="min").astype(int)
    out["rule"] = adv.describe()
    return out.sort_values(["target", "rank"]).reset_index(drop=True)
