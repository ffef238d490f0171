"""Checkpoint hashes are a promise: a refactoring that changes one orphans every checkpoint made
before it. The values below are what the code gave when they were pinned; each is read from the
miss message a stage prints when the checkpoint it looks up is absent, so the test follows the
stages' own lookup (config → hash → store entry), not a copy of it."""

from __future__ import annotations

import re

import pytest

from recx.errors import ArtifactMissingError
from tests.conftest import compose, run_stage

# in-domain (`recx train model=<m> dataset=tiny`), every model with weights
IN_DOMAIN = {
    "bert4rec": "94f7944d02e0",
    "gru4rec": "992d4e3ca6c6",
    "idp": "b4efb68f7f40",
    "preprec": "adbf64aa1e1b",
    "sasrec": "e8ab74bd4c28",
    "statmlp": "42119d7a60b5",
    "unisrec": "5a8020999a80",
}
# pre-training (`recx pretrain model=<m> source=tiny`), every zero-shot model with weights
PRETRAIN = {
    "idp": "c99e034b4eea",
    "preprec": "adbf64aa1e1b",
    "statmlp": "939ca33b8c39",
    "unisrec": "1e699151161e",
}
TINY_DATA = "c000a65eb8f9"  # the data hash of `tiny` under eval=full (part of every hash above)
# `recx report` pools the rows of runs that share their experiment hash (config minus seed)
EXPERIMENT = {
    ("train", "model=sasrec", "dataset=tiny"): "2b3d256b0c6a",
    ("train", "model=pop", "dataset=tiny"): "47d7ecc135a9",
    ("train", "model=idp", "dataset=tiny"): "882f7d12790e",
    ("interpolate", "model=pop", "base=unisrec", "target=tiny"): "abc0c49b4a7c",
    ("interpolate", "model=pop", "base=statmlp", "target=tiny"): "b8af4bf38e2e",
}
COMMON = ["text=hashing", "figures=false"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("pins")  # tiny is generated once for the module


def _missing_hash(root, stage, *overrides) -> str:
    with pytest.raises(ArtifactMissingError) as e:
        run_stage(root, stage, *overrides)
    return re.search(r"ckpt_hash ([0-9a-f]{12})", e.value.message).group(1)


@pytest.mark.parametrize("model", sorted(IN_DOMAIN))
def test_in_domain_checkpoint_hash_is_pinned(root, model):
    # interpolate looks the in-domain base up exactly as `recx train` stores it
    got = _missing_hash(root, "interpolate", "model=pop", f"base={model}", "source=tiny",
                        "target=tiny", *[c for c in COMMON if not c.startswith("figures")])
    assert got == IN_DOMAIN[model]


@pytest.mark.parametrize("model", sorted(PRETRAIN))
def test_pretrain_checkpoint_hash_is_pinned(root, model):
    got = _missing_hash(root, "transfer", f"model={model}", "source=tiny", "target=tiny_b",
                        *COMMON)
    assert got == PRETRAIN[model]


def test_tiny_data_hash_is_pinned(root):
    rows = run_stage(root, "train", "model=pop", "dataset=tiny").rows
    assert {r["data_hash"] for r in rows} == {TINY_DATA}


def test_the_lookup_finds_what_the_training_stage_stores(root):
    """The pinned hashes come from lookups; the stages that train store under the same ones."""
    fast = ["train=fast", "text=hashing"]
    h = _missing_hash(root, "interpolate", "model=pop", "base=sasrec", "source=tiny",
                      "target=tiny", *fast)
    run_stage(root, "train", "model=sasrec", "dataset=tiny", *fast)
    assert (root / "outputs" / "artifacts" / "train" / "sasrec" / "tiny" / h / "model.pt").is_file()
    h = _missing_hash(root, "transfer", "model=preprec", "source=tiny", "target=tiny_b",
                      "figures=false", *fast)
    run_stage(root, "pretrain", "model=preprec", "source=tiny", *fast)
    assert (root / "outputs" / "artifacts" / "pretrain" / "preprec" / "tiny" / h
            / "model.pt").is_file()


@pytest.mark.parametrize("command", sorted(EXPERIMENT))
def test_experiment_hash_is_pinned(command):
    from recx.stages.common import experiment_hash

    stage, *overrides = command
    assert experiment_hash(compose(stage, overrides)) == EXPERIMENT[command]


def test_every_model_is_pinned():
    """A new model gets its pins with its first commit (docs/development.md)."""
    from recx.models.registry import MODELS, model_class

    classes = {n: model_class(n) for n in MODELS}
    assert set(IN_DOMAIN) == {n for n, c in classes.items() if c.capabilities.trainable}
    assert set(PRETRAIN) == {n for n, c in classes.items()
                             if c.capabilities.trainable and c.capabilities.zero_shot}
