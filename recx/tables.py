"""Metric rows → metrics.{json,csv,md} and a rich table (ARCHITECTURE §10, EVALUATION §6)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from recx.eval.metrics import is_metric_key
from recx.store import atomic_write_json, atomic_write_text

SCHEMA_VERSION = 1
SAMPLED_BANNER = ("sampled protocol: metrics against N negatives are far higher than full-ranking "
                  "metrics; never compare the two")
ID_COLUMNS = ["stage", "setting", "model", "mode", "base", "source", "target", "split", "slice",
              "seed", "alpha", "selected", "candidates"]


def metric_columns(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        for k in r:
            if is_metric_key(k) and k not in cols:
                cols.append(k)

    def key(c):
        name, _, k = c.partition("@")
        return (int(k) if k.isdigit() else 10**9, ["Recall", "HR", "NDCG", "MRR", "AUC"].index(
            name) if name in ("Recall", "HR", "NDCG", "MRR", "AUC") else 9)

    return sorted(cols, key=key)


def to_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for c in frame.columns:
        if frame[c].map(lambda v: isinstance(v, list)).any():
            frame[c] = frame[c].map(lambda v: "|".join(map(str, v)) if isinstance(v, list) else v)
    return frame


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def markdown(frame: pd.DataFrame, cols: list[str], bold_best: bool = False) -> str:
    best = {}
    if bold_best:
        for c in cols:
            if is_metric_key(c) and c in frame and frame[c].notna().any():
                best[c] = frame[c].max()
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in frame.iterrows():
        cells = []
        for c in cols:
            s = fmt(r.get(c))
            if c in best and r.get(c) == best[c] and s:
                s = f"**{s}**"
            cells.append(s)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def display_columns(rows: list[dict], ks=None) -> list[str]:
    ids = [c for c in ID_COLUMNS if any(r.get(c) not in (None, "", "all") for r in rows)]
    mets = metric_columns(rows)
    if ks:
        mets = [m for m in mets if m.partition("@")[2] in {str(k) for k in ks}] or mets
    return ids + mets


def write_metrics(rows: list[dict], run_dir: Path, title: str = "metrics",
                  print_table: bool = True, display: list[dict] | None = None) -> None:
    """metrics.json (schema_version + flat rows), metrics.csv, metrics.md; print a rich table."""
    run_dir = Path(run_dir)
    atomic_write_json(run_dir / "metrics.json", {"schema_version": SCHEMA_VERSION, "rows": rows})
    frame = to_frame(rows)
    atomic_write_text(run_dir / "metrics.csv", frame.to_csv(index=False))
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    cols = [*display_columns(ok), "protocol"]
    md = markdown(to_frame(ok), cols) if ok else "(no rows)\n"
    if any("sampled" in str(r.get("protocol", "")) for r in ok):
        md = f"> {SAMPLED_BANNER}\n\n" + md
    atomic_write_text(run_dir / "metrics.md", md)
    shown = ok if display is None else display
    if print_table and shown:
        print_rows(shown, title)


def candidates(row: dict) -> str | None:
    """"policy" or "other" with its mask, for full-ranking rows (sampled ones have one set)."""
    if row.get("policy") is None or row.get("mask_history") in (None, "n-a"):
        return None
    return f"{'policy' if row['policy'] else 'other'} (mask={row['mask_history']})"


def print_rows(rows: list[dict], title: str, ks=(10, 20, 50)) -> None:
    """A compact rich table: identity columns that vary between rows, then the metrics;
    identity values shared by every row go into the caption."""
    from rich.table import Table

    from recx.console import console

    rows = [{**r, "candidates": candidates(r)} for r in rows]
    ids = [c for c in ID_COLUMNS if any(r.get(c) not in (None, "") for r in rows)]
    varying = [c for c in ids if len({str(r.get(c)) for r in rows}) > 1]
    shared = [f"{c}={rows[0].get(c)}" for c in ids if c not in varying and c != "slice"]
    mets = [m for m in metric_columns(rows) if m.partition("@")[2] in {str(k) for k in ks}] \
        or metric_columns(rows)
    t = Table(title=title, title_justify="left", caption=" ".join(shared),
              caption_justify="left")
    for c in varying:
        t.add_column(c)
    for m in mets:
        t.add_column(m, justify="right")
    for r in rows:
        t.add_row(*[fmt(r.get(c)) for c in varying], *[fmt(r.get(m)) for m in mets])
    console.print(t)
    protos = sorted({str(r.get("protocol")) for r in rows if r.get("protocol")})
    if protos:
        console.print("protocol: " + ", ".join(protos))
    if any("sampled" in p for p in protos):
        console.print(f"[yellow]{SAMPLED_BANNER}[/yellow]")
