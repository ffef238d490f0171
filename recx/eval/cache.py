"""Evaluation results kept on disk, so rerunning a sweep does not rank every user again.

`transfer`, `interpolate`, `train` and `finetune` load their checkpoints from the store and then
spend most of a cache-hit run ranking users; a Hydra sweep rerun (or `scripts/transfer_matrix.sh`
resumed) repeats that for every cell. The evaluator therefore stores each split's ranks under
`<paths.cache>/eval/<key>.npz` and reads them back when the key matches. The key covers
everything a rank can depend on:

- the code: a hash of recx's own source files that can reach the scorer (any edit is a miss).
  Of `recx/models/`, `recx/data/features/`, `recx/eval/interpolation.py` and
  `recx/diagnostics/`, only the files that the scorer's modules import, directly or not, count:
  an edit to statmlp re-ranks nothing of PrepRec's, an edit to the blending no single model's
  ranks, an edit to the transferability diagnostics nothing;
- the run's config, minus what cannot change a rank (`progress`, `paths`, `tag`, `threads`,
  `figures`, `diagnostics`, printing);
- the weights: path, size and modification time of every checkpoint file the scorer loaded
  (a retrained checkpoint is a miss, even under the same hash);
- the evaluation call: the domain's data hash, split, user sample, score variants, history
  window, the candidate sets counted and the device type.

Derived features (PrepRec's popularity tables, statmlp's features, text vectors) are cached by
their own content keys, which the config determines. A scorer without a known identity (a model
trained in this process and not reloaded) is never cached. `eval.cache=false` turns it off.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import logging
import zipfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from recx.config.hashing import drop_keys, stable_hash
from recx.store import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT = 2  # 2: ranks and candidate counts per candidate set (policy first)
# top-level config keys that never change a rank
_VOLATILE = ("progress", "print_config", "paths", "tag", "optimized_metric", "hydra", "threads",
             "figures", "diagnostics")

# recx's per-scorer code: a file here counts only when a scorer's modules import it (statically:
# the registry imports every model lazily, and builds them all, so it always counts)
_PER_SCORER = ("models/", "data/features/", "eval/interpolation.py", "diagnostics/")
_BUILDS_ALL = "models/registry.py"
_RECX = Path(__file__).resolve().parents[1]  # the package's source tree


@functools.cache
def source_fingerprint(modules: tuple[str, ...] = ()) -> str:
    """sha256 over recx's Python sources (relative path + bytes) that can change the ranks of a
    scorer whose models live in `modules` (e.g. "recx.models.preprec"): every file outside
    `_PER_SCORER`, and inside it the registry, the packages' `__init__` files and the files that
    `modules` import, directly or not. A module outside recx (or none given) counts every file.
    Computed once per process and scorer kind."""
    root = _RECX  # a module global, so that tests can fingerprint a copy of the tree
    files = sorted(root.rglob("*.py"))
    rel = {p: p.relative_to(root).as_posix() for p in files}
    keep = set(files)
    if modules and all(m.startswith("recx.") for m in modules):
        reached = _imported(root, [_module_path(root, m) for m in modules])
        keep = {p for p in files  # a package's __init__ runs before any of its modules
                if not rel[p].startswith(_PER_SCORER) or rel[p] == _BUILDS_ALL
                or p.name == "__init__.py" or p in reached}
    h = hashlib.sha256()
    for p in files:
        if p in keep:
            h.update(rel[p].encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _module_path(root: Path, module: str) -> Path:
    """recx.a.b → <root>/a/b.py, or <root>/a/b/__init__.py."""
    base = root.joinpath(*module.split(".")[1:])
    return base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"


def _imported(root: Path, start: list[Path]) -> set[Path]:
    """The recx files that `start` imports, directly or through others (function-level and
    relative imports included: every import statement of the file's syntax tree; `from recx.pkg
    import name` also counts recx/pkg/name.py when it is a module)."""
    seen: set[Path] = set()
    todo = [p for p in start if p.exists()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                pkg = path.relative_to(root).parent.parts  # `from .x` is relative to it
                base = ["recx", *pkg[:len(pkg) - node.level + 1]] if node.level else []
                module = ".".join(base + (node.module.split(".") if node.module else []))
                names = [module, *(f"{module}.{a.name}" for a in node.names)]
            for name in names:
                if name == "recx" or name.startswith("recx."):
                    dep = _module_path(root, name)
                    if dep.exists():
                        todo.append(dep)
    return seen


def scorer_key(cfg, device, *models, code: tuple[str, ...] = ()) -> str | None:
    """The part of the key shared by every split of one scorer (one model, or the two models of
    an interpolation, whose blending module is in `code`); None (never cached) if caching is off
    or a model's weights are unknown."""
    if not bool(cfg.eval.get("cache", True)):
        return None
    ids = [getattr(m, "weights_identity", None) for m in models]
    if any(i is None for i in ids):
        return None
    run = drop_keys(OmegaConf.to_container(cfg, resolve=False), _VOLATILE)
    src = source_fingerprint(tuple(sorted({type(m).__module__ for m in models} | set(code))))
    return stable_hash(FORMAT, src, run, ids, str(device.type), length=16)


def split_path(cache_root, scorer: str, *call) -> Path:
    return Path(cache_root) / "eval" / f"{stable_hash(scorer, *call, length=20)}.npz"


def load(path: Path, n_masks: int | None = None) -> dict | None:
    """The stored arrays of a split (`ranks` and `n_candidates` as one array per candidate set),
    or None when absent, unreadable or of another shape (then it is recomputed)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            out = {k: z[k] for k in ("users", "targets", "history_len")}
            n_masks = int(z["n_sets"]) if n_masks is None else n_masks
            out["ranks"] = [z[f"ranks_{m}"] for m in range(n_masks)]
            out["n_candidates"] = [z[f"n_candidates_{m}"] for m in range(n_masks)]
            out["n_repeat_targets"] = int(z["n_repeat_targets"])
        out["ranks"] = [r.astype(np.int64) for r in out["ranks"]]
        return out
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        log.warning("ignoring unreadable evaluation cache entry %s (%s); ranking again",
                    path.name, e)
        return None


def save(path: Path, res) -> None:
    """Write atomically: a reader sees the whole entry or none."""
    arrays = {}
    for m, r in enumerate(res.candidate_sets()):
        ranks = r.ranks
        if ranks.size and ranks.max() <= np.iinfo(np.int32).max:
            ranks = ranks.astype(np.int32)  # half the disk; ranks are item counts
        arrays[f"ranks_{m}"] = ranks
        arrays[f"n_candidates_{m}"] = r.n_candidates
    buf = io.BytesIO()
    np.savez(buf, users=res.users, targets=res.targets, history_len=res.history_len,
             n_repeat_targets=np.int64(res.n_repeat_targets),
             n_sets=np.int64(len(res.candidate_sets())), **arrays)
    atomic_write_bytes(path, buf.getvalue())
