"""The model adapter contract (ARCHITECTURE §8).

An adapter translates config and domain data into tensors; the pure `nn.Module`s in
`recx/models/modules/` only do maths. The item universe is whatever domain was last passed to
`fit_inputs`: that is how zero-shot transfer works (popularity tables, graph statistics, text
embeddings and Pop counts are rebuilt on the target; the weights stay).

A model's settings have one home, its `conf/model/<name>.yaml`: constructors take every setting
as a keyword argument without a default, and nested blocks (`optim`, IDP's `retrieval`, ...) must
hold exactly their declared keys (`config_block`). Everything a stage may ask of a model is a
class attribute or a method of `RecModel`, with its default here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from recx.data.sequences import SeqBatch
from recx.errors import ConfigError

# every training recipe (`model.optim`, or `model.optim.<phase>`) holds these keys, plus the
# extras its model declares in `RecModel.recipe_keys`; the loop reads the first five
RECIPE_KEYS = ("lr", "weight_decay", "max_epochs", "eval_every", "patience", "loss", "sampler")


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


def block_problems(where: str, given, keys: Sequence[str]) -> list[str]:
    """What keeps `model.<where>` from holding exactly `keys`: unknown keys (with a "did you
    mean") and missing ones."""
    if given is None or not isinstance(given, Mapping):
        return [f"model.{where}={given!r} must be a mapping of {', '.join(keys)}"]
    out = []
    for k in given:
        if k not in keys:
            close = difflib.get_close_matches(str(k), keys, n=1)
            out.append(f"model.{where}.{k} is unknown"
                       + (f" — did you mean {close[0]!r}?" if close else "")
                       + f" (valid keys: {', '.join(keys)})")
    out += [f"model.{where}.{k} is missing (the model's YAML sets every key of {where})"
            for k in keys if k not in given]
    return out


def config_block(where: str, given, keys: Sequence[str]) -> dict:
    """`model.<where>` as a plain dict holding exactly `keys`; else a ConfigError listing every
    unknown and missing key."""
    problems = block_problems(where, given, keys)
    if problems:
        raise ConfigError("; ".join(problems), hint=f"fix the model.{where}.* overrides")
    return dict(given)


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
    """The adapter contract. Class attributes and methods below are every hook a stage calls;
    a model overrides the ones that apply to it."""

    name: ClassVar[str] = "model"
    capabilities: ClassVar[Capabilities] = Capabilities()
    # training recipe schema: `model.optim` holds RECIPE_KEYS + these extras; a model trained
    # in phases has one recipe per phase instead, `model.optim.<phase>`: phase → its extras
    recipe_keys: ClassVar[tuple[str, ...]] = ()
    recipe_phases: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType({})
    # dotted model keys that act only after pre-training: left out of the pretrain checkpoint
    # hash, so one pre-training serves a sweep over them
    posttrain_keys: ClassVar[tuple[str, ...]] = ()
    # pre-training on several sources hands the model their union (with `.sources`) instead
    # of one domain per batch (UniSRec's multi-domain negatives, IDP's shared ID table)
    mixes_domains: ClassVar[bool] = False
    # a model that derives post-training state from its pre-training domain (IDP's matcher);
    # the stages then call `attach_pretraining` after loading a pretrain checkpoint
    uses_pretraining_domain: ClassVar[bool] = False
    max_len: int = 50  # history window the evaluator cuts for `score_all`
    # original-code switches in effect (name → on); the metrics rows list the active ones
    paper_compat: Mapping[str, bool] = MappingProxyType({})
    # which source each training batch comes from when the model trains on several domains
    sampling: str = "proportional"

    def __init__(self, n_items: int = 0, optim: dict | None = None):
        super().__init__()
        self.n_items = n_items  # ID models size their tables with it; zero-shot models ignore it
        self.optim = dict(optim or {})
        self.domain = None
        # the evaluation cache's name for these weights (recx.eval.cache): set when loaded from
        # a checkpoint file; a counting model's scores follow from config and data alone
        self.weights_identity = None if self.capabilities.trainable else "no weights"

    # -- recipe -------------------------------------------------------------------------------
    @classmethod
    def recipe_problems(cls, optim) -> list[str]:
        """What is wrong with `model.optim` against the recipe schema (empty: nothing)."""
        if not cls.capabilities.trainable:
            return [] if optim is None else ["model.optim: this model has no training recipe"]
        if not cls.recipe_phases:
            return block_problems("optim", optim, (*RECIPE_KEYS, *cls.recipe_keys))
        phases = tuple(cls.recipe_phases)
        out = block_problems("optim", optim, phases)
        if out:
            return [*out, f"{cls.name} has a recipe per phase: "
                    + " and ".join(f"model.optim.{p}.<key>" for p in phases)]
        return [p for phase, extras in cls.recipe_phases.items()
                for p in block_problems(f"optim.{phase}", optim[phase], (*RECIPE_KEYS, *extras))]

    @classmethod
    def read_recipe(cls, optim) -> dict:
        """`model.optim` as a plain dict ({phase: recipe} for a phased model), checked."""
        problems = cls.recipe_problems(optim)
        if problems:
            raise ConfigError("; ".join(problems), hint="fix the model.optim.* overrides")
        if cls.recipe_phases:
            return {p: dict(optim[p]) for p in cls.recipe_phases}
        return dict(optim)

    def active_compat(self) -> list[str]:
        """The original-code switches that are on, as metrics rows list them."""
        return sorted(k for k, v in dict(self.paper_compat).items() if v is True)

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

    def query_order(self, domain, pos: np.ndarray) -> np.ndarray | None:
        """An order to score a split's queries in (an evaluator hook that only affects speed;
        results keep their natural order). None: the natural order."""
        return None

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
