"""The evaluation cache (recx.eval.cache): a rerun reads its ranks back instead of ranking again,
and anything that could change a rank (the weights file, the config, the code) is a miss."""

from __future__ import annotations

import os
import shutil

import pytest

from recx.eval import cache
from recx.eval.evaluator import Evaluator
from recx.stages import execute
from tests.conftest import compose

pytestmark = pytest.mark.usefixtures("one_torch_thread")
METRICS = ("Recall@10", "NDCG@10", "MRR@10", "n_users")


def stage(tmp_path, name, *over):
    cfg = compose(name, [*over, "train=fast", "progress=false"], root=tmp_path)
    run_dir = tmp_path / "runs" / f"{name}_{len(list(tmp_path.glob('runs/*')))}"
    return execute(cfg, run_dir)


def table(result):
    return sorted((r["split"], r.get("alpha"), *(r[m] for m in METRICS)) for r in result.rows)


@pytest.fixture
def ranked(monkeypatch):
    """The splits that were really ranked (training's own validation included)."""
    calls = []
    real = Evaluator._run

    def counting(self, *a, **kw):
        calls.append(a[1] if len(a) > 1 else kw.get("split"))
        return real(self, *a, **kw)

    monkeypatch.setattr(Evaluator, "_run", counting)
    return calls


def entries(tmp_path):
    return sorted((tmp_path / "outputs" / "cache" / "eval").glob("*.npz"))


def test_rerun_reads_ranks_back_with_identical_metrics(tmp_path, ranked):
    first = stage(tmp_path, "train", "model=sasrec", "dataset=tiny")
    assert len(entries(tmp_path)) == 2  # valid and test (training's validation is not cached)
    ranked.clear()
    again = stage(tmp_path, "train", "model=sasrec", "dataset=tiny", "tag=x", "print_config=true")
    assert ranked == []  # tag and printing never change a rank
    assert table(again) == table(first)


def test_a_transfer_without_its_figures_reads_ranks_back(tmp_path, ranked):
    stage(tmp_path, "pretrain", "model=preprec", "source=tiny")
    first = stage(tmp_path, "transfer", "model=preprec", "source=tiny", "target=tiny_b")
    ranked.clear()
    again = stage(tmp_path, "transfer", "model=preprec", "source=tiny", "target=tiny_b",
                  "figures=false")
    assert ranked == [] and table(again) == table(first)


def test_new_weights_config_or_switch_off_is_a_miss(tmp_path, ranked):
    stage(tmp_path, "train", "model=sasrec", "dataset=tiny")
    ckpt = next((tmp_path / "outputs" / "artifacts" / "train").rglob("model.pt"))
    st = ckpt.stat()
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # "retrained"
    ranked.clear()
    stage(tmp_path, "train", "model=sasrec", "dataset=tiny")
    assert ranked == ["valid", "test"]
    ranked.clear()
    stage(tmp_path, "train", "model=sasrec", "dataset=tiny", "eval.slices=[all,head]")
    assert ranked == ["valid", "test"]
    n = len(entries(tmp_path))
    ranked.clear()
    stage(tmp_path, "train", "model=sasrec", "dataset=tiny", "eval.cache=false")
    assert ranked == ["valid", "test"] and len(entries(tmp_path)) == n


def test_interpolation_caches_every_alpha(tmp_path, ranked):
    stage(tmp_path, "train", "model=sasrec", "dataset=tiny")
    over = ("model=pop", "base=sasrec", "target=tiny", "interpolate.alphas=[0,0.5,1]")
    ranked.clear()
    first = stage(tmp_path, "interpolate", *over)
    assert ranked == ["valid", "test"]
    ranked.clear()
    again = stage(tmp_path, "interpolate", *over)
    assert ranked == [] and table(again) == table(first)
    assert {r["alpha"] for r in again.rows} == {0.0, 0.5, 1.0}
    ranked.clear()
    stage(tmp_path, "interpolate", *over[:-1], "interpolate.alphas=[0,1]")
    assert ranked == ["valid", "test"]  # another α grid is another scorer


def test_unreadable_entry_is_recomputed_and_replaced(tmp_path, ranked):
    first = stage(tmp_path, "train", "model=sasrec", "dataset=tiny")
    for p in entries(tmp_path):
        p.write_bytes(b"not an npz")  # e.g. a disk that filled up under another tool
    ranked.clear()
    again = stage(tmp_path, "train", "model=sasrec", "dataset=tiny")
    assert ranked == ["valid", "test"] and table(again) == table(first)
    assert all(cache.load(p) is not None for p in entries(tmp_path))


def test_a_model_without_known_weights_is_not_cached(tmp_path):
    cfg = compose("train", ["model=sasrec", "dataset=tiny"], root=tmp_path)
    from recx.models.registry import build_model

    model = build_model(cfg.model, n_items=10)
    import torch

    assert cache.scorer_key(cfg, torch.device("cpu"), model) is None
    model.weights_identity = "w"
    assert cache.scorer_key(cfg, torch.device("cpu"), model) is not None
    pop = build_model(compose("train", ["model=pop", "dataset=tiny"], root=tmp_path).model)
    assert pop.weights_identity == "no weights"


def test_code_key_counts_the_files_a_model_imports(tmp_path, monkeypatch, request):
    """An edit to one model's files is a miss for that model's scorers only, an edit to the
    blending for interpolations only; shared code (the evaluator, the models' base class, the
    registry) is a miss for every scorer."""
    request.addfinalizer(cache.source_fingerprint.cache_clear)  # no key of the copy survives
    root = tmp_path / "recx"
    shutil.copytree(cache._RECX, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "_RECX", root)  # fingerprint the copy

    def keys():
        cache.source_fingerprint.cache_clear()
        return {m: cache.source_fingerprint((f"recx.models.{m}",))
                for m in ("preprec", "statmlp", "sasrec", "idp")} | {
            "blend": cache.source_fingerprint(("recx.eval.interpolation", "recx.models.preprec",
                                               "recx.models.sasrec")),
            "all": cache.source_fingerprint()}

    def edited(rel):
        with open(root / rel, "a") as f:
            f.write("\n# edited\n")
        return keys()

    before = keys()
    assert len(set(before.values())) == 6
    after = edited("models/modules/statmlp_net.py")
    assert [m for m in before if after[m] != before[m]] == ["statmlp", "all"]
    before, after = after, edited("models/modules/sasrec_net.py")  # IDP builds on SASRec's net
    assert [m for m in before if after[m] != before[m]] == ["sasrec", "idp", "blend", "all"]
    before, after = after, edited("eval/interpolation.py")
    assert [m for m in before if after[m] != before[m]] == ["blend", "all"]
    for shared in ("eval/metrics.py", "models/base.py", "models/registry.py",
                   "data/features/__init__.py"):
        before, after = after, edited(shared)
        assert all(after[m] != before[m] for m in before), shared


def test_import_closure_follows_relative_and_function_level_imports(tmp_path):
    root = tmp_path / "recx"
    (root / "models" / "modules").mkdir(parents=True)
    files = {"__init__.py": "", "models/__init__.py": "", "models/modules/__init__.py": "",
             "models/a.py": "from .modules import net\ndef f():\n    from . import b\n",
             "models/b.py": "from ..models.modules.net import X\nimport recx.models.d\n",
             "models/modules/net.py": "X = 1\n", "models/c.py": "", "models/d.py": ""}
    for rel, text in files.items():
        (root / rel).write_text(text)
    reached = cache._imported(root, [cache._module_path(root, "recx.models.a")])
    assert sorted(p.relative_to(root).as_posix() for p in reached) == [
        "models/__init__.py", "models/a.py", "models/b.py", "models/d.py",
        "models/modules/__init__.py", "models/modules/net.py"]
