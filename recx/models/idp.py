"""IDP (Wu et al., ID-centric Pre-training for Recommendation, arXiv 2405.03562; models/idp.md).

One SASRec (`recx.models.sasrec`) pre-trained on the union of the source domains with one shared,
domain-prefixed item-ID table E_pre, plus a cross-domain ID matcher (CDIM,
`recx.models.cdim_training`, trained on the sources' item text and training sequences) whose index
holds every source item. A new domain's item j gets the ID embedding

    e_j = Σ_{i ∈ top-m CDIM neighbours of j among source items} w_ji · E_pre[i]

(softmax of the cosines at temperature τ, or uniform), and the pre-trained encoder scores it:
zero-shot (`recx transfer`, e_j derived, no training) or fine-tuned (`recx finetune`, e_j the
initial value of a new target table).

Which item table scores a domain (`table_kind`):
- `pre`: the pre-training domain itself (the union, or the one source): E_pre. On a union each
  user is ranked within its own source, and training batches come from one source each with the
  softmax over that source's items (`softmax_scope: domain`);
- `part`: one of the sources of the union (recognised by its data hash): its rows of E_pre;
- `target`: the domain prepared by `prepare_finetune`: the fine-tuned target table;
- `retrieved`: any other domain: the retrieved e_j.

Phases A (SASRec) and B (CDIM) run in one `recx pretrain`: the first training epoch binds the model
to its pre-training domain and fits CDIM there (a cached feature), copying its head and index into
persistent buffers, so the checkpoint is self-contained (weights_only loading). CDIM trains under a
forked RNG, so phase A's weights do not depend on the CDIM settings.

Settings (models/idp.md §4): warm = `recx finetune` on all the target's training users; cold =
the same with `train.user_fraction` < 1 (the target's seeded users, EVALUATION §1.3). The fraction
only reduces the TARGET's training: the finetune stage looks its parent up as the sources'
pre-training with every user (`recx.stages.checkpoints.pretrained_model`), so
`recx finetune -m model=idp train.user_fraction=0.1,0.25,0.5,1.0 seed=0,1,2` needs one
`recx pretrain` per seed. `retrieval`, `transfer_encoder`, `finetune` and `optim.finetune` only act
after pre-training (`posttrain_keys`): they are left out of the pretrain checkpoint hash.
"""

from __future__ import annotations

import inspect
import logging
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recx.errors import ConfigError
from recx.models.base import Batches, Capabilities, config_block, within_own_part
from recx.models.modules.cdim import (
    CDIMHead,
    aggregate,
    aggregation_weights,
    ridge_map,
    top_m,
)
from recx.models.modules.sasrec_net import left_pad_positions
from recx.models.modules.transformer import attention_mask, init_normal
from recx.models.sasrec import SASRec

log = logging.getLogger(__name__)

# the SASRec's settings (`model.backbone`): its constructor's, but the recipe
BACKBONE_KEYS = tuple(p for p in inspect.signature(SASRec).parameters
                      if p not in ("n_items", "optim"))
RETRIEVAL_KEYS = ("m", "weighting", "tau", "mode", "chunk", "ridge_l2")
FINETUNE_KEYS = ("freeze", "residual_l2", "freeze_unseen")
FREEZE = ("none", "items", "encoder", "residual")
STAGE_FINETUNE_KEYS = {"epochs", "batch_fraction"}  # read by the finetune stage itself
KEY_BYTES = 16


def hash64(data_hash: str) -> int:
    """A domain's data hash as a positive int64 (the first 15 hex digits); 0 means none."""
    return int(str(data_hash)[:15], 16) or 1


class IDP(SASRec):
    """Parameters (values: conf/model/idp.yaml)
    ----------
    plm_size : int
        Size of the frozen sentence vectors CDIM reads (follows text.dim).
    backbone : dict
        The SASRec's settings (models/baselines.md §2): every parameter of `SASRec` but its
        recipe (max_len, hidden, inner, layers, heads, dropout, attn_dropout, act,
        layer_norm_eps, init_range, norm_first).
    softmax_scope : str
        Pre-training on a union: each batch from one source with the CE softmax over that
        source's items (`domain`), or over every source item (`union`).
    cdim : dict
        The matcher (`recx.models.cdim_training.CDIM_DEFAULTS`): head layer sizes, dropout,
        temperature, behaviour_positive (cooccur | none), cooccur_window, alpha_text, alpha_beh,
        finetune_backbone, optim {batch_size, lr, weight_decay, epochs, steps_per_epoch},
        backbone_optim (finetune_backbone only).
    retrieval : dict
        m (neighbours), weighting (softmax | uniform), tau (softmax temperature), mode
        (id_aggregate | text_only: the ablation mapping the CDIM vector linearly to ID space,
        ridge-fitted on source items with ridge_l2), chunk (queries per search block).
    transfer_encoder : bool
        Fine-tuning starts from the pre-trained encoder (else a freshly initialised one).
    optim : dict
        {pretrain: {...}, finetune: {...}}: SASRec recipes (batch_size, lr, weight_decay,
        max_epochs, eval_every, patience, loss = ce, sampler every_position | prefix, stride).
    finetune : dict
        Defaults of the stage's finetune block: freeze (none | items | encoder | residual, or a
        list of parameter-name prefixes), residual_l2 (L2 weight on δ for freeze=residual),
        freeze_unseen (rows of target items without a training event keep their retrieved
        embedding).
    """

    name = "idp"
    capabilities = Capabilities(zero_shot=True, needs_text=True, needs_time=False,
                                sequential=True, finetune=True, trainable=True)
    # recx pretrain hands IDP the union of its sources (one shared ID table) with `.sources`
    # kept, so CDIM reads each source's own text; batches still come from one source each.
    mixes_domains = True
    # model keys that only act after pre-training: left out of the pretrain checkpoint hash, so
    # a retrieval sweep, a matcher variant or a fine-tuning option reuses one pre-trained model
    # (phase A's weights never depend on CDIM; a checkpoint whose matcher was fitted with other
    # settings gets the requested one from `attach_pretraining`). The head's sizes stay in the
    # hash: they shape the checkpoint's buffers.
    uses_pretraining_domain = True
    posttrain_keys = (
        "retrieval", "transfer_encoder", "finetune", "optim.finetune",
        *(f"cdim.{k}" for k in ("dropout", "temperature", "behaviour_positive",
                                "cooccur_window", "alpha_text", "alpha_beh",
                                "finetune_backbone", "optim", "backbone_optim")))
    recipe_phases = MappingProxyType({"pretrain": SASRec.recipe_keys,
                                      "finetune": SASRec.recipe_keys})

    def __init__(self, n_items: int = 0, *, plm_size: int, backbone: dict, softmax_scope: str,
                 cdim: dict, retrieval: dict, transfer_encoder: bool, optim: dict,
                 finetune: dict):
        from recx.models.cdim_training import resolve_cfg

        bb = config_block("backbone", backbone, BACKBONE_KEYS)
        self.recipes = self.read_recipe(optim)
        for k, r in self.recipes.items():
            if r["loss"] != "ce":
                raise ConfigError(f"model.optim.{k}.loss={r['loss']!r} for idp",
                                  hint="idp trains with the full-softmax ce loss")
        super().__init__(n_items, **bb, optim=self.recipes["pretrain"])
        if softmax_scope not in ("domain", "union"):
            raise ConfigError(f"model.softmax_scope={softmax_scope!r}", hint="use domain or union")
        self.retrieval = config_block("retrieval", retrieval, RETRIEVAL_KEYS)
        if self.retrieval["weighting"] not in ("softmax", "uniform"):
            raise ConfigError(f"model.retrieval.weighting={self.retrieval['weighting']!r}",
                              hint="use softmax or uniform")
        if self.retrieval["mode"] not in ("id_aggregate", "text_only"):
            raise ConfigError(f"model.retrieval.mode={self.retrieval['mode']!r}",
                              hint="use id_aggregate or text_only")
        if int(self.retrieval["m"]) < 1 or float(self.retrieval["tau"]) <= 0:
            raise ConfigError("model.retrieval.m must be >= 1 and model.retrieval.tau > 0")
        self.finetune_defaults = config_block("finetune", finetune, FINETUNE_KEYS)
        self.cdim_cfg = resolve_cfg(cdim)
        self.plm_size, self.softmax_scope = int(plm_size), softmax_scope
        self.transfer_encoder, self.init_range = bool(transfer_encoder), float(bb["init_range"])
        self.cdim = CDIMHead(self.plm_size, self.cdim_cfg["head"], self.cdim_cfg["dropout"])
        self.cdim.requires_grad_(False)  # trained by the CDIM feature, never by the SASRec loop
        # phase B's output and the pre-training domain's identity (persistent: in checkpoints)
        self.register_buffer("cdim_index", torch.zeros(n_items + 1, self.cdim.out_dim))
        self.register_buffer("pre_hash", torch.zeros((), dtype=torch.long))
        self.register_buffer("pre_domain", torch.zeros(n_items + 1, dtype=torch.long))
        self.register_buffer("matcher_key", torch.zeros(KEY_BYTES, dtype=torch.uint8))
        self.phase = "pretrain"
        self.target_hash: str | None = None
        self._frozen_rows: torch.Tensor | None = None  # finetune: rows kept at their retrieval
        self._texts: dict[str, torch.Tensor] = {}
        self._retrieved: dict[str, tuple] = {}
        self._kinds: dict[tuple, tuple[str, int]] = {}

    # ------------------------------------------------------------------ which table
    @property
    def bound(self) -> bool:
        """Whether phase B has run (the model knows its pre-training domain and has an index)."""
        return int(self.pre_hash) != 0

    def table_kind(self, domain) -> str:
        """pre | part | target | retrieved (see the module docstring)."""
        return self._kind(domain)[0]

    def _kind(self, domain) -> tuple[str, int]:
        """(kind, first pre-training row of a part); cached until the binding changes."""
        if self.phase == "finetune" and domain.data_hash == self.target_hash:
            return "target", 0
        key = (domain.data_hash, self.pre_hash.data_ptr(), self.pre_hash._version,
               self.pre_domain._version)
        if key not in self._kinds:
            h = hash64(domain.data_hash)
            kind, lo = "retrieved", 0
            if (h == int(self.pre_hash)) or (not self.bound and domain.n_items == self.n_items):
                kind = "pre"
            elif self.bound:
                rows = torch.nonzero(self.pre_domain == h).ravel()
                if len(rows):
                    kind, lo = "part", int(rows.min())
                    if len(rows) != domain.n_items or int(rows.max()) - lo + 1 != len(rows):
                        raise ConfigError(f"{domain.name} has {domain.n_items} items but "
                                          f"{len(rows)} pre-training rows")
            self._kinds = {key: (kind, lo)}
        return self._kinds[key]

    def item_table(self, domain=None) -> torch.Tensor:
        """[N + 1, d] ID embeddings of `domain`'s items (default: the current domain)."""
        domain = domain if domain is not None else self.domain
        kind, lo = self._kind(domain)
        w = self.net.item_emb.weight
        if kind == "pre":
            return w
        if kind == "part":
            return torch.cat([w[:1], w[lo:lo + domain.n_items]])
        if kind == "target":
            return self._target_table()
        return self.retrieved_table(domain)

    def _target_table(self) -> torch.Tensor:
        if hasattr(self, "target_delta"):
            delta = self.target_delta
            if self.training and self._frozen_rows is not None:
                delta = torch.where(self._frozen_rows[:, None], delta.detach(), delta)
            return self.target_base + delta
        table = self.target_emb
        if self.training and self._frozen_rows is not None:
            table = torch.where(self._frozen_rows[:, None], table.detach(), table)
        return table

    # ------------------------------------------------------------------ retrieval (§3)
    def _text(self, domain) -> torch.Tensor:
        key = domain.data_hash
        if key not in self._texts:
            if self.cdim_cfg["finetune_backbone"]:
                from recx.models.cdim_training import backbone_item_embeddings

                emb = backbone_item_embeddings(domain, self.matcher_key_str(), self.device)
            else:
                from recx.data.features.text import item_embeddings

                emb = item_embeddings(domain)
            if emb.shape[1] != self.plm_size:
                raise ConfigError(f"the text vectors of {domain.name} are {emb.shape[1]}-d but "
                                  f"model.plm_size={self.plm_size}",
                                  hint=f"set model.plm_size={emb.shape[1]} (it follows text.dim)")
            self._texts = {key: torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))}
        return self._texts[key].to(self.device)

    def neighbours(self, domain) -> dict[str, torch.Tensor]:
        """CDIM retrieval for every item of `domain`: `ids` [N + 1, m] (pre-training item ids),
        `sims` (cosines), `weights` (rows sum to one); row 0 and items without text have ids 0
        and weights 0. Only items with text and training events in the pre-training domain are
        retrievable."""
        if not self.bound:
            raise ConfigError("this IDP has no CDIM index: it was never pre-trained",
                              hint="run `recx pretrain model=idp source=[...]` first, then "
                              "transfer or finetune")
        x = self._text(domain)
        has_text = x.abs().sum(1) > 0
        has_text[0] = False
        valid = self.cdim_index.abs().sum(1) > 0
        m = min(int(self.retrieval["m"]), int(valid.sum()))
        was = self.cdim.training
        self.cdim.eval()
        with torch.no_grad():
            c = self.cdim(x[has_text])
            sims, ids = top_m(c, self.cdim_index, m, int(self.retrieval["chunk"]), valid)
            w = aggregation_weights(sims, self.retrieval["weighting"], float(self.retrieval["tau"]))
        self.cdim.train(was)
        n, dev = len(x), x.device
        out = {"ids": torch.zeros(n, m, dtype=torch.long, device=dev),
               "sims": torch.zeros(n, m, device=dev), "weights": torch.zeros(n, m, device=dev),
               "has_text": has_text, "c": torch.zeros(n, c.shape[1], device=dev)}
        out["ids"][has_text], out["sims"][has_text], out["weights"][has_text] = ids, sims, w
        out["c"][has_text] = c
        return out

    def retrieved_table(self, domain) -> torch.Tensor:
        """e_j for every item of `domain` ([N + 1, d], row 0 zero, no gradient); items without
        text get the mean of the retrievable ID embeddings. Cached until a weight changes."""
        w = self.net.item_emb.weight
        version = (w._version, self.cdim_index._version, int(self.pre_hash),
                   tuple(p._version for p in self.cdim.parameters()), str(w.device))
        hit = self._retrieved.get(domain.data_hash)
        if hit is not None and hit[0] == version:
            return hit[1]
        nb = self.neighbours(domain)
        valid = self.cdim_index.abs().sum(1) > 0
        with torch.no_grad():
            if self.retrieval["mode"] == "text_only":
                proj = ridge_map(self.cdim_index[valid], w[valid],
                                 float(self.retrieval["ridge_l2"]))
                e = nb["c"] @ proj
            else:
                e = aggregate(nb["ids"], nb["weights"], w)
            e[~nb["has_text"]] = w[valid].mean(0)
            e[0] = 0.0
        self._retrieved = {domain.data_hash: (version, e.detach())}
        return e.detach()

    # ------------------------------------------------------------------ phase B binding
    def bind(self, domain) -> None:
        """Make `domain` the pre-training domain: fit CDIM on it (cached feature) and copy the
        head, the index and every item's source identity into the persistent buffers."""
        h = hash64(domain.data_hash)
        if self.bound:
            if h != int(self.pre_hash):
                raise ConfigError(f"this IDP was pre-trained on another domain than {domain.name}",
                                  hint="pre-train a fresh model (recx pretrain) for these sources")
            return
        if domain.n_items != self.n_items:
            raise ConfigError(f"IDP built for {self.n_items} items cannot pre-train on "
                              f"{domain.name} ({domain.n_items} items)")
        from recx.models.cdim_training import fit_matcher

        matcher = fit_matcher(domain, self.cdim_cfg, self.plm_size, self.device)
        self.cdim.load_state_dict(matcher.head)
        self.cdim.to(self.device)
        with torch.no_grad():
            self.cdim_index.copy_(torch.from_numpy(matcher.index))
            self.pre_domain.copy_(torch.from_numpy(_item_domains(domain)))
            self.pre_hash.fill_(h)
            key = matcher.key.encode()[:KEY_BYTES].ljust(KEY_BYTES, b"\0")
            self.matcher_key.copy_(torch.tensor(list(key), dtype=torch.uint8))

    def attach_pretraining(self, domain) -> None:
        """After loading a pre-trained checkpoint: `domain` is the domain it was pre-trained on.
        When the checkpoint's matcher was fitted with other CDIM settings than this model's
        (e.g. the text-only ablation of a CDIM pre-training), fit (or load from the cache) the
        requested matcher on that domain and swap it in; phase A's weights stay as they are."""
        from recx.models.cdim_training import fit_matcher, matcher_key

        if not self.bound or hash64(domain.data_hash) != int(self.pre_hash):
            raise ConfigError(f"this IDP was not pre-trained on {domain.name}",
                              hint="pass the pre-training's source= list")
        want = matcher_key(domain, self.cdim_cfg, self.plm_size)
        if want.encode()[:KEY_BYTES] == bytes(self.matcher_key.cpu().tolist()).rstrip(b"\0"):
            return
        log.info("IDP: fitting the matcher of the requested CDIM settings on %s", domain.name)
        matcher = fit_matcher(domain, self.cdim_cfg, self.plm_size, self.device)
        self.cdim.load_state_dict(matcher.head)
        with torch.no_grad():
            self.cdim_index.copy_(torch.from_numpy(matcher.index))
            key = matcher.key.encode()[:KEY_BYTES].ljust(KEY_BYTES, b"\0")
            self.matcher_key.copy_(torch.tensor(list(key), dtype=torch.uint8))
        self._texts, self._retrieved = {}, {}

    def matcher_key_str(self) -> str:
        return bytes(self.matcher_key.cpu().tolist()).rstrip(b"\0").decode()

    # ------------------------------------------------------------------ fine-tuning (§4)
    def prepare_finetune(self, domain, block: dict) -> None:
        """A target table initialised with the retrieved e_j (trainable unless freeze=items;
        freeze=residual trains δ in e_j + δ), the encoder from pre-training (transfer_encoder)
        or re-initialised, and the fine-tuning recipe."""
        given = {k: v for k, v in (block or {}).items() if v is not None}
        unknown = set(given) - set(FINETUNE_KEYS) - STAGE_FINETUNE_KEYS
        if unknown:
            raise ConfigError(f"finetune.{sorted(unknown)[0]} does not apply to idp",
                              hint=f"idp's finetune keys: {', '.join(FINETUNE_KEYS)} (and "
                              "the stage's epochs, batch_fraction)")
        opts = {**self.finetune_defaults, **given}
        freeze = opts["freeze"]
        if isinstance(freeze, str) and freeze not in FREEZE:
            raise ConfigError(f"finetune.freeze={freeze!r} for idp",
                              hint="use none, items, encoder, residual or a list of parameter "
                              "prefixes (e.g. [net.blocks.0])")
        self.phase, self.target_hash = "finetune", domain.data_hash
        self.optim = dict(self.recipes["finetune"])
        self.residual_l2 = float(opts["residual_l2"])
        self.freeze_unseen = bool(opts["freeze_unseen"])
        self._frozen_rows = None
        if self.bound:
            e = self.retrieved_table(domain).clone()
        else:  # the reload path builds the shapes before the checkpoint overwrites them
            e = torch.zeros(domain.n_items + 1, self.net.item_emb.embedding_dim,
                            device=self.device)
        for name in ("target_emb", "target_delta", "target_base"):
            if hasattr(self, name):
                delattr(self, name)
        self.requires_grad_(True)
        self.net.item_emb.requires_grad_(False)  # E_pre only feeds the retrieval
        self.cdim.requires_grad_(False)
        encoder = [m for m in (self.net.pos_emb, self.net.ln, self.net.blocks, self.net.final_ln)
                   if m is not None]
        if not self.transfer_encoder:
            for module in encoder:
                init_normal(module, self.init_range)
        if freeze == "residual":
            self.register_buffer("target_base", e)
            self.target_delta = nn.Parameter(torch.zeros_like(e))
        else:
            self.target_emb = nn.Parameter(e, requires_grad=freeze != "items")
        if freeze == "encoder":
            for module in encoder:
                module.requires_grad_(False)
        if isinstance(freeze, list | tuple) or not isinstance(freeze, str):
            prefixes = tuple(str(p) for p in freeze)
            for name, p in self.named_parameters():
                if name.startswith(prefixes):
                    p.requires_grad = False

    def expected_missing_keys(self, mode: str) -> set[str]:
        """Loading a pretrain checkpoint into a model prepared for fine-tuning (`finetune`): its
        target table is new."""
        if mode != "finetune":
            return set()
        return {k for k in ("target_emb", "target_delta", "target_base") if hasattr(self, k)}

    # ------------------------------------------------------------------ training batches
    def train_batches(self, domain, rng: np.random.Generator, users: np.ndarray) -> Batches:
        if self.phase == "finetune":
            if domain.data_hash != self.target_hash:
                raise ConfigError(f"IDP was prepared for fine-tuning on another domain than "
                                  f"{domain.name}")
            self._frozen_rows = None
            if self.freeze_unseen:  # items no training user consumed keep their retrieval
                _, items = domain.user_items(users, domain.indptr[users] + domain.n_train[users])
                seen = np.bincount(items, minlength=domain.n_items + 1) > 0
                seen[0] = True
                self._frozen_rows = torch.from_numpy(~seen).to(self.device)
            return super().train_batches(domain, rng, users)
        self.bind(domain)
        parts = domain.parts if self.softmax_scope == "domain" and len(domain.parts) > 1 else []
        if not parts:
            return super().train_batches(domain, rng, users)
        ends = np.array([off + n for _, off, n in parts])
        user_part = np.searchsorted(ends, domain.item[domain.indptr[users]])
        streams = [super(IDP, self).train_batches(domain, rng, users[user_part == k])
                   for k in range(len(parts))]
        schedule = rng.permutation(np.repeat(np.arange(len(parts)), [len(s) for s in streams]))

        def gen():
            its = [iter(s) for s in streams]
            for k in schedule.tolist():
                batch = next(its[k])
                batch["part"] = (int(parts[k][1]), int(parts[k][2]))
                yield batch

        return Batches(len(schedule), gen, n_samples=sum(s.n_samples for s in streams))

    # ------------------------------------------------------------------ maths
    def encode(self, items: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """SASRecNet.encode with the item embeddings looked up in `table` (E_pre, a source's
        rows, the retrieved or the fine-tuned target table)."""
        net = self.net
        x = F.embedding(items, table, padding_idx=0) + net.pos_emb(left_pad_positions(items))
        x = net.drop(net.ln(x))
        mask = attention_mask(items, causal=net.causal)
        for block in net.blocks:
            x = block(x, mask)
        return net.final_ln(x) if net.final_ln is not None else x

    def loss(self, batch: dict) -> torch.Tensor:
        items = batch["items"].to(self.device)
        table = self.item_table()
        inp, tgt = items[:, :-1], items[:, 1:]
        h = self.encode(inp, table)
        if batch["last_only"]:
            h, tgt = h[:, -1:], tgt[:, -1:]
            sel = tgt > 0
        else:
            sel = (inp > 0) & (tgt > 0) & batch["target_mask"].to(self.device)
        h_sel, t_sel = h[sel], tgt[sel]
        out = table
        if "part" in batch:  # softmax over this source's items (and the padding column)
            off, n = batch["part"]
            out = torch.cat([table[:1], table[off + 1:off + n + 1]])
            t_sel = t_sel - off
        loss = F.cross_entropy(h_sel @ out.T, t_sel)
        if self.phase == "finetune" and hasattr(self, "target_delta") and self.residual_l2 > 0:
            loss = loss + self.residual_l2 * self.target_delta.pow(2).sum()
        return loss

    def user_state(self, batch) -> torch.Tensor:
        return self.encode(batch.items.to(self.device), self.item_table())[:, -1]

    def score_all(self, batch) -> torch.Tensor:
        """[B, N + 1] dot products with the domain's item table; on the pre-training union each
        user is ranked within its own source (other sources' items −∞)."""
        table = self.item_table()
        items = batch.items.to(self.device)
        scores = self.encode(items, table)[:, -1] @ table.T
        parts = getattr(self.domain, "parts", None) or []
        if len(parts) > 1 and self.table_kind(self.domain) == "pre":
            ends = torch.tensor([off + n for _, off, n in parts])
            scores = within_own_part(scores, items[:, -1], ends)
        return scores

    def score_candidates(self, batch, cand: torch.Tensor) -> torch.Tensor:
        table = self.item_table()
        h = self.encode(batch.items.to(self.device), table)[:, -1]
        return (h[:, None, :] * table[cand.to(self.device)]).sum(-1)

    def ckpt_extra(self) -> dict:
        return {"n_items": int(self.n_items), "phase": self.phase}


def _item_domains(domain) -> np.ndarray:
    """int64 [N + 1]: each item's source (hash64 of the source's data hash; of its name when a
    union lost its `.sources`), 0 at padding."""
    out = np.zeros(domain.n_items + 1, dtype=np.int64)
    parts = domain.parts or [(domain.name, 0, domain.n_items)]
    sources = {d.name: d for d in (getattr(domain, "sources", None) or [])}
    for name, off, n in parts:
        if len(parts) == 1:
            h = hash64(domain.data_hash)
        elif name in sources:
            h = hash64(sources[name].data_hash)
        else:
            from recx.config.hashing import stable_hash

            h = hash64(stable_hash(name, "part"))
        out[off + 1:off + n + 1] = h
    return out
