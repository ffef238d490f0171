"""Seeding: everything at stage start, and again right before model construction so that
initialisation does not depend on how much randomness data loading consumed."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int, deterministic: bool = False) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = False


def reseed_for_model(seed: int) -> None:
    import torch

    torch.manual_seed(int(np.random.SeedSequence([seed, 7]).generate_state(1)[0]))
