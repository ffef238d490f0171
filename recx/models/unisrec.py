"""UniSRec (Hou et al., KDD 2022; models/unisrec.md): universal item representations from frozen
text vectors, multi-domain contrastive pre-training, inductive and transductive fine-tuning.

Phases (`self.phase`):

- `pretrain` (a fresh model): sequence–item and sequence–sequence InfoNCE with in-batch negatives.
  Given a union of source domains (`recx pretrain` merges the sources for this model, see
  `mixes_domains`), every batch mixes sequences of all sources, so negatives are multi-domain.
  The augmented view of each sequence is item drop (probability `aug_item_drop_prob`) or word
  drop, both from one Bernoulli keep-mask with P(keep) = 1 − `item_drop`.
- `inductive` / `transductive` (after `prepare_finetune`, or a fresh model with
  `train_mode`): full-softmax CE over all items of the domain with cosine logits / τ;
  transductive adds a new item-ID table (absent from the pretrain checkpoint).

Zero-shot transfer is `fit_inputs(target)` + scoring: the target's text vectors pass through the
pre-trained adaptor and encoder. Scores are cosines (training logits divide them by τ).

Differences from the original code (each an option or a documented fix, §6 of the spec):
same-target pairs are masked to −∞ (`paper_compat.fn_mask_fill_zero` fills 0 as the original);
the augmentation is drawn per sequence (`paper_compat.aug_per_batch`); item drop deletes the
dropped positions and compacts, always keeping the most recent item (the original's scatter keeps
the oldest position and leaves which duplicate survives to the GPU); loading is strict with
declared missing keys; the padding item is no candidate in the fine-tuning softmax (the original
includes item 0 as one extra negative). Speed: the adaptor runs once per distinct item of each
adaptor call (sequences, targets, augmented sequences), so occurrences of an item within one call
share the dropout and gate-noise draw (`moe_per_occurrence=true` draws them per occurrence, as the
original); in eval mode the two are identical.
"""

from __future__ import annotations

import logging
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recx.data.sequences import SeqBatch, prefix_batches, window_batches
from recx.errors import ConfigError
from recx.models.base import Batches, Capabilities, RecModel, config_block, within_own_part
from recx.models.modules.unisrec_net import UniSRecNet

log = logging.getLogger(__name__)

FINETUNE_KEYS = ("mode", "freeze_encoder", "train_input_ln")
COMPAT_SWITCHES = ("fn_mask_fill_zero", "aug_per_batch", "blank_long_fields")
MODES = ("pretrain", "inductive", "transductive")


class UniSRec(RecModel):
    """Parameters (values: conf/model/unisrec.yaml)
    ----------
    plm_size : int
        Size of the frozen text vectors (§2): 384 for text=minilm, 768 for text=bert_base_cls.
    max_len : int
        Longest history window (§1, MAX_ITEM_LIST_LENGTH).
    hidden, inner, layers, heads : int
        Transformer sizes (§3.4; hidden is also the adaptor's output size).
    dropout, attn_dropout : float
        Hidden and attention dropout of the encoder (§3.4).
    act : str;  layer_norm_eps : float
    init_range : float
        Std of the normal initialisation (RecBole initializer_range).
    n_experts : int
        Whitening experts of the MoE adaptor (§3.2).
    adaptor_dropout : float
        Dropout on the text vector inside each expert (§3.1).
    gate_noise_floor : float
        Minimum std of the training-time gate noise (§3.2, quirk 8).
    temperature : float
        τ of every cosine softmax (§3.5, §4).
    lambda_ss : float
        Weight of the sequence–sequence loss (§4.1); 0 disables the augmented view.
    item_drop : float
        P(drop) of the augmentation's Bernoulli mask per position (§4.1).
    aug_item_drop_prob : float
        Probability that a sequence's augmented view is item drop (else word drop) (§4.1).
    word_drop : float
        P(drop) of each word in the word-drop text view, drawn once and cached (§2).
    train_mode : str
        Objective of a model not prepared for fine-tuning (recx pretrain, recx train):
        pretrain = the contrastive losses; inductive | transductive = the fine-tuning CE with
        every weight trainable (the paper's "w/o pre-training" ablation through recx train).
    moe_per_occurrence : bool
        Run the adaptor on every occurrence of an item (the original's random draws) instead of
        once per distinct item of a call (faster; identical in eval mode).
    optim : dict
        {pretrain: {...}, finetune: {...}} recipes: batch_size, lr, weight_decay, max_epochs,
        eval_every, patience, loss (infonce_si_ss | ce_full_cosine), sampler (prefix; the
        fine-tuning recipe also takes every_position: SASRec's windows of max_len + 1 events,
        each predicting its last `stride` events, with batch_size counting windows).
    finetune : dict
        Defaults of the stage's finetune block: mode (transductive | inductive),
        freeze_encoder (bool: position table and blocks frozen), train_input_ln (bool) (§4.2).
    ddp_gather_negatives : bool
        Under DDP, gather every rank's targets and views as negatives (§4.1).
    paper_compat : dict
        fn_mask_fill_zero, aug_per_batch, blank_long_fields (§6: quirks 1, 2, 9).
    """

    name = "unisrec"
    capabilities = Capabilities(zero_shot=True, needs_text=True, needs_time=False,
                                sequential=True, finetune=True, trainable=True)
    # Contrastive batches mix the source domains (ARCHITECTURE §4.3): recx pretrain hands this
    # model the union of its sources (with `.sources`) instead of one domain per batch.
    mixes_domains = True
    # the fine-tuning recipe and defaults act only after pre-training: left out of the pretrain
    # checkpoint hash, so one pre-training serves every fine-tuning variant
    posttrain_keys = ("optim.finetune", "finetune")
    recipe_phases = MappingProxyType({"pretrain": ("batch_size",),
                                      "finetune": ("batch_size", "stride")})

    def __init__(self, n_items: int = 0, *, plm_size: int, max_len: int, hidden: int, inner: int,
                 layers: int, heads: int, dropout: float, attn_dropout: float, act: str,
                 layer_norm_eps: float, init_range: float, n_experts: int,
                 adaptor_dropout: float, gate_noise_floor: float, temperature: float,
                 lambda_ss: float, item_drop: float, aug_item_drop_prob: float,
                 word_drop: float, train_mode: str, moe_per_occurrence: bool, optim: dict,
                 finetune: dict, ddp_gather_negatives: bool, paper_compat: dict):
        self.recipes = self.read_recipe(optim)
        _check_recipes(self.recipes)
        if train_mode not in MODES:
            raise ConfigError(f"model.train_mode={train_mode!r}",
                              hint="use pretrain, inductive or transductive")
        super().__init__(n_items, self.recipes["pretrain" if train_mode == "pretrain"
                                               else "finetune"])
        self.finetune_defaults = config_block("finetune", finetune, FINETUNE_KEYS)
        self.paper_compat = config_block("paper_compat", paper_compat, COMPAT_SWITCHES)
        for key, value in (("item_drop", item_drop), ("word_drop", word_drop),
                           ("aug_item_drop_prob", aug_item_drop_prob)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"model.{key}={value} must be in [0, 1]")
        if temperature <= 0:
            raise ConfigError(f"model.temperature={temperature} must be positive")
        self.max_len, self.hidden, self.init_range = max_len, hidden, init_range
        self.plm_size = int(plm_size)
        self.temperature, self.lambda_ss = float(temperature), float(lambda_ss)
        self.item_drop, self.aug_item_drop_prob = float(item_drop), float(aug_item_drop_prob)
        self.word_drop = float(word_drop)
        self.moe_per_occurrence = bool(moe_per_occurrence)
        self.ddp_gather_negatives = bool(ddp_gather_negatives)
        self.phase = train_mode
        self.net = UniSRecNet(self.plm_size, hidden, inner, layers, heads, dropout, attn_dropout,
                              act, layer_norm_eps, init_range, max_len, n_experts,
                              adaptor_dropout, gate_noise_floor)
        self.item_id_embedding: nn.Embedding | None = None
        if train_mode == "transductive":
            self.item_id_embedding = self._new_id_table(n_items)
        # the current domain's frozen text vectors [N + 1, plm] (never saved)
        self.register_buffer("plm", torch.zeros(1, self.plm_size), persistent=False)
        self._tables: dict[tuple, torch.Tensor] = {}  # (data_hash, view) → text table
        self._part_end: torch.Tensor | None = None  # union domains: last item id of each part
        self._eval_cache: tuple | None = None

    # ------------------------------------------------------------------ domain inputs
    def fit_inputs(self, domain) -> None:
        super().fit_inputs(domain)
        self.plm = self._table(domain, "text").to(self.plm.device)
        parts = getattr(domain, "parts", None) or []
        self._part_end = (torch.tensor([off + n for _, off, n in parts])
                          if len(parts) > 1 else None)
        self._eval_cache = None

    def _table(self, domain, view: str) -> torch.Tensor:
        key = (domain.data_hash, view)
        if key not in self._tables:
            from recx.data.features.text import item_embeddings

            emb = item_embeddings(domain, blank_long=bool(self.paper_compat["blank_long_fields"]),
                                  word_drop_p=self.word_drop if view == "word_drop" else 0.0)
            if emb.shape[1] != self.plm_size:
                raise ConfigError(
                    f"the text vectors of {domain.name} are {emb.shape[1]}-d but "
                    f"model.plm_size={self.plm_size}",
                    hint=f"set model.plm_size={emb.shape[1]} (it follows text.dim by default)")
            self._tables[key] = torch.from_numpy(
                np.ascontiguousarray(emb, dtype=np.float32)).to(self.plm.device)
        return self._tables[key]

    def _new_id_table(self, n_items: int) -> nn.Embedding:
        table = nn.Embedding(n_items + 1, self.hidden, padding_idx=0)
        nn.init.normal_(table.weight, 0.0, self.init_range)
        with torch.no_grad():
            table.weight[0].zero_()
        return table

    # ------------------------------------------------------------------ fine-tuning
    def prepare_finetune(self, domain, block: dict) -> None:
        """Inductive: tune the adaptor (and the input LayerNorm); transductive: also a new ID
        table for `domain`. `freeze_encoder` freezes the position table and the blocks."""
        opts = {**self.finetune_defaults, **{k: v for k, v in (block or {}).items()
                                             if v is not None}}
        mode = opts["mode"]
        if mode not in ("inductive", "transductive"):
            raise ConfigError(f"finetune.mode={mode!r} for unisrec",
                              hint="use finetune.mode=inductive or finetune.mode=transductive")
        for key in ("freeze_encoder", "train_input_ln"):
            if not isinstance(opts[key], bool):
                raise ConfigError(f"finetune.{key}={opts[key]!r} must be true or false")
        self.phase = mode
        self.optim = dict(self.recipes["finetune"])
        for p in self.net.parameters():
            p.requires_grad = True
        for module in (self.net.pos_emb, self.net.blocks):
            for p in module.parameters():
                p.requires_grad = not opts["freeze_encoder"]
        for p in self.net.ln.parameters():
            p.requires_grad = bool(opts["train_input_ln"])
        self.item_id_embedding = None
        if mode == "transductive":
            self.n_items = int(domain.n_items)
            self.item_id_embedding = self._new_id_table(self.n_items).to(self.plm.device)
        self._eval_cache = None

    def expected_missing_keys(self, mode: str) -> set[str]:
        """Loading a pretrain checkpoint into a transductive model: its ID table is new."""
        return {"item_id_embedding.weight"} if mode == "transductive" else set()

    # ------------------------------------------------------------------ training batches
    def train_batches(self, domain, rng: np.random.Generator, users: np.ndarray) -> Batches:
        """One sample per training prefix (RecBole's scheme), shuffled; in the pretrain phase
        each batch also carries the augmented view. Fine-tuning with `sampler=every_position`
        takes SASRec's windows instead (every next item of a window is a target)."""
        bs = int(self.optim["batch_size"])
        if self.optim["sampler"] == "every_position":
            n, windows, n_targets = window_batches(domain, rng, users, self.max_len,
                                                   self.optim["stride"], bs)

            def gen_windows():
                for items, target_mask, _ in windows():
                    yield {"items": torch.from_numpy(items),
                           "target_mask": torch.from_numpy(target_mask),
                           "data_hash": domain.data_hash}

            return Batches(n, gen_windows, n_samples=n_targets)
        n, prefixes, n_samples = prefix_batches(domain, rng, users, self.max_len, bs)
        augment = self.phase == "pretrain" and self.lambda_ss > 0
        if augment and self.aug_item_drop_prob < 1.0:
            self._table(domain, "word_drop")  # build (or load) the word-drop view up front
        data_hash = domain.data_hash

        def gen():
            for hist, pos in prefixes():
                batch = {"items": torch.from_numpy(hist),
                         "targets": torch.from_numpy(domain.item[pos].astype(np.int64)),
                         "data_hash": data_hash}
                if augment:
                    aug, wd = augment_views(hist, rng, self.item_drop, self.aug_item_drop_prob,
                                            bool(self.paper_compat["aug_per_batch"]))
                    batch["aug_items"], batch["aug_word_drop"] = (torch.from_numpy(aug),
                                                                  torch.from_numpy(wd))
                yield batch

        return Batches(n, gen, n_samples=n_samples)

    # ------------------------------------------------------------------ maths
    def loss(self, batch: dict) -> torch.Tensor:
        if self.domain is not None and batch["data_hash"] != self.domain.data_hash:
            raise RuntimeError("a batch of another domain than the one passed to fit_inputs")
        dev = self.device
        if "target_mask" in batch:
            return self._window_loss(batch["items"].to(dev), batch["target_mask"].to(dev))
        items, targets = batch["items"].to(dev), batch["targets"].to(dev)
        if self.phase != "pretrain":
            return self._finetune_loss(items, targets)
        s = F.normalize(self._encode(items), dim=-1)
        table, index = self._adapt(targets)
        t = F.normalize(table[index], dim=-1)
        loss = self._info_nce(s, t, targets)
        if "aug_items" in batch:
            aug, wd = batch["aug_items"].to(dev), batch["aug_word_drop"].to(dev)
            wd_table = self._tables[(batch["data_hash"], "word_drop")] if wd.any() else None
            s_aug = F.normalize(self._encode(aug, wd, wd_table), dim=-1)
            loss = loss + self.lambda_ss * self._info_nce(s, s_aug, targets)
        return loss

    def _finetune_loss(self, items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._cosine_ce(F.normalize(self._encode(items), dim=-1), targets)

    def _window_loss(self, windows: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
        """The fine-tuning CE at every target position of windows [B, L + 1]."""
        inp, tgt = windows[:, :-1], windows[:, 1:]
        table, index = self._adapt(inp)
        h = self.net.encode_all(table, index, inp)
        sel = (inp > 0) & (tgt > 0) & target_mask
        return self._cosine_ce(F.normalize(h[sel], dim=-1), tgt[sel])

    def _cosine_ce(self, s: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Full-softmax CE of normalised sequence states over every item (cosine / τ)."""
        table = F.normalize(self._item_table(), dim=-1)
        logits = (s @ table.T / self.temperature).index_fill(
            1, torch.zeros(1, dtype=torch.long, device=s.device), -torch.inf)  # no padding item
        return F.cross_entropy(logits, targets)

    def _info_nce(self, s: torch.Tensor, pos: torch.Tensor, targets: torch.Tensor):
        cols, col_targets, offset = self._gather(pos, targets)
        return info_nce(s, cols, targets, col_targets, self.temperature,
                        bool(self.paper_compat["fn_mask_fill_zero"]), offset)

    def _gather(self, x: torch.Tensor, ids: torch.Tensor):
        """Under DDP with ddp_gather_negatives: every rank's rows (autograd-aware), their ids
        and this rank's row offset; otherwise (x, ids, 0)."""
        import torch.distributed as dist

        if not (self.ddp_gather_negatives and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return x, ids, 0
        from torch.distributed.nn.functional import all_gather

        world, rank = dist.get_world_size(), dist.get_rank()
        size = torch.tensor([len(x)], device=x.device)
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        sizes = [int(s) for s in sizes]
        pad = max(sizes) - len(x)
        xs = all_gather(F.pad(x, (0, 0, 0, pad)))
        id_list = [torch.zeros(max(sizes), dtype=ids.dtype, device=ids.device)
                   for _ in range(world)]
        dist.all_gather(id_list, F.pad(ids, (0, pad), value=-1))
        cols = torch.cat([xr[:n] for xr, n in zip(xs, sizes, strict=True)])
        col_ids = torch.cat([ir[:n] for ir, n in zip(id_list, sizes, strict=True)])
        return cols, col_ids, sum(sizes[:rank])

    def _adapt(self, ids: torch.Tensor, word_drop: torch.Tensor | None = None,
               wd_table: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Adaptor output (+ ID embedding) of item ids of any shape, as (table [M, D], index
        shaped like `ids`) with table[index] the items' vectors; the adaptor runs once per
        distinct id (or per occurrence, `moe_per_occurrence`). Where `word_drop` is true the
        word-dropped text vector `wd_table[id]` replaces the item's own."""
        n1 = self.plm.shape[0]
        key = ids if word_drop is None else ids + word_drop.long() * n1
        if self.moe_per_occurrence:
            uniq = key.reshape(-1)
            index = torch.arange(len(uniq), device=ids.device).view(ids.shape)
        else:
            uniq, index = torch.unique(key, return_inverse=True)
        is_aug = uniq >= n1 if word_drop is not None else None
        item_ids = uniq if is_aug is None else uniq - n1 * is_aug.long()
        x = self.plm[item_ids]
        if is_aug is not None and is_aug.any():
            x = torch.where(is_aug[:, None], wd_table[item_ids], x)
        v = self.net.moe(x)
        if self.item_id_embedding is not None:
            v = v + self.item_id_embedding(item_ids)
        return v, index

    def _encode(self, items: torch.Tensor, word_drop: torch.Tensor | None = None,
                wd_table: torch.Tensor | None = None) -> torch.Tensor:
        """Sequence representation [B, D] of left-padded windows [B, L] (not normalised); a
        window longer than max_len keeps its most recent max_len items."""
        if items.shape[1] > self.max_len:
            items = items[:, -self.max_len:]
            word_drop = None if word_drop is None else word_drop[:, -self.max_len:]
        if not self.training and word_drop is None:
            table, index = self._item_table(), items  # eval: the cached table of every item
        else:
            table, index = self._adapt(items, word_drop, wd_table)
        return self.net.encode_last(table, index, items)

    def _item_table(self) -> torch.Tensor:
        """[N + 1, D] representation of every item; cached in eval mode until a weight or the
        domain changes (every optimiser step and load bumps the tensors' versions)."""
        if self.training:
            return self._all_items()
        key = (self.plm.data_ptr(), self.phase,
               tuple(p._version for p in self.parameters()))
        if self._eval_cache is None or self._eval_cache[0] != key:
            with torch.no_grad():
                self._eval_cache = (key, self._all_items())
        return self._eval_cache[1]

    def _all_items(self) -> torch.Tensor:
        v = self.net.moe(self.plm)
        if self.item_id_embedding is not None:
            if self.item_id_embedding.num_embeddings != len(v):
                raise ConfigError(
                    f"the transductive ID table has {self.item_id_embedding.num_embeddings - 1} "
                    f"items but the current domain has {len(v) - 1}",
                    hint="a transductive UniSRec is bound to its fine-tuning target")
            v = v + self.item_id_embedding.weight
        return v

    def score_all(self, batch: SeqBatch) -> torch.Tensor:
        """Cosine of the sequence and every item, [B, N + 1]. On a union of domains (source
        validation during mixed pre-training) items of other parts than the user's are −∞,
        so each user is ranked within its own domain."""
        items = batch.items.to(self.device)
        s = F.normalize(self._encode(items), dim=-1)
        scores = s @ F.normalize(self._item_table(), dim=-1).T
        if self._part_end is not None:
            scores = within_own_part(scores, items[:, -1], self._part_end)
        return scores

    def ckpt_extra(self) -> dict:
        return {"n_items": int(self.n_items), "phase": self.phase, "plm_size": self.plm_size}


def info_nce(s: torch.Tensor, cols: torch.Tensor, targets: torch.Tensor,
             col_targets: torch.Tensor, temperature: float, fill_zero: bool = False,
             offset: int = 0) -> torch.Tensor:
    """In-batch InfoNCE (§4.1): mean_j −log(exp(s_j·c_{j+o}/τ) / Σ_j' exp(s_j·c_j'/τ)), with the
    positive of row j in column j + offset (o > 0 when columns were gathered from other ranks).
    Off-diagonal pairs with the same target item are false negatives: their logit is −∞ (recx),
    or 0 as in the original code (`fill_zero`), which still adds exp(0) = 1 to the denominator.
    `s` and `cols` are expected L2-normalised."""
    logits = s @ cols.T / temperature
    rows = torch.arange(len(s), device=s.device)
    same = targets[:, None] == col_targets[None, :]
    same[rows, rows + offset] = False
    logits = logits.masked_fill(same, 0.0 if fill_zero else -torch.inf)
    return F.cross_entropy(logits, rows + offset)


def augment_views(hist: np.ndarray, rng: np.random.Generator, item_drop: float,
                  item_drop_prob: float, per_batch: bool = False):
    """UniSRec's augmented view of left-padded windows [B, L].

    One Bernoulli keep-mask (P(keep) = 1 − item_drop) per position; each sequence (or the whole
    batch, `per_batch`) is then item-dropped with probability `item_drop_prob`, else word-dropped:
    - item drop deletes the dropped positions and re-left-pads, always keeping the last item;
    - word drop keeps the items and marks the dropped positions, whose text vector is swapped
      for the word-dropped one.
    Returns (items [B, L], word_drop_mask [B, L] bool).
    """
    b, length = hist.shape
    real = hist > 0
    keep = rng.random(hist.shape) >= item_drop
    if per_batch:
        use_item_drop = np.full(b, rng.random() < item_drop_prob)
    else:
        use_item_drop = rng.random(b) < item_drop_prob
    kept = real & keep
    kept[:, -1] = real[:, -1]  # the most recent item always survives
    n_kept = kept.sum(1)
    dest = length - n_kept[:, None] + np.cumsum(kept, axis=1) - 1
    rows, cols = np.nonzero(kept)
    dropped = np.zeros_like(hist)
    dropped[rows, dest[rows, cols]] = hist[rows, cols]
    items = np.where(use_item_drop[:, None], dropped, hist)
    word_mask = real & ~keep & ~use_item_drop[:, None]
    return items, word_mask


def _check_recipes(recipes: dict) -> None:
    for phase, loss, samplers in (("pretrain", "infonce_si_ss", ("prefix",)),
                                  ("finetune", "ce_full_cosine", ("prefix", "every_position"))):
        r = recipes[phase]
        if r["loss"] != loss or r["sampler"] not in samplers:
            raise ConfigError(
                f"model.optim.{phase}: loss={r['loss']!r}, sampler={r['sampler']!r}",
                hint=f"unisrec's {phase} recipe is loss={loss}, sampler="
                     + " | ".join(samplers))
        for key in ("batch_size", "max_epochs", "eval_every", "patience"):
            if int(r[key]) <= 0:
                raise ConfigError(f"model.optim.{phase}.{key}={r[key]} must be positive")
        if float(r["lr"]) <= 0:
            raise ConfigError(f"model.optim.{phase}.lr={r['lr']} must be positive")
