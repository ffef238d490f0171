"""Checkpoints that hold tensors and plain Python only, so `torch.load(weights_only=True)` always
works (ARCHITECTURE §7.6). Domain-specific tensors are non-persistent buffers and never saved.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from recx.errors import CheckpointError

log = logging.getLogger(__name__)
FORMAT = "recx-ckpt-1"


def save(path: Path, payload: dict) -> None:
    """Write atomically: a crash mid-write never leaves a truncated file under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)


def load(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist",
                              hint="run the stage that creates it, or pass an existing ckpt=PATH")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(e).__name__}: {str(e).splitlines()[0]})",
            hint=f"the file is truncated or not a recx checkpoint: delete it ({path}) and run "
            "the stage again (add train.resume=never to restart training from scratch)",
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a recx checkpoint",
                              hint="pass a model.pt written by recx")
    return data


def load_state(model: torch.nn.Module, state: dict, mode: str = "same") -> None:
    """Strict loading, except for the keys the model declares missing/unexpected for `mode`."""
    exp_missing = model.expected_missing_keys(mode) if hasattr(model, "expected_missing_keys") \
        else set()
    exp_unexp = model.expected_unexpected_keys(mode) if hasattr(
        model, "expected_unexpected_keys") else set()
    res = model.load_state_dict(state, strict=False)
    missing, unexpected = set(res.missing_keys), set(res.unexpected_keys)
    if missing != exp_missing or unexpected != exp_unexp:
        raise CheckpointError(
            f"checkpoint does not fit the model: missing {sorted(missing - exp_missing)}, "
            f"unexpected {sorted(unexpected - exp_unexp)}",
            hint="the checkpoint was trained with other model settings; retrain or pass the "
            "matching model.* overrides")
    if exp_missing or exp_unexp:
        log.info("loaded with %d expected missing and %d expected unexpected keys",
                 len(missing), len(unexpected))
