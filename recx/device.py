"""Device resolution: auto → cuda:<LOCAL_RANK> when CUDA is present, else cpu."""

from __future__ import annotations

import logging
import os

from recx.errors import ConfigError

log = logging.getLogger(__name__)


def resolve_device(setting: str = "auto"):
    import torch

    if setting == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        return torch.device("cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={setting} but CUDA is not available",
                          hint="use device=auto or device=cpu, or install a CUDA build of torch")
    if setting == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device=mps but MPS is not available", hint="use device=auto")
    try:
        return torch.device(setting)
    except RuntimeError:
        raise ConfigError(f"unknown device={setting!r}",
                          hint="use auto, cpu, cuda, cuda:N or mps") from None
