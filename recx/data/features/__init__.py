"""Derived per-domain features (popularity tables, graph statistics, text embeddings).

`FeatureEnv` tells feature builders where to cache and how (encoder settings, seed,
determinism). Stages attach one to every domain they load, so a model's `fit_inputs(domain)`
can build what it needs without any config plumbing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class FeatureEnv:
    cache_root: Path
    text: Any = None  # the `text` config group (TextSchema)
    seed: int = 0
    deterministic: bool = False
    offline: bool = False
    progress: str = "auto"
    extra: dict = field(default_factory=dict)
