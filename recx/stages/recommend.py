"""recx recommend: the top-k items of every user (or of a list of users), with original ids.

The model is obtained exactly as the stage that made it finds it (`recommend.from`):
  train        the in-domain checkpoint by hash (`dataset=`; Pop is counted);
  transfer     the pretrained checkpoint by hash, `fit_inputs(target)` (`source=`, `target=`);
  finetune     the finetuned checkpoint by hash;
  interpolate  both of the above blended at α*, chosen on validation as `recx interpolate`
               chooses it (`base=`), or at `recommend.alpha`.
Each user's whole sequence (every split) is the history; the recommendation is the next item,
at one second after the domain's last event. Candidates follow the domain's candidate policy
(EVALUATION §3): where it masks the history, none of the user's items is recommended again.
Items are ordered by score descending, then item id ascending (EVALUATION §4).

Memory: users are scored in chunks of at most `eval.max_scores` scores ([users, items + 1] per
chunk, never the whole matrix), and each chunk's top-k is selected in place
(`recx.eval.topk`), so a 1M-item catalogue needs a few hundred MB beyond the model.
Output: recommendations.parquet / .csv in the run dir, columns user, rank, item, score and the
item's text fields.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recx.errors import ConfigError
from recx.eval.evaluator import resolve_mask
from recx.eval.topk import chunked_topk
from recx.stages import StageResult
from recx.stages.blending import (
    base_model,
    blend_scorer,
    check_select,
    chosen_alpha,
    evaluate_blends,
    transferred_model,
)
from recx.stages.checkpoints import finetuned_model, in_domain_model, pretrained_model
from recx.store import atomic_write_bytes

log = logging.getLogger(__name__)

# raw scores of a batch ([V, B, N + 1], V score rows per user) → candidate mask [B, N + 1]
# → the scores to rank [B, N + 1], −∞ where masked
Combine = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SOURCES = ("train", "transfer", "finetune", "interpolate")


def made_by(cfg) -> str:
    """`recommend.from`, with auto resolved from the overrides given."""
    how = str(cfg.recommend["from"])
    if how == "auto":
        if cfg.get("dataset") is not None:
            how = "train"
        elif cfg.get("target") is None:
            raise ConfigError(
                "recx recommend needs the overrides of the stage that made the model",
                hint="recx recommend model=sasrec dataset=<d> (a trained model), or model=preprec "
                     "source=<s> target=<t> (a transferred one; add base=<m> for an "
                     "interpolation)")
        else:
            how = "interpolate" if cfg.get("base") is not None else "transfer"
    if how not in SOURCES:
        raise ConfigError(f"recommend.from={how!r}", hint=f"use auto or one of {list(SOURCES)}")
    need = "dataset" if how == "train" else "target"
    if cfg.get(need) is None or (how == "interpolate" and cfg.get("base") is None):
        example = {"train": "dataset=<d>", "interpolate": "base=<m> source=<s> target=<t>"}.get(
            how, "source=<s> target=<t>")
        raise ConfigError(f"recommend.from={how} needs {example}",
                          hint=f"recx recommend model={cfg.model.name} {example}")
    return how


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    rc = cfg.recommend
    k = int(rc.k)
    if k < 1:
        raise ConfigError(f"recommend.k={k}", hint="ask for at least one item: recommend.k=10")
    how = made_by(cfg)
    domain, score_fn, combine, max_len, label = _scorer(ctx, how)
    users = user_ids(domain, rc.users)
    mask = resolve_mask(cfg.eval, domain)
    log.info("%s: top-%d of %d users over %d items (%s history masked)", label, k, len(users),
             domain.n_items, "the" if mask else "no")
    scores, items = top_items(domain, score_fn, users, k, mask_history=mask, max_len=max_len,
                              combine=combine, max_scores=int(cfg.eval.max_scores),
                              batch_users=int(cfg.eval.batch_users), device=ctx.device)
    frame = recommendation_frame(domain, users, scores, items, text=bool(rc.text))
    written = write(frame, ctx.run_dir, [str(f) for f in rc.formats])
    log.info("%d recommendations → %s", len(frame), ", ".join(p.name for p in written))
    return StageResult([], write=False, table=frame,
                       title=f"{label} recommendations on {domain.name}")


# ----------------------------------------------------------------------------------- models
def _scorer(ctx, how: str):
    """(domain, score_fn(batch) → [V, B, N + 1], combine, history window, label) of the model
    as `how` made it."""
    cfg = ctx.cfg
    if how == "train":
        domain = ctx.domain(cfg.dataset)
        model, _ = in_domain_model(ctx, cfg.model, domain, ckpt=cfg.get("ckpt", "auto"))
        return (domain, _single(model), _plain, model.max_len, model.name)
    domain = ctx.domain(cfg.target)
    if how == "transfer":
        model, _ = pretrained_model(ctx, fit_to=domain)
    elif how == "finetune":
        model, _ = finetuned_model(ctx, domain)
    else:
        return (domain, *_blend(ctx, domain))
    model.eval()
    return (domain, _single(model), _plain, model.max_len, model.name)


def _single(model):
    model.eval()
    return lambda batch: model.score_all(batch).float().unsqueeze(0)


def _plain(s: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    return s[0].masked_fill(masked, -torch.inf)


def _blend(ctx, domain):
    """The transferred model and the in-domain base blended at α (EVALUATION §7: each model's
    scores normalised per user over the candidates, then α·T + (1 − α)·D)."""
    from recx.eval.interpolation import blender

    cfg = ctx.cfg
    ip = cfg.interpolate
    t_model, _ = transferred_model(ctx, domain)
    d_model, _ = base_model(ctx, domain)
    t_model.eval()
    d_model.eval()
    alpha = cfg.recommend.alpha
    if alpha is None:  # the α that `recx interpolate` selects with the same settings
        alphas = [float(a) for a in ip.alphas]
        check_select(ip, alphas)
        _, results = evaluate_blends(ctx, domain, t_model, d_model, splits=("valid",))
        alpha = alphas[chosen_alpha(ctx, results["valid"])[0]]
        log.info("α* = %.2f (chosen on validation, interpolate.select=%s)", alpha, ip.select)
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"recommend.alpha={alpha}", hint="a blend weight in [0, 1]")
    both, max_len = blend_scorer(t_model, d_model)
    post = blender([alpha], str(ip.norm))
    label = f"{t_model.name}+{d_model.name} (α={alpha:.2f})"
    return (lambda batch: both(batch, None)), (lambda s, m: post(s, m)[0]), max_len, label


# ---------------------------------------------------------------------------------- ranking
def user_ids(domain, wanted) -> np.ndarray:
    """Internal ids of the users asked for by original id (a list, or a file with one per
    line); every user when `wanted` is null."""
    if wanted is None:
        return np.arange(1, domain.n_users + 1, dtype=np.int64)
    if isinstance(wanted, str):
        path = Path(wanted)
        if not path.is_file():
            raise ConfigError(f"recommend.users={wanted!r}: no such file",
                              hint="a file with one original user id per line, or a list: "
                                   "'recommend.users=[u1,u2]'")
        raw = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        raw = [str(u) for u in wanted]
    index = pd.Index(domain.users["raw_id"].astype(str))
    pos = index.get_indexer(raw)
    if (pos < 0).any():
        unknown = [u for u, p in zip(raw, pos, strict=True) if p < 0]
        raise ConfigError(f"recommend.users: {len(unknown)} of {len(raw)} users are not in "
                          f"{domain.name}: {', '.join(unknown[:5])}"
                          + (" …" if len(unknown) > 5 else ""),
                          hint="use the user ids of the input data (users removed by the "
                               "data set's filters have no recommendations)")
    return domain.users["user"].to_numpy(np.int64)[pos]


def top_items(domain, score_fn, users: np.ndarray, k: int, *, mask_history: bool,
              max_len: int, combine: Combine = _plain, max_scores: int = 50_000_000,
              batch_users: int = 1024, device: str | torch.device = "cpu",
              ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items of `users` after their whole sequences: (scores [U, k] float32, item ids
    [U, k] int64), score descending then item id ascending; −∞ where fewer than k items are
    candidates. `score_fn(batch)` → [V, B, N + 1] (V ≤ 2: a blend scores with two models);
    at most `max_scores` scores per score row are held at once."""
    from recx.data.sequences import next_item_batch

    n1 = domain.n_items + 1
    chunk = max(1, min(batch_users, max_scores // (2 * n1)))
    query_ts = int(domain.ts.max()) + 1 if domain.n_events else 0

    def score_chunk(lo: int, hi: int) -> torch.Tensor:
        sel = users[lo:hi]
        batch = next_item_batch(domain, sel, max_len, np.full(len(sel), query_ts)).to(device)
        with torch.no_grad():
            s = score_fn(batch)
        masked = torch.zeros(len(sel), n1, dtype=torch.bool, device=s.device)
        masked[:, 0] = True  # padding
        if mask_history:
            rows, items = domain.user_items(sel)
            masked[torch.from_numpy(rows).to(s.device),
                   torch.from_numpy(items.astype(np.int64)).to(s.device)] = True
        return combine(s, masked)

    vals, ids = chunked_topk(score_chunk, len(users), k, user_chunk=chunk)
    return vals.numpy(), ids.numpy()


# ----------------------------------------------------------------------------------- output
def recommendation_frame(domain, users: np.ndarray, scores: np.ndarray, items: np.ndarray,
                         text: bool = True) -> pd.DataFrame:
    """One row per (user, rank): original user and item ids, 1-based rank, score, and the
    item's text fields. Entries that are no candidate (−∞: fewer than k items left) are
    dropped."""
    k = items.shape[1] if items.ndim == 2 else 0
    keep = np.isfinite(scores).ravel()
    user_raw = domain.users["raw_id"].to_numpy(dtype=object)  # row u − 1 is user u
    item_table = domain.items.set_index("item")
    item_raw = item_table["raw_id"]
    flat = items.ravel()[keep]
    frame = pd.DataFrame({
        "user": user_raw[np.repeat(users, k)[keep] - 1],
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(users))[keep],
        "item": item_raw.reindex(flat).to_numpy(dtype=object),
        "score": scores.ravel()[keep].astype(np.float32),
    })
    if text:
        for field in [f for f in domain.text_fields if f in item_table.columns]:
            frame[field] = item_table[field].reindex(flat).to_numpy(dtype=object)
    return frame


def write(frame: pd.DataFrame, run_dir: Path, formats: list[str]) -> list[Path]:
    """recommendations.<format> in the run dir, each written whole or not at all."""
    import io

    unknown = sorted(set(formats) - {"parquet", "csv"})
    if unknown or not formats:
        raise ConfigError(f"recommend.formats={formats}", hint="[parquet, csv] or either")
    out = []
    for fmt in formats:
        buf = io.BytesIO()
        if fmt == "parquet":
            frame.to_parquet(buf, index=False)
        else:
            frame.to_csv(buf, index=False)
        path = Path(run_dir) / f"recommendations.{fmt}"
        atomic_write_bytes(path, buf.getvalue())
        out.append(path)
    return out
