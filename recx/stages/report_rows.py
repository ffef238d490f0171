"""The metrics rows a report reads, shared by the report's table, matrix and views: collected
from metrics.json files, filtered (`report.where`), the newest run per identity and seed, the
target's candidate policy (`report.candidates`), runs of different configs told apart
(`experiment_hash`), and aggregated as mean ± sample std over seeds with n.
"""

from __future__ import annotations

import glob
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from recx.errors import ConfigError
from recx.eval.interpolation import ZERO_SHOT_GATED

log = logging.getLogger(__name__)


ABSENT = "–"  # how a table writes a key a row does not have (no source, no tag)
GATED = ZERO_SHOT_GATED  # the setting a zero-shot model gated with Pop is shown under
IDENTITY = ["stage", "setting", "model", "mode", "base", "source", "target", "split", "slice",
            "alpha", "protocol", "user_fraction", "tag", "paper_compat"]
# identity fields added to a table's rows when they vary (never averaged over)
SPLIT_FIELDS = ["source", "base", "mode", "user_fraction", "tag", "paper_compat", "setting",
                "model", "split", "slice"]


def collect(patterns) -> pd.DataFrame:
    rows = []
    for pattern in patterns:
        for path in sorted(glob.glob(str(pattern), recursive=True)):
            try:
                data = json.loads(Path(path).read_text())
            except (OSError, ValueError):
                log.warning("skipping unreadable %s", path)
                continue
            for r in data.get("rows", []):
                rows.append({**r, "_file": path})
    return pd.DataFrame(rows)


def select(frame: pd.DataFrame, where: dict) -> pd.DataFrame:
    if frame.empty:
        return frame
    keep = (frame.get("status", "ok") == "ok") & (frame.get("stage") != "report")
    if "selected" in frame:
        keep &= frame["selected"].map(lambda v: v is not False)
    for key, want in where.items():
        if key not in frame:
            raise ConfigError(f"report.where.{key}: no metrics row has a field {key!r}",
                              hint=f"use fields such as {IDENTITY}")
        values = want if isinstance(want, list) else [want]
        keep &= frame[key].map(lambda v, vals=values: _wanted(v, vals))
    out = frame[keep].copy()
    # the newest row per (identity, experiment, seed)
    for c in [*IDENTITY, "seed", "experiment_hash"]:
        if c not in out:
            out[c] = None
    out["user_fraction"] = out["user_fraction"].fillna(1.0)  # rows from before the field
    out["paper_compat"] = out["paper_compat"].map(_compat_key)
    out = out.sort_values("finished_at").drop_duplicates(
        [*IDENTITY, "experiment_hash", "seed"], keep="last") if "finished_at" in out else out
    return out


def _wanted(v, values: list) -> bool:
    """v is one of `values` (as written or as text); None among them also takes the rows
    without a value (untagged: None, NaN or the table's blank)."""
    if v in values or str(v) in map(str, values):
        return True
    return None in values and (v is None or v == ABSENT or v != v)


def candidate_rows(frame: pd.DataFrame, which: str) -> pd.DataFrame:
    """The rows of the target's candidate policy (`policy`), of the other rule (`other`), or
    both. Rows without the field (sampled candidates, older runs) count as the policy's."""
    if which not in ("policy", "other", "both"):
        raise ConfigError(f"report.candidates={which!r}", hint="use policy, other or both")
    if which == "both" or frame.empty:
        return frame
    policy = frame["policy"].map(lambda v: v is not False) if "policy" in frame else \
        pd.Series(True, index=frame.index)
    return frame[policy if which == "policy" else ~policy]


def split_experiments(frame: pd.DataFrame, keys: list[str]) -> bool:
    """Give rows a `config` column where one cell (equal `keys` apart from the seed) holds runs
    of different configs; True when it did. The column names what differs: the keys of the
    runs' saved Hydra configs, else their overrides, else the config hash."""
    keys = [k for k in keys if k in frame]
    if "experiment_hash" not in frame or frame.empty:
        return False
    exp = frame["experiment_hash"].astype(object).where(frame["experiment_hash"].notna(), ABSENT)
    per_cell = exp.groupby([frame[k].astype(str) for k in keys], dropna=False).nunique()
    if (per_cell <= 1).all():
        return False
    frame["config"] = ABSENT
    for _, idx in frame.groupby([frame[k].astype(str) for k in keys], dropna=False).groups.items():
        cell_rows = frame.loc[idx]
        hashes = list(dict.fromkeys(exp.loc[idx]))
        if len(hashes) <= 1:
            continue
        firsts = {h: cell_rows[exp.loc[idx] == h].iloc[0] for h in hashes}
        labels = _differences(firsts)
        for h in hashes:
            frame.loc[idx[(exp.loc[idx] == h).to_numpy()], "config"] = labels[h]
        log.warning("report: runs of %s differ in more than the seed (%s): kept apart",
                    " · ".join(f"{k}={v}" for k in keys
                               if (v := cell_rows.iloc[0][k]) is not None and v != ABSENT
                               and not (isinstance(v, float) and np.isnan(v))),
                    "; ".join(labels.values()))
    return True


def _differences(firsts: dict) -> dict:
    """hash → 'key=value, …' of what sets its run apart from the others in one cell."""
    flat = {h: _run_config(r) for h, r in firsts.items()}
    if all(flat.values()):
        keys = sorted(set().union(*flat.values()))
        differ = [k for k in keys if len({str(f.get(k)) for f in flat.values()}) > 1]
        if differ:
            return {h: ", ".join(f"{k}={f.get(k)}" for k in differ) for h, f in flat.items()}
    over = {h: {o for o in _listed(r.get("overrides")) if not o.startswith("seed=")}
            for h, r in firsts.items()}
    common = set.intersection(*over.values()) if over else set()
    return {h: ", ".join(sorted(over[h] - common)) or f"config {h}" for h in firsts}


def _listed(value) -> list:
    """A row field that holds a list, or [] where the row has none (NaN in a frame)."""
    return list(value) if isinstance(value, list | tuple | np.ndarray) else []


def _run_config(row) -> dict:
    """The run's saved config (`.hydra/config.yaml` of its run dir) as dotted keys, minus the
    seed and the bookkeeping; {} when it is not there."""
    from recx.stages.common import experiment_config

    path = Path(str(row.get("run_dir") or "")) / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    try:
        tree = experiment_config(OmegaConf.load(path))
    except Exception:  # an unreadable config only loses the detail
        return {}
    return dict(_flatten(tree))


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flatten(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], tree


def _compat_key(switches):
    """The active paper-compat switches as one key, so a run with the original code's behaviour
    never replaces or averages with the fixed one; None when none is active (or the row predates
    the field)."""
    if isinstance(switches, list | tuple):
        return ",".join(sorted(switches)) or None
    return switches or None


def aggregate(frame: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    keys = [k for k in keys if k in frame]
    key_frame = frame[keys].astype(object).where(frame[keys].notna(), ABSENT)
    grouped = frame.assign(**{k: key_frame[k] for k in keys}).groupby(keys, dropna=False)
    out = []
    for key, g in grouped:
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row["n_seeds"] = int(g["seed"].nunique()) if "seed" in g else len(g)
        for m in metrics:
            if m in g:
                vals = g[m].dropna().to_numpy(dtype=float)
                row[m] = float(vals.mean()) if len(vals) else np.nan
                row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
        out.append(row)
    return pd.DataFrame(out)


def mean_std(mean, std, digits: int = 4) -> str:
    """'mean ± std', or the mean alone when there is no std (one seed)."""
    s = f"{mean:.{digits}f}"
    if std is not None and not np.isnan(std):
        s += f" ± {std:.{digits}f}"
    return s


def cell(mean, std, n) -> str:
    """A report cell: 'mean ± std (n=N)'; empty when there is no mean."""
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return ""
    return mean_std(mean, std) + f" (n={n})"


def candidates(protocols: pd.Series) -> str:
    """The candidate sets of a row's protocol strings: `mask=on|off` under full ranking (the
    user's history out of the candidates or in), `sampled:N:…` otherwise; two where the row's
    models were ranked differently (which a like-for-like table must show)."""
    def one(p: str) -> str:
        parts = str(p).split("/")
        return next((x for x in parts if x.startswith("mask=")), "?") if "full" in parts \
            else (parts[1] if len(parts) > 1 else str(p))
    return ", ".join(sorted({one(p) for p in protocols})) or "·"


def gated_as_setting(frame: pd.DataFrame) -> pd.DataFrame:
    """A zero-shot model gated against Pop (`interpolate.select=gated` with base pop, tagged
    zero_shot_gated) is a setting of its own here, untagged, beside the plain zero-shot one."""
    if "tag" not in frame:
        return frame
    gated = frame.tag.eq(GATED) & frame.setting.eq("interpolate") & frame.base.eq("pop")
    if not gated.any():
        return frame
    frame = frame.copy()
    frame.loc[gated, "setting"] = GATED
    frame.loc[gated, "tag"] = ABSENT
    return frame
