"""Hydra callbacks: `SweepSummary` writes sweep_summary.{csv,md} after a multirun and makes the
command exit non-zero when a job failed (failed jobs write status: failed rows and the sweep
goes on)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)
_FAILED = {"n": 0}


def exit_code() -> int:
    return 1 if _FAILED["n"] else 0


class SweepSummary(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = []
        for path in sorted(sweep_dir.glob("*/metrics.json")):
            try:
                data = json.loads(path.read_text())["rows"]
            except (OSError, ValueError, KeyError):
                rows.append({"job": path.parent.name, "status": "unreadable"})
                continue
            failed = [r for r in data if r.get("status") == "failed"]
            ok = [r for r in data if r.get("status") == "ok" and r.get("split") == "test"
                  and r.get("slice", "all") == "all" and r.get("selected") is not False]
            row = {"job": path.parent.name, "status": "failed" if failed else "ok"}
            if failed:
                row["error"] = failed[0].get("error")
            elif ok:
                row.update({k: ok[0].get(k) for k in ("model", "source", "target", "seed",
                                                       "NDCG@10", "Recall@10")})
            rows.append(row)
        if not rows:
            return
        import pandas as pd

        from recx.tables import markdown

        frame = pd.DataFrame(rows)
        frame.to_csv(sweep_dir / "sweep_summary.csv", index=False)
        (sweep_dir / "sweep_summary.md").write_text(markdown(frame, list(frame.columns)))
        n_failed = int((frame["status"] != "ok").sum())
        _FAILED["n"] = n_failed
        log.info("sweep summary: %d jobs, %d failed → %s", len(frame), n_failed,
                 sweep_dir / "sweep_summary.md")
        if n_failed:
            log.error("%d of %d jobs failed; see sweep_summary.md", n_failed, len(frame))
