"""BERT4Rec (Sun et al. 2019) with RecBole 1.2.1 defaults (models/baselines.md §3).

Training follows RecBole's masked-item-sequence transform on its prefix samples (every training
prefix's last ≤ max_len items; the next item itself is not used): per batch, with probability
`ft_ratio` every sample masks only its most recent item (the inference condition); otherwise
each real item is replaced by `[MASK]` with probability `mask_ratio`. The loss is full-softmax CE
at the masked positions, at most `max_predictions` of them per sample (the most recent ones,
RecBole's `mask_item_length = int(mask_ratio · max_len)`), averaged over all masked positions
of the batch. Inference appends `[MASK]` to the last max_len − 1 items and scores at it.

Documented differences from RecBole 1.2.1 (fixes, not options):
- RecBole pads its masked-index list with 0, then drops index 0 from the loss, so a masked
  *oldest* item never counts (for a one-item prefix: the whole sample). recx counts it.
- RecBole's test-time reconstruction shifts every history left by one, so histories shorter than
  max_len lose their oldest item. recx keeps the last max_len − 1 items.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from recx.data.sequences import SeqBatch, prefix_batches
from recx.errors import ConfigError
from recx.models.base import Batches, Capabilities, RecModel
from recx.models.modules.bert4rec_net import BERT4RecNet


class BERT4Rec(RecModel):
    """Parameters (values: conf/model/bert4rec.yaml)
    ----------
    max_len : int
        Positions of the encoder (RecBole MAX_ITEM_LIST_LENGTH): training samples hold the last
        max_len items of a prefix; inference holds max_len − 1 items and `[MASK]`.
    hidden, inner, layers, heads : int
        Transformer sizes (RecBole hidden_size, inner_size, n_layers, n_heads).
    dropout, attn_dropout : float
        Hidden and attention dropout (RecBole hidden_dropout_prob, attn_dropout_prob).
    act : str;  layer_norm_eps : float
    init_range : float
        Std of the normal initialisation (RecBole initializer_range).
    mask_ratio : float
        Probability that a real item of a sample is replaced by `[MASK]` (RecBole mask_ratio).
    ft_ratio : float
        Probability of the "mask only the most recent item" transform (RecBole ft_ratio).
    ft_unit : str
        What one ft_ratio draw decides: `batch` (RecBole: the whole batch) or `sample`.
    max_predictions : int or None
        Masked positions per sample that carry loss, the most recent ones; None =
        int(mask_ratio · max_len) as RecBole.
    ensure_mask : bool
        Mask one random real item in samples where the random draw masked none (such samples
        carry no loss in RecBole).
    optim : dict
        Training recipe: the shared keys (loss ce_masked, sampler prefix_masked) plus
        batch_size (RecBole's).
    """

    name = "bert4rec"
    capabilities = Capabilities(sequential=True)
    recipe_keys = ("batch_size",)

    def __init__(self, n_items: int = 0, *, max_len: int, hidden: int, inner: int, layers: int,
                 heads: int, dropout: float, attn_dropout: float, act: str,
                 layer_norm_eps: float, init_range: float, mask_ratio: float, ft_ratio: float,
                 ft_unit: str, max_predictions: int | None, ensure_mask: bool, optim: dict):
        super().__init__(n_items, self.read_recipe(optim))
        if self.optim["loss"] != "ce_masked" or self.optim["sampler"] != "prefix_masked":
            raise ConfigError(
                f"model.optim.loss={self.optim['loss']!r}, sampler={self.optim['sampler']!r} "
                "for bert4rec", hint="bert4rec trains with loss=ce_masked, sampler=prefix_masked")
        if ft_unit not in ("batch", "sample"):
            raise ConfigError(f"model.ft_unit={ft_unit!r}", hint="use batch (RecBole) or sample")
        if not 0.0 < mask_ratio <= 1.0 or not 0.0 <= ft_ratio <= 1.0:
            raise ConfigError(f"model.mask_ratio={mask_ratio}, model.ft_ratio={ft_ratio}",
                              hint="mask_ratio in (0, 1], ft_ratio in [0, 1]")
        if max_len < 2:
            raise ConfigError(f"model.max_len={max_len}", hint="bert4rec needs max_len >= 2")
        self.max_len = max_len
        self.mask_ratio, self.ft_ratio, self.ft_unit = mask_ratio, ft_ratio, ft_unit
        self.max_predictions = int(max_predictions if max_predictions is not None
                                   else int(mask_ratio * max_len))
        if self.max_predictions < 1:
            raise ConfigError(f"model.max_predictions resolves to {self.max_predictions}",
                              hint="set model.max_predictions >= 1")
        self.ensure_mask = ensure_mask
        self.net = BERT4RecNet(n_items, max_len, hidden, inner, layers, heads, dropout,
                               attn_dropout, act, layer_norm_eps, init_range)

    # ------------------------------------------------------------------ training batches
    def mask_batch(self, hist: np.ndarray, rng: np.random.Generator) -> dict:
        """RecBole's masked-item transform of left-padded histories [B, L] (numpy)."""
        real = hist > 0
        b, length = hist.shape
        if self.ft_unit == "batch":
            last_only = np.full(b, rng.random() < self.ft_ratio)
        else:
            last_only = rng.random(b) < self.ft_ratio
        masked = (rng.random((b, length)) < self.mask_ratio) & real
        if self.ensure_mask:
            none = ~masked.any(1) & real.any(1)
            if none.any():  # one uniformly chosen real position of each such row
                n_real = real[none].sum(1)
                pick = length - n_real + (rng.random(len(n_real)) * n_real).astype(np.int64)
                masked[np.flatnonzero(none), pick] = True
        masked[last_only] = False
        masked[last_only, -1] = real[last_only, -1]
        # only the most recent `max_predictions` masked positions carry loss
        from_right = np.cumsum(masked[:, ::-1], axis=1)[:, ::-1]
        loss_mask = masked & (from_right <= self.max_predictions)
        inputs = np.where(masked, self.n_items + 1, hist)
        return {"inputs": torch.from_numpy(inputs.astype(np.int64)),
                "labels": torch.from_numpy(hist.astype(np.int64)),
                "loss_mask": torch.from_numpy(loss_mask)}

    def train_batches(self, domain, rng: np.random.Generator, users: np.ndarray) -> Batches:
        bs = int(self.optim["batch_size"])
        n, prefixes, n_samples = prefix_batches(domain, rng, users, self.max_len, bs)

        def gen():
            for hist, _ in prefixes():  # the prefix before each target, itself masked
                yield self.mask_batch(hist, rng)

        return Batches(n, gen, n_samples=n_samples)

    # ------------------------------------------------------------------ maths
    def loss(self, batch: dict) -> torch.Tensor:
        sel = batch["loss_mask"].to(self.device)
        h = self.net(batch["inputs"].to(self.device))[sel]  # the head only where loss is taken
        return F.cross_entropy(self.net.logits(self.net.head(h)),
                               batch["labels"].to(self.device)[sel])

    def user_state(self, batch: SeqBatch) -> torch.Tensor:
        items = batch.items.to(self.device)[:, -(self.max_len - 1):]
        mask = torch.full((len(items), 1), self.n_items + 1, dtype=items.dtype,
                          device=items.device)
        return self.net.head(self.net(torch.cat([items, mask], dim=1))[:, -1])

    def score_all(self, batch: SeqBatch) -> torch.Tensor:
        return self.net.logits(self.user_state(batch))

    def score_candidates(self, batch: SeqBatch, cand: torch.Tensor) -> torch.Tensor:
        h = self.user_state(batch)
        cand = cand.to(self.device)
        emb = self.net.encoder.item_emb(cand)
        return (h[:, None, :] * emb).sum(-1) + self.net.out_bias[cand]
