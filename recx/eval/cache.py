"""Evaluation results kept on disk, so rerunning a sweep does not rank every user again.

`transfer`, `interpolate`, `train` and `finetune` load their checkpoints from the store and then
spend most of a cache-hit run ranking users; a Hydra sweep rerun (or `scripts/transfer_matrix.sh`
resumed) repeats that for every cell. The evaluator therefore stores each split's ranks under
`<paths.cache>/eval/<key>.npz` and reads them back when the key matches. The key covers
everything a rank can depend on:

- the code: a hash of recx's own source files (any edit is a miss);
- the run's config, minus what cannot change a rank (`progress`, `paths`, `tag`, printing);
- the weights: path, size and modification time of every checkpoint file the scorer loaded
  (a retrained checkpoint is a miss, even under the same hash);
- the evaluation call: the domain's data hash, split, user sample, score variants, history
  window, masking and the device type.

Derived features (PrepRec's popularity tables, statmlp's features, text vectors) are cached by
their own content keys, which the config determines. A scorer without a known identity (a model
trained in this process and not reloaded) is never cached. `eval.cache=false` turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from recx.config.hashing import drop_keys, stable_hash
from recx.store import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT = 1
# top-level config keys that never change a rank
_VOLATILE = ("progress", "print_config", "paths", "tag", "optimized_metric", "hydra", "threads")


@functools.lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """sha256 over recx's Python sources (relative path + bytes), computed once per process."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def scorer_key(cfg, device, *models) -> str | None:
    """The part of the key shared by every split of one scorer (one model, or the two models of
    an interpolation); None (never cached) if caching is off or a model's weights are unknown."""
    if not bool(cfg.eval.get("cache", True)):
        return None
    ids = [getattr(m, "weights_identity", None) for m in models]
    if any(i is None for i in ids):
        return None
    run = drop_keys(OmegaConf.to_container(cfg, resolve=False), _VOLATILE)
    return stable_hash(FORMAT, source_fingerprint(), run, ids, str(device.type), length=16)


def split_path(cache_root, scorer: str, *call) -> Path:
    return Path(cache_root) / "eval" / f"{stable_hash(scorer, *call, length=20)}.npz"


_FIELDS = ("ranks", "users", "targets", "n_candidates", "history_len")


def load(path: Path) -> dict | None:
    """The stored arrays of a split, or None when absent or unreadable (then it is recomputed)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            out = {k: z[k] for k in _FIELDS}
            out["n_repeat_targets"] = int(z["n_repeat_targets"])
        return out
    except (OSError, ValueError, KeyError) as e:
        log.warning("ignoring unreadable evaluation cache entry %s (%s)", path.name, e)
        return None


def save(path: Path, res) -> None:
    """Write atomically: a reader sees the whole entry or none."""
    ranks = res.ranks
    if ranks.size and ranks.max() < np.iinfo(np.int32).max:
        ranks = ranks.astype(np.int32)  # half the disk; ranks are item counts
    buf = io.BytesIO()
    np.savez(buf, ranks=ranks, users=res.users, targets=res.targets,
             n_candidates=res.n_candidates, history_len=res.history_len,
             n_repeat_targets=np.int64(res.n_repeat_targets))
    atomic_write_bytes(path, buf.getvalue())
