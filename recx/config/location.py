"""Where the shipped configs live."""

from __future__ import annotations

import os
from pathlib import Path


def conf_dir() -> Path:
    """$RECX_CONF_DIR, then <repo>/conf (editable checkout), then recx/_conf (installed wheel)."""
    env = os.environ.get("RECX_CONF_DIR")
    if env:
        return Path(env).resolve()
    package = Path(__file__).resolve().parents[1]
    repo = package.parent / "conf"
    if (repo / "common.yaml").exists():
        return repo
    return package / "_conf"
