"""The model adapter contract (ARCHITECTURE §8).

An adapter translates config and domain data into tensors; the pure `nn.Module`s in
`recx/models/modules/` only do maths. The item universe is whatever domain was last passed to
`fit_inputs`: that is how zero-shot transfer works (popularity tables, graph statistics, text
embeddings and Pop counts are rebuilt on the target; the weights stay).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from recx.data.sequences import SeqBatch
from recx.errors import ConfigError


class Figure(NamedTuple):
    """The data of one diagnostic figure, drawn by `recx.plots.draw`: `plot` names the drawing
    function, `data` holds its keyword arguments, `name` ends the file name."""

    name: str
    plot: str
    data: dict


@dataclass(frozen=True)
class Capabilities:
    zero_shot: bool = False  # scores a domain whose items it never saw (no item-ID parameters)
    needs_text: bool = False  # requires item text embeddings
    needs_time: bool = False  # requires timestamps (PrepRec)
    sequential: bool = True  # uses the order of the history
    finetune: bool = False  # supports the finetune stage
    trainable: bool = True  # has gradient-trained parameters (Pop: False)


class Batches:
    """A sized iterable of training batches (the loop needs the length for progress and ETA).
    `make` is a generator function, called anew on every iteration."""

    def __init__(self, n: int, make: Callable[[], Iterator], n_samples: int = 0):
        self.n, self._make, self.n_samples = n, make, n_samples

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator:
        return self._make()


class RecModel(nn.Module):
    name: ClassVar[str] = "model"
    capabilities: ClassVar[Capabilities] = Capabilities()
    max_len: int = 50

    def __init__(self, n_items: int = 0, optim: dict | None = None, **_: Any):
        super().__init__()
        self.n_items = n_items  # ID models size their tables with it; zero-shot models ignore it
        self.optim = dict(optim or {})
        self.domain = None
        # the evaluation cache's name for these weights (recx.eval.cache): set when loaded from
        # a checkpoint file; a counting model's scores follow from config and data alone
        self.weights_identity = None if self.capabilities.trainable else "no weights"

    # -- data ---------------------------------------------------------------------------------
    def fit_inputs(self, domain) -> None:
        """(Re)build every domain-specific input (buffers, features) for `domain`."""
        self.domain = domain

    def fit_nonparametric(self, domain, users: np.ndarray | None = None) -> None:
        """Counting models fit here; trainable models do nothing."""

    def train_batches(self, domain, rng: np.random.Generator, users: np.ndarray) -> Batches:
        raise NotImplementedError(f"{self.name} is not trainable")

    def prepare_finetune(self, domain, block: dict) -> None:
        """Shape the model for adaptation to `domain` (new target tables, frozen parts).
        The default adapts every weight (PrepRec's few-shot mode)."""

    # a model that derives post-training state from its pre-training domain (IDP's matcher)
    # sets this; the stages then call `attach_pretraining` after loading a pretrain checkpoint
    uses_pretraining_domain: ClassVar[bool] = False

    def attach_pretraining(self, domain) -> None:
        """After a pretrain checkpoint is loaded: `domain` is what it was pre-trained on."""

    # -- maths --------------------------------------------------------------------------------
    def loss(self, batch) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} is not trainable")

    def score_all(self, batch: SeqBatch) -> torch.Tensor:
        """[B, n_items + 1] for the current domain; column 0 is padding."""
        raise NotImplementedError

    def score_candidates(self, batch: SeqBatch, cand: torch.Tensor) -> torch.Tensor:
        """[B, C]; by default gathered from `score_all`."""
        return self.score_all(batch).gather(1, cand)

    # -- diagnostics --------------------------------------------------------------------------
    def figures(self, domains: dict, roles: dict) -> list[Figure]:
        """The data of figures of the model's domain inputs on `domains` (name → domain;
        `roles`: name → source | target). `recx transfer` draws them beside its metrics. None by
        default."""
        return []

    # -- checkpoints --------------------------------------------------------------------------
    def expected_missing_keys(self, mode: str) -> set[str]:
        return set()

    def expected_unexpected_keys(self, mode: str) -> set[str]:
        return set()

    def ckpt_extra(self) -> dict:
        """Plain-Python facts needed to rebuild the model (e.g. the ID vocabulary size)."""
        return {"n_items": int(self.n_items)}

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")


def uniform_negatives(rng: np.random.Generator, n_items: int, shape, exclude=None) -> np.ndarray:
    """Uniform item ids in 1..n_items; resample where `exclude(ids)` is true (a few rounds)."""
    neg = rng.integers(1, n_items + 1, size=shape)
    if exclude is not None:
        for _ in range(10):
            bad = exclude(neg)
            if not bad.any():
                break
            neg[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
    return neg


def within_own_part(scores: torch.Tensor, last_items: torch.Tensor,
                    part_ends: torch.Tensor) -> torch.Tensor:
    """Scores [B, N + 1] over a union of domains whose parts hold the item ids
    (end_{k-1}, end_k]: every item outside the part of the user's last item gets −∞, so each
    user is ranked within its own domain (source validation during joint pre-training)."""
    ends = part_ends.to(scores.device)
    part = torch.searchsorted(ends, last_items.contiguous())
    starts = torch.cat([ends.new_zeros(1), ends[:-1]])
    ids = torch.arange(scores.shape[1], device=scores.device)
    inside = (ids[None, :] > starts[part][:, None]) & (ids[None, :] <= ends[part][:, None])
    return scores.masked_fill(~inside, -torch.inf)


def merge_block(what: str, defaults: dict, given: dict | None) -> dict:
    """`model.<what>` over its defaults; a key the model does not know is an error, not a no-op."""
    given = dict(given or {})
    unknown = set(given) - set(defaults)
    if unknown:
        raise ConfigError(f"model.{what} has unknown keys {sorted(unknown)}",
                          hint=f"valid keys: {', '.join(defaults)}")
    return {**defaults, **given}


def phase_recipes(model: str, optim: dict | None, defaults: dict[str, dict]) -> dict[str, dict]:
    """The recipes of a model trained in phases (`model.optim.pretrain`, `model.optim.finetune`),
    each merged over its defaults."""
    optim = dict(optim or {})
    unknown = set(optim) - set(defaults)
    if unknown:
        raise ConfigError(f"model.optim has keys {sorted(unknown)} for {model}",
                          hint=f"{model} has a recipe per phase: "
                          + " and ".join(f"model.optim.{k}.<key>" for k in defaults))
    return {k: merge_block(f"optim.{k}", d, optim.get(k)) for k, d in defaults.items()}
