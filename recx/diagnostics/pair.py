"""All diagnostics of one (sources, target) pair, and the files a run keeps them in.

`diagnostics.json` holds the flat name → number dict (a diagnostic that does not apply, e.g. a
Wasserstein distance of an empty distribution, is left out); `diagnostics_pair.json` beside it
says what was compared (model, source key, target, seed), so `recx report` can match the
diagnostics of a run to its metrics, or to the metrics of the same pair in another run.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from recx.errors import ConfigError

log = logging.getLogger(__name__)

DIAGNOSTICS_FILE = "diagnostics.json"
PAIR_FILE = "diagnostics_pair.json"
TEXT_CHOICES = ("auto", "true", "false")


def pair_diagnostics(sources: list, target, model=None, text: str = "auto") -> dict[str, float]:
    """Diagnostics of pre-training on `sources` (domains) and transferring to `target`.

    `model` (an adapter, trained or not: only its feature configuration is read) selects the
    period lengths and the model-input diagnostics; None gives the activity and time ones.
    `text`: auto = text diagnostics for text models only; true = always; false = never."""
    from recx.diagnostics.activity import activity_diagnostics, activity_profile
    from recx.diagnostics.inputs import input_diagnostics, input_profile
    from recx.diagnostics.temporal import period_config, time_diagnostics, time_profile

    if not sources:
        raise ConfigError("diagnostics need at least one source domain",
                          hint="pick sources: source=synth_a or 'source=[a,b]'")
    out = activity_diagnostics([activity_profile(d) for d in sources], activity_profile(target))
    out.update(time_diagnostics([time_profile(d, period_config(d, model)) for d in sources],
                                time_profile(target, period_config(target, model))))
    tp = input_profile(target, model)
    if tp is not None:
        out.update(input_diagnostics([input_profile(d, model) for d in sources], tp))
    if _wants_text(model, text, [*sources, target]):
        from recx.diagnostics.text import text_diagnostics, text_profile

        out.update(text_diagnostics([text_profile(d) for d in sources], text_profile(target)))
    return {k: float(v) for k, v in sorted(out.items()) if not math.isnan(float(v))}


def _wants_text(model, text: str, domains: list) -> bool:
    text = str(text).lower()
    if text not in TEXT_CHOICES:
        raise ConfigError(f"diagnostics.text={text!r}", hint="use auto, true or false")
    if text == "false":
        return False
    if text == "auto":
        caps = getattr(model, "capabilities", None)
        return bool(caps is not None and caps.needs_text)
    bare = [d.name for d in domains if not list(d.text_fields or [])]
    if bare:
        raise ConfigError(f"diagnostics.text=true but {', '.join(bare)} has no item text",
                          hint="use diagnostics.text=auto, or datasets with text_fields")
    return True


def write_pair(run_dir: Path, diagnostics: dict[str, float], identity: dict) -> Path:
    """Write diagnostics.json and diagnostics_pair.json into `run_dir` (atomically)."""
    from recx.store import atomic_write_json

    run_dir = Path(run_dir)
    atomic_write_json(run_dir / PAIR_FILE, identity)
    atomic_write_json(run_dir / DIAGNOSTICS_FILE, diagnostics)
    return run_dir / DIAGNOSTICS_FILE


def read_pair(path: Path) -> tuple[dict, dict[str, float]] | None:
    """(identity, diagnostics) of a diagnostics.json; None (with a warning) when unreadable."""
    path = Path(path)
    try:
        diag = json.loads(path.read_text())
        ident = json.loads((path.parent / PAIR_FILE).read_text())
    except (OSError, ValueError) as e:
        log.warning("skipping %s: %s", path, e)
        return None
    if not isinstance(diag, dict) or not isinstance(ident, dict):
        log.warning("skipping %s: not a name → number object", path)
        return None
    return ident, {k: float(v) for k, v in diag.items() if isinstance(v, int | float)}


def identity(model_name: str, source_key: str, target, seed: int, sources: list) -> dict:
    return {"model": model_name, "source": source_key, "target": target.name, "seed": int(seed),
            "data_hashes": {d.name: d.data_hash for d in [*sources, target]}}
