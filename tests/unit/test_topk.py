"""Exact top-k selection (EVALUATION §4: score desc, then item id asc), chunked with scoring."""

from __future__ import annotations

import pytest
import torch

from recx.errors import EvalError
from recx.eval.topk import (
    chunked_topk,
    dot_topk,
    float_order_key,
    half_order_key,
    reference_topk,
    select_topk,
)


def test_order_keys_are_monotonic_and_equal_zeros():
    vals = [-float("inf"), -3e38, -1.5, -1e-45, -0.0, 0.0, 1e-45, 2.0, 3e38, float("inf")]
    keys = float_order_key(torch.tensor(vals)).tolist()
    assert keys == sorted(keys) and keys[4] == keys[5] and len(set(keys)) == len(vals) - 1
    bvals = torch.tensor([-float("inf"), -2.0, -0.0, 0.0, 0.5, 3.0, float("inf")],
                         dtype=torch.bfloat16)
    bkeys = half_order_key(bvals).tolist()
    assert bkeys == sorted(bkeys) and bkeys[2] == bkeys[3] and min(bkeys) >= -2**15


def test_hand_worked_ties_go_to_the_smaller_id():
    s = torch.tensor([[0.5, 0.9, 0.5, 0.9, 0.1, -torch.inf]])
    vals, ids = select_topk(s, 3, group=1, first_id=1)  # column j is item j + 1
    assert ids.tolist() == [[2, 4, 1]] and vals[0].tolist() == pytest.approx([0.9, 0.9, 0.5])
    vals, ids = select_topk(s, 10, group=1)  # k > N: every column, -inf last
    assert ids.tolist() == [[1, 3, 0, 2, 4, 5]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n", [50, 1000, 4096, 10007])
@pytest.mark.parametrize("group", [1, 3, 16, 128])
def test_grouped_selection_equals_the_stable_sort(dtype, n, group):
    g = torch.Generator().manual_seed(n + group)
    s = torch.randint(-4, 5, (40, n), generator=g).to(dtype)  # a few values: ties everywhere
    s[:, 7] = -torch.inf  # masked items
    s[0] = -torch.inf  # a fully masked row
    s[1, :] = 2.0  # a constant row: the k smallest ids
    s[2, -1] = 100.0  # the best item in the tail group
    vals, ids = select_topk(s, 10, group=group)
    ref_vals, ref_ids = reference_topk(s, 10)
    assert torch.equal(ids, ref_ids) and torch.equal(vals, ref_vals)
    assert ids[1].tolist() == list(range(10)) and ids[2, 0] == n - 1


def test_chunked_topk_does_not_depend_on_the_user_chunk():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 3000, generator=g).round(decimals=1)  # ties

    def chunk(lo, hi):
        return scores[lo:hi]

    out = [chunked_topk(chunk, 50, 20, user_chunk=c, group=8) for c in (1, 7, 1024)]
    for vals, ids in out[1:]:
        assert torch.equal(ids, out[0][1]) and torch.equal(vals, out[0][0])
    assert torch.equal(out[0][1], reference_topk(scores, 20)[1])


def test_dot_topk_masks_the_padding_row():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    items = torch.tensor([[9.0, 9.0], [1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 3.0]])
    _, ids = dot_topk(q, items, 2, exclude_first=True, group=1)
    assert ids.tolist() == [[2, 1], [3, 4]]
    _, ids = dot_topk(q, items, 1, group=1)
    assert ids.tolist() == [[0], [0]]


def test_nan_scores_raise():
    s = torch.zeros(3, 2000)
    s[1, 1500] = torch.nan
    with pytest.raises(EvalError, match="NaN"):
        select_topk(s, 5, group=16)
    with pytest.raises(EvalError, match="NaN"):
        chunked_topk(lambda lo, hi: s[lo:hi], 3, 5, user_chunk=2, group=16)
