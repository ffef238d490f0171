"""UniSRec's `ddp_gather_negatives`: with two gloo ranks holding halves of a batch, the ranks'
mean loss equals the single-process loss on the whole batch (every rank sees all negatives)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import make_model

pytestmark = pytest.mark.slow


def batch():
    g = torch.Generator().manual_seed(0)
    s = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
    v = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
    targets = torch.tensor([1, 2, 3, 2, 5, 6])  # rows 1 and 3 share a target (masked)
    return s, v, targets


def _rank(rank: int, world: int, init: str, out) -> None:
    import torch.distributed as dist


    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        m = make_model("unisrec", plm_size=4, hidden=4, inner=4, heads=1, n_experts=1,
                    ddp_gather_negatives=True)
        s, v, t = batch()
        half = slice(0, 3) if rank == 0 else slice(3, 6)
        v_local = v[half].clone().requires_grad_(True)
        loss = m._info_nce(s[half], v_local, t[half])
        loss.backward()
        out[rank] = (float(loss), v_local.grad.abs().sum().item())
    finally:
        dist.destroy_process_group()


def test_gathered_negatives_match_the_whole_batch(tmp_path):
    import torch.multiprocessing as mp

    from recx.models.unisrec import info_nce

    manager = mp.Manager()
    out = manager.dict()
    init = f"file://{tmp_path / 'rdzv'}"
    mp.spawn(_rank, args=(2, init, out), nprocs=2, join=True)
    s, v, t = batch()
    whole = info_nce(s, v, t, t, 0.07).item()
    assert (out[0][0] + out[1][0]) / 2 == pytest.approx(whole, rel=1e-5)
    assert out[0][1] > 0 and out[1][1] > 0  # gradients flow back through the gather
