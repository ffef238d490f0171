"""Training IDP's cross-domain ID matcher (CDIM, models/idp.md §2.2), cached like a feature.

`fit_matcher(domain, cfg)` trains the matcher on the domain IDP is pre-trained on (one source, or
the union of the sources with `.sources`) and returns its head weights and the retrieval index:

- inputs: the shared frozen sentence vectors x_i (`recx.data.features.text.item_embeddings`, the
  same cache as UniSRec) and the **training** events only: behaviour positives are pairs of items
  adjacent (within `cooccur_window`) in a user's training sequence
  (`recx.data.features.cdim.cooccur_pairs`). Valid and test events, and anything of a target
  domain, are never read;
- loss: L = alpha_text · SimCSE(x) + alpha_beh · InfoNCE(pairs), in-batch negatives, temperature τ;
  every step takes a batch of distinct items (SimCSE) and a batch of pairs drawn uniformly from
  the event pairs, i.e. in proportion to their co-occurrence count (behaviour CL); an epoch is one
  pass over the indexable items (ceil(#items / batch_size) steps) whatever `behaviour_positive`
  is, so the text-only ablation (`behaviour_positive: none`) gets the same number of steps;
- index: c_i = head(x_i) for every item that has text and at least one training event (rows of
  the others are zero, i.e. never retrieved: their ID embeddings were never trained).

The default trains only the head on frozen vectors (CPU-feasible, recx choice).
`finetune_backbone: true` instead runs SimCSE and behaviour CL through the sentence transformer
itself, saves it in the cache entry, and target items are encoded with that fine-tuned encoder
(`backbone_item_embeddings`).

Entries live in `<cache>/features/cdim/<key>/` (`head.pt`, `index.npy`, `meta.json`, and
`encoder/` for a fine-tuned backbone). The key covers the domains' data and text identity
(`embedding_key` of each part), the CDIM settings and the seed. Training runs under a forked torch
RNG, so a cache hit and a miss leave the caller's random stream identical.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from recx.config.hashing import stable_hash
from recx.data.features.cdim import cooccur_pairs, indexable_items
from recx.data.features.text import embedding_key, item_embeddings, item_texts, load_encoder
from recx.errors import ConfigError, ModelUnavailableError
from recx.models.modules.cdim import CDIMHead, behaviour_loss, info_nce, simcse_loss

log = logging.getLogger(__name__)


FEATURE_VERSION = 1


KEY_LENGTH = 16


POSITIVES = ("cooccur", "none")


CDIM_DEFAULTS = {
    "head": [512, 256], "dropout": 0.1, "temperature": 0.05, "behaviour_positive": "cooccur",
    "cooccur_window": 1, "alpha_text": 1.0, "alpha_beh": 1.0, "finetune_backbone": False,
    "optim": {"batch_size": 1024, "lr": 1e-3, "weight_decay": 0.0, "epochs": 20,
              "steps_per_epoch": None},
    "backbone_optim": {"batch_size": 64, "lr": 3e-5, "epochs": 1, "steps_per_epoch": None},
}


@dataclass
class Matcher:
    """A trained CDIM: head weights, the index over the pre-training items, its cache key."""

    head: dict[str, torch.Tensor]
    index: np.ndarray  # float32 [N + 1, k]; zero rows (padding, no text, no training) excluded
    key: str
    meta: dict = field(default_factory=dict)


def resolve_cfg(cfg: dict | None) -> dict:
    """`cfg` over the defaults, checked (unknown keys and values name the valid ones)."""
    cfg = dict(cfg or {})
    unknown = set(cfg) - set(CDIM_DEFAULTS)
    if unknown:
        raise ConfigError(f"model.cdim has unknown keys {sorted(unknown)}",
                          hint=f"valid keys: {', '.join(CDIM_DEFAULTS)}")
    out = {**CDIM_DEFAULTS, **cfg}
    for sub in ("optim", "backbone_optim"):
        extra = set(cfg.get(sub) or {}) - set(CDIM_DEFAULTS[sub])
        if extra:
            raise ConfigError(f"model.cdim.{sub} has unknown keys {sorted(extra)}",
                              hint=f"valid keys: {', '.join(CDIM_DEFAULTS[sub])}")
        out[sub] = {**CDIM_DEFAULTS[sub], **(cfg.get(sub) or {})}
    if out["behaviour_positive"] not in POSITIVES:
        raise ConfigError(
            f"model.cdim.behaviour_positive={out['behaviour_positive']!r}",
            hint="use cooccur (pairs adjacent in source training sequences) or none (the "
            "text-only matcher ablation); id_neighbors and text_to_id of the spec need the "
            "pre-trained ID table before CDIM training and are not implemented")
    if int(out["cooccur_window"]) < 1:
        raise ConfigError(f"model.cdim.cooccur_window={out['cooccur_window']} must be >= 1")
    if float(out["temperature"]) <= 0:
        raise ConfigError(f"model.cdim.temperature={out['temperature']} must be positive")
    out["head"] = [int(h) for h in out["head"]]
    return out



# -------------------------------------------------------------------------------------- cache


def _parts(domain) -> list:
    return list(getattr(domain, "sources", None) or [domain])


def matcher_key(domain, cfg: dict, plm_size: int) -> str:
    env = domain.env
    text_cfg = getattr(env, "text", None)
    offline = bool(getattr(env, "offline", False))
    texts = [embedding_key(d, text_cfg, offline) for d in _parts(domain)]
    return stable_hash({"data": domain.data_hash, "texts": texts, "cdim": cfg,
                        "plm": int(plm_size), "seed": int(getattr(env, "seed", 0)),
                        "version": FEATURE_VERSION}, length=KEY_LENGTH)


_MEMORY: dict[str, Matcher] = {}


def fit_matcher(domain, cfg: dict | None, plm_size: int, device: str | torch.device = "cpu"
                ) -> Matcher:
    """The CDIM of `domain` (trained, or loaded from the cache)."""
    cfg = resolve_cfg(cfg)
    env = domain.env
    key = matcher_key(domain, cfg, plm_size)
    if env is None or getattr(env, "cache_root", None) is None:
        if key not in _MEMORY:
            _MEMORY[key] = _train(domain, cfg, plm_size, device, key, None)
        return _MEMORY[key]
    from recx.store import Store

    entry = matcher_entry(env.cache_root, key)
    facts = {"kind": "cdim", "dataset": domain.name, "data_hash": domain.data_hash,
             "feat_hash": key, "cdim": cfg}

    def build(tmp: Path) -> None:
        m = _train(domain, cfg, plm_size, device, key, tmp)
        torch.save(m.head, tmp / "head.pt")
        np.save(tmp / "index.npy", m.index)
        facts.update(m.meta)

    Store(env.cache_root).get_or_build(entry, build, meta=facts)
    return Matcher(torch.load(entry / "head.pt", weights_only=True),
                   np.load(entry / "index.npy"), key)


def matcher_entry(cache_root, key: str) -> Path:
    return Path(cache_root) / "features" / "cdim" / key



# ----------------------------------------------------------------------------------- training


def _train(domain, cfg: dict, plm_size: int, device, key: str, workdir: Path | None) -> Matcher:
    seed = int(getattr(domain.env, "seed", 0))
    x_np = item_embeddings(domain)
    if x_np.shape[1] != plm_size:
        raise ConfigError(f"the text vectors of {domain.name} are {x_np.shape[1]}-d but "
                          f"model.plm_size={plm_size}",
                          hint=f"set model.plm_size={x_np.shape[1]} (it follows text.dim)")
    ok = indexable_items(domain, x_np)
    if ok.sum() < 2:
        raise ConfigError(f"{domain.name} has {int(ok.sum())} items with text and training "
                          "events; CDIM needs at least 2")
    pairs = cooccur_pairs(domain, int(cfg["cooccur_window"]))
    pairs = pairs[ok[pairs[:, 0]] & ok[pairs[:, 1]]]
    t0 = time.time()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = CDIMHead(plm_size, cfg["head"], float(cfg["dropout"]))
        if cfg["finetune_backbone"]:
            texts = [t for d in _parts(domain) for t in item_texts(d)[1:]]
            history, x_np = _train_backbone(domain, texts, head, pairs, ok, cfg, seed, device,
                                            workdir)
        else:
            history = _train_head(head, torch.from_numpy(x_np), pairs, ok, cfg, seed, device)
    head.eval().cpu()
    with torch.no_grad():
        index = head(torch.from_numpy(x_np)).numpy().astype(np.float32)
    index[~ok] = 0.0
    meta = {"n_pairs": len(pairs), "n_indexed": int(ok.sum()), "losses": history,
            "seconds": round(time.time() - t0, 2)}
    log.info("CDIM on %s: %d positive pairs, %d indexed items, %d epochs in %.1fs (last loss "
             "%.4f)", domain.name, len(pairs), int(ok.sum()), len(history), meta["seconds"],
             history[-1] if history else float("nan"))
    return Matcher({k: v.detach().clone() for k, v in head.state_dict().items()}, index, key,
                   meta)


def _steps(cfg_optim: dict, n_items: int) -> tuple[int, int]:
    """(batch size, steps per epoch): an epoch is one pass over the indexable items."""
    bs = int(cfg_optim["batch_size"])
    return bs, int(cfg_optim.get("steps_per_epoch") or -(-n_items // bs))


def _step_batches(rng: np.random.Generator, pairs: np.ndarray, items: np.ndarray, bs: int,
                  steps: int, use_pairs: bool):
    """Per step: (≤ bs pair rows drawn uniformly from the event pairs, i.e. in proportion to
    their co-occurrence count, or None; ≤ bs distinct items from a shuffled pass over `items`)."""
    order, at = rng.permutation(items), 0
    for _ in range(steps):
        pb = pairs[rng.integers(0, len(pairs), size=min(bs, len(pairs)))] \
            if use_pairs and len(pairs) else None
        if at >= len(order):
            order, at = rng.permutation(items), 0
        ib = order[at:at + bs]
        at += bs
        yield pb, ib


def _loss(head, xi, pair_x, pair_ids, item_ids, cfg) -> torch.Tensor:
    tau = float(cfg["temperature"])
    loss = float(cfg["alpha_text"]) * simcse_loss(head, xi, tau, item_ids)
    if pair_x is not None:
        loss = loss + float(cfg["alpha_beh"]) * behaviour_loss(
            head, pair_x[0], pair_x[1], tau, pair_ids[:, 0], pair_ids[:, 1])
    return loss


def _train_head(head, x: torch.Tensor, pairs: np.ndarray, ok: np.ndarray, cfg: dict, seed: int,
                device) -> list[float]:
    """Adam on the head only (frozen sentence vectors); returns the mean loss per epoch."""
    opt_cfg = cfg["optim"]
    head.to(device).train()
    x = x.to(device)
    opt = torch.optim.Adam(head.parameters(), lr=float(opt_cfg["lr"]),
                           weight_decay=float(opt_cfg["weight_decay"]))
    bs, steps = _steps(opt_cfg, int(ok.sum()))
    use_pairs = cfg["behaviour_positive"] == "cooccur"
    items = np.flatnonzero(ok)
    history = []
    for epoch in range(int(opt_cfg["epochs"])):
        rng = np.random.default_rng([seed, epoch, 7])
        total = 0.0
        for pb, ib in _step_batches(rng, pairs, items, bs, steps, use_pairs):
            ids = torch.from_numpy(ib).to(device)
            pair_ids = torch.from_numpy(pb).to(device) if pb is not None else None
            pair_x = (x[pair_ids[:, 0]], x[pair_ids[:, 1]]) if pb is not None else None
            loss = _loss(head, x[ids], pair_x, pair_ids, ids, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        history.append(round(total / steps, 5))
        log.info("CDIM epoch %d/%d: loss %.4f", epoch + 1, int(opt_cfg["epochs"]), history[-1])
    return history



# ----------------------------------------------------------------- fine-tuned sentence encoder


def _tokenize(model, texts: list[str]) -> dict:
    fn = getattr(model, "preprocess", None) or model.tokenize
    return fn(texts)


def _st_embed(model, texts: list[str], device) -> torch.Tensor:
    feats = {k: v.to(device) if isinstance(v, torch.Tensor) else v
             for k, v in _tokenize(model, texts).items()}
    return model(feats)["sentence_embedding"]


def _train_backbone(domain, texts: list[str], head, pairs: np.ndarray, ok: np.ndarray, cfg: dict,
                    seed: int, device, workdir: Path | None):
    """True SimCSE through the sentence transformer (its own dropout + the head's), plus the
    behaviour loss; saves the fine-tuned encoder to `workdir/encoder` and returns (history,
    the fine-tuned vectors of the domain's items [N + 1, d])."""
    import copy


    env = domain.env
    base = load_encoder(getattr(env, "text", None), bool(getattr(env, "offline", False)))
    if not hasattr(base, "model"):
        raise ConfigError("cdim.finetune_backbone=true needs a sentence-transformers encoder",
                          hint="use text=minilm (not text=hashing) or cdim.finetune_backbone=false")
    model = copy.deepcopy(base.model).to(device).train()
    opt_cfg = cfg["backbone_optim"]
    params = [*model.parameters(), *head.parameters()]
    head.to(device).train()
    opt = torch.optim.AdamW(params, lr=float(opt_cfg["lr"]))
    bs, steps = _steps(opt_cfg, int(ok.sum()))
    use_pairs = cfg["behaviour_positive"] == "cooccur"
    items = np.flatnonzero(ok)
    all_texts = ["", *texts]
    tau = float(cfg["temperature"])
    history = []
    for epoch in range(int(opt_cfg["epochs"])):
        rng = np.random.default_rng([seed, epoch, 7])
        total = 0.0
        for pb, ib in _step_batches(rng, pairs, items, bs, steps, use_pairs):
            ids = torch.from_numpy(ib).to(device)
            batch = [all_texts[i] for i in ib.tolist()]
            z1 = head(_st_embed(model, batch, device))
            z2 = head(_st_embed(model, batch, device))
            loss = float(cfg["alpha_text"]) * info_nce(z1, z2, tau, ids)
            if pb is not None:
                pid = torch.from_numpy(pb).to(device)
                ci = head(_st_embed(model, [all_texts[i] for i in pb[:, 0].tolist()], device))
                cj = head(_st_embed(model, [all_texts[i] for i in pb[:, 1].tolist()], device))
                loss = loss + float(cfg["alpha_beh"]) * 0.5 * (
                    info_nce(ci, cj, tau, pid[:, 1]) + info_nce(cj, ci, tau, pid[:, 0]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        history.append(round(total / steps, 5))
    model.eval()
    if workdir is not None:
        model.save(str(workdir / "encoder"))
    return history, _encode_texts(model, all_texts, device)


def _encode_texts(model, texts: list[str], device, batch_size: int = 256) -> np.ndarray:
    """[len(texts), d] vectors of a (fine-tuned) encoder; empty texts get zero rows."""
    get_dim = (getattr(model, "get_embedding_dimension", None)  # renamed in v6
               or model.get_sentence_embedding_dimension)
    dim = int(get_dim())
    out = np.zeros((len(texts), dim), dtype=np.float32)
    nonempty = [i for i, t in enumerate(texts) if t]
    model.eval()
    with torch.no_grad():
        for s in range(0, len(nonempty), batch_size):
            sel = nonempty[s:s + batch_size]
            out[sel] = _st_embed(model, [texts[i] for i in sel], device).float().cpu().numpy()
    return out


def backbone_item_embeddings(domain, key: str, device="cpu") -> np.ndarray:
    """[N + 1, d] vectors of `domain`'s items from the fine-tuned encoder of matcher `key`
    (cdim.finetune_backbone=true), cached next to the text embeddings."""
    from sentence_transformers import SentenceTransformer

    from recx.store import Store

    env = domain.env
    if env is None or getattr(env, "cache_root", None) is None:
        raise ConfigError(f"{domain.name} has no feature cache: the fine-tuned CDIM encoder "
                          "lives there", hint="run through a recx stage (it sets domain.env)")
    enc_dir = matcher_entry(env.cache_root, key) / "encoder"
    if not enc_dir.is_dir():
        raise ModelUnavailableError(
            f"the fine-tuned CDIM encoder {key} is not in the cache ({enc_dir})",
            hint="the cache was cleared after pre-training: delete the IDP pretrain checkpoint "
            "and run `recx pretrain model=idp ...` again (cdim.finetune_backbone=true)")
    entry = Store(env.cache_root).entry("features", domain.name,
                                        f"cdimtext-{stable_hash(domain.data_hash, key)}")

    def build(tmp: Path) -> None:
        model = SentenceTransformer(str(enc_dir), device=str(device))
        np.save(tmp / "emb.npy", _encode_texts(model, item_texts(domain), device))

    Store(env.cache_root).get_or_build(entry, build, meta={
        "kind": "cdim_text", "dataset": domain.name, "data_hash": domain.data_hash,
        "matcher": key})
    return np.load(entry / "emb.npy")
