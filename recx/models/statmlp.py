"""statmlp: the statistical-feature recommender of *Pre-trained Neural Recommenders* (Wang,
Krishnan, Sundaram, Li; arXiv 2309.01188), reconstructed (models/statmlp.md).

Users, items and user–item pairs are described only by binned statistics of the domain's training
graph (`recx/data/features/graphstats.py`): activity percentiles, the size and density of their
Node2Vec cluster, and the size and density of the pair's edge cluster. No field refers to an id,
so an MLP trained with BPR on source domains scores any target after the statistics are
recomputed there (zero-shot: swap the features, keep the weights).

Everything domain-specific lives in a per-domain entry (codes, Node2Vec vectors, edge centroids,
training edges) keyed by the domain's data hash, never in the state dict.

Full ranking: the user, item and edge parts of the first layer are computed once per distinct
user, item and edge code tuple, and each distinct (user tuple, item tuple, edge tuple)
combination is scored once (`torch.unique`). That is exact and far cheaper than running the MLP
on every pair, because the binned inputs take few distinct values. On domains of at most
`score_cache_pairs` pairs, the combination index of every pair is computed once per domain (the
edge-cluster assignment of all pairs is the costly part), so each later full ranking only scores
the domain's distinct combinations and gathers. On larger domains (up to `edge_cache_pairs`) each
user's edge clusters are kept (one byte per pair) the first time the user is ranked: the features
are fixed, so validation after every epoch and the test ranking reuse them. Once every user's row
is known, the table goes to the feature cache, so that every later job on the same features
(another source's transfer, an interpolation) reads it instead of assigning it again. The scores
of the combinations themselves are kept too, in a per-domain table indexed by the combination
key (at most `_TABLE_FLOATS`, NaN until scored, reset when the weights change): the binned
combinations recur across item groups, user batches and the two splits, so each is scored once.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from recx.data.features.graphstats import (
    GraphStatsConfig,
    assign_grid,
    assign_pairs,
    code_tables,
    graph_stats,
    load_edge_grid,
    save_edge_grid,
)
from recx.data.sequences import SeqBatch
from recx.errors import ConfigError
from recx.models.base import Batches, Capabilities, Figure, RecModel, config_block
from recx.models.modules.statmlp_net import StatMLPNet

log = logging.getLogger(__name__)

USER_FIELDS = ("act_u", "size_u", "dens_u")
ITEM_FIELDS = ("act_i", "size_i", "dens_i")
EDGE_FIELDS = ("size_e", "dens_e")
ALL_FIELDS = USER_FIELDS + ITEM_FIELDS + EDGE_FIELDS
_GRID_FLOATS = 1 << 24  # bound on the values one assignment/scoring chunk holds
_KEY_PAIRS = 1 << 24  # pairs whose combinations are deduplicated together (int64 keys)
_TABLE_FLOATS = 1 << 26  # bound on the per-domain table of combination scores (256 MB)


class StatMLP(RecModel):
    """Parameters (values: conf/model/statmlp.yaml)
    ----------
    architecture : str
        pair_mlp (one MLP on the concatenated one-hot fields) | two_tower
        (⟨MLP_u, MLP_i⟩ + w · MLP_e).
    hidden : list of int
        pair_mlp: widths of the hidden layers (the first is the one-hot layer). two_tower: each
        MLP is hidden[0] → hidden[−1].
    dropout : float
        Dropout after every hidden ReLU except the first layer's (pair_mlp), or inside each
        tower (two_tower).
    features : dict
        fields (the inputs, a subset of act_u, size_u, dens_u, act_i, size_i, dens_i, size_e,
        dens_e) and the statistics (`GraphStatsConfig`): activity_bins, cluster_bins,
        percentile, node2vec {dim, walks_per_node, walk_length, p, q, window, negative, epochs,
        sample, workers, batch_walkers}, cluster {mode, k, n_init}, edge {op, k, fit_sample,
        n_init}.
    optim : dict
        Training recipe: the shared keys (loss bpr; sampler bpr_triples: every training edge
        once per epoch with one uniform negative the user never interacted with in training)
        plus batch_size (triples) and valid_sample_users (early stopping on a seeded sample of
        validation users; null = all).
    multi_source : dict
        sampling (proportional | round_robin): which source each batch comes from.
    score_chunk_items : int
        Items whose edge clusters are assigned together in full ranking of large domains
        (bounds memory; the scores are then taken over groups of up to 2**24 pairs).
    score_cache_pairs : int
        Domains with at most this many (user, item) pairs get every pair's input combination
        precomputed once (about 4 bytes per pair), which makes repeated full ranking (one
        validation per epoch) cheap; larger domains are scored chunk by chunk.
    edge_cache_pairs : int
        Larger domains with at most this many pairs keep the edge clusters of every user ranked
        once (1 byte per pair, filled lazily), so later rankings of that user skip the
        assignment (the costly part); 0 = assign anew every time.
    tie_break : str
        item_degree: items the MLP scores equally (identical input bins) are ordered by their
        training events, more first; none: they tie (the evaluator ranks a target after every
        item it ties with). A scoring rule, not a weight: it is left out of the pretrain hash.
    """

    name = "statmlp"
    capabilities = Capabilities(zero_shot=True, needs_text=False, needs_time=False,
                                sequential=False, finetune=False, trainable=True)
    recipe_keys = ("batch_size", "valid_sample_users")
    max_len = 1  # the history window is never read: users are described by their statistics
    posttrain_keys = ("tie_break",)

    def __init__(self, n_items: int = 0, *, architecture: str, hidden: list[int] | tuple[int, ...],
                 dropout: float, features: dict, optim: dict, multi_source: dict,
                 score_chunk_items: int, score_cache_pairs: int, edge_cache_pairs: int,
                 tie_break: str):
        super().__init__(n_items, self.read_recipe(optim))
        if tie_break not in ("item_degree", "none"):
            raise ConfigError(f"model.tie_break={tie_break!r}", hint="use item_degree or none")
        self.tie_break = tie_break
        features = dict(features)
        if "fields" not in features:
            raise ConfigError("model.features.fields is missing",
                              hint=f"list the input fields, e.g. {list(ALL_FIELDS)}")
        fields = list(features.pop("fields"))
        self.stats_cfg = GraphStatsConfig.from_dict(features)
        self._check(architecture, hidden, dropout, fields, score_chunk_items)
        self.sampling = config_block("multi_source", multi_source, ("sampling",))["sampling"]
        if self.sampling not in ("proportional", "round_robin"):
            raise ConfigError(f"model.multi_source.sampling={self.sampling!r}",
                              hint="use proportional or round_robin")
        self.architecture, self.fields = architecture, fields
        self.score_chunk_items = int(score_chunk_items)
        self.score_cache_pairs = int(score_cache_pairs)
        self.edge_cache_pairs = int(edge_cache_pairs)
        # selected columns of the per-domain code tables [act, size, dens] and [size, dens]
        self.cols = {"user": [k for k, f in enumerate(USER_FIELDS) if f in fields],
                     "item": [k for k, f in enumerate(ITEM_FIELDS) if f in fields],
                     "edge": [k for k, f in enumerate(EDGE_FIELDS) if f in fields]}
        self.needs_graph = any(f not in ("act_u", "act_i") for f in fields)
        self.needs_edges = bool(self.cols["edge"])
        a, c = self.stats_cfg.activity_bins, self.stats_cfg.cluster_bins + 1  # + "none"
        vocab = {"user": [a, c, c], "item": [a, c, c], "edge": [c, c]}
        self.net = StatMLPNet(*[[vocab[s][k] for k in self.cols[s]]
                                for s in ("user", "item", "edge")],
                              hidden=list(hidden), dropout=dropout, architecture=architecture)
        self._inputs: dict = {}  # per-domain entries, keyed by (data_hash, seed, deterministic)
        self._cur: dict | None = None

    def _check(self, architecture, hidden, dropout, fields, chunk) -> None:
        problems = []
        if architecture not in ("pair_mlp", "two_tower"):
            problems.append(f"architecture={architecture!r} must be pair_mlp or two_tower")
        if not hidden or any(int(h) < 1 for h in hidden):
            problems.append(f"hidden={list(hidden)!r} must be a non-empty list of widths ≥ 1")
        if not 0.0 <= float(dropout) < 1.0:
            problems.append(f"dropout={dropout!r} must be in [0, 1)")
        bad = [f for f in fields if f not in ALL_FIELDS]
        if bad or not fields or len(set(fields)) != len(fields):
            problems.append(f"features.fields={fields!r}: a non-empty list without repeats of "
                            f"{', '.join(ALL_FIELDS)}")
        if architecture == "two_tower" and not (set(fields) & set(USER_FIELDS)
                                                and set(fields) & set(ITEM_FIELDS)):
            problems.append("two_tower needs at least one user field and one item field")
        if int(chunk) < 1:
            problems.append(f"score_chunk_items={chunk!r} must be ≥ 1")
        if self.optim["loss"] != "bpr":
            problems.append(f"optim.loss={self.optim['loss']!r}: statmlp trains with bpr")
        if self.optim["sampler"] != "bpr_triples":
            problems.append(f"optim.sampler={self.optim['sampler']!r}: statmlp uses bpr_triples")
        if problems:
            raise ConfigError("statmlp: " + "; ".join(problems), hint="fix the model.* overrides")

    # ------------------------------------------------------------------ diagnostics
    def figures(self, domains: dict, roles: dict) -> list[Figure]:
        """The paper's premise, source and target side by side: activity distributions and their
        percentile bins; with graph fields, the node and edge clusters' size and density bins
        (statistics from the feature cache, as the model uses them)."""
        out = [Figure("activity", "activity_distributions",
                      {"domains": domains, "roles": roles,
                       "n_bins": self.stats_cfg.activity_bins})]
        if self.needs_graph:
            stats = {name: graph_stats(d, self.stats_cfg) for name, d in domains.items()}
            out.append(Figure("clusters", "cluster_bins", {"stats": stats, "roles": roles}))
        return out

    # ------------------------------------------------------------------ domain inputs
    def fit_inputs(self, domain) -> None:
        super().fit_inputs(domain)
        self._cur = self._entry(domain)

    def _entry(self, domain) -> dict:
        env = getattr(domain, "env", None)
        key = (domain.data_hash, getattr(env, "seed", None), getattr(env, "deterministic", None))
        entry = self._inputs.get(key)
        if entry is None:
            entry = self._build_entry(domain)
            self._inputs[key] = entry
        dev = self.device
        for name, value in entry.items():
            if isinstance(value, torch.Tensor) and value.device != dev:
                entry[name] = value.to(dev)
        return entry

    def _build_entry(self, domain) -> dict:
        """Code tables and everything the scorer needs for `domain`."""
        N = domain.n_items
        entry: dict = {"domain": domain.name, "data": domain}  # data: the edge-grid cache
        # activity fields alone need no Node2Vec
        tables = code_tables(domain, self.stats_cfg, graph=self.needs_graph)
        ucodes, icodes, ecodes = tables.user, tables.item, tables.edge
        eu, ei, elabel = tables.edge_u, tables.edge_i, tables.edge_label
        if (s := tables.stats) is not None:
            t = torch.from_numpy
            entry.update(user_emb=t(s.user_emb), item_emb=t(s.item_emb),
                         user_has=t(s.user_degree > 0), item_has=t(s.item_degree > 0),
                         centroids=t(s.edge_centroids), feat_hash=s.feat_hash)
        ucodes[0] = icodes[0] = 0  # padding rows: any valid code (column 0 is never ranked)
        for side, codes in (("user", ucodes), ("item", icodes), ("edge", ecodes)):
            sel = codes[:, self.cols[side]]
            tuples, tid = np.unique(sel, axis=0, return_inverse=True)
            entry[f"{side}_codes"] = torch.from_numpy(sel)
            entry[f"{side}_tuples"] = torch.from_numpy(tuples.reshape(len(tuples), -1))
            entry[f"{side}_tid"] = torch.from_numpy(tid.reshape(-1).astype(np.int64))
        degree = np.bincount(ei, minlength=N + 1).astype(np.float64)
        entry.update(edge_u=eu, edge_i=ei, edge_label=elabel, n_items=N,
                     seen=np.unique(eu * (N + 1) + ei),
                     tie=torch.from_numpy(degree / (degree.max() + 1)))  # in [0, 1)
        return entry

    @property
    def entry(self) -> dict:
        if self._cur is None:
            raise RuntimeError("statmlp: call fit_inputs(domain) first")
        return self._cur

    # ------------------------------------------------------------------ training batches
    def train_batches(self, domain, rng: np.random.Generator, users: np.ndarray) -> Batches:
        """Every training edge of `users` once per epoch, in random order, each with one
        uniform negative item the user never interacted with in training."""
        e = self._entry(domain)
        keep = np.zeros(domain.n_users + 1, dtype=bool)
        keep[np.asarray(users, dtype=np.int64)] = True
        idx = np.flatnonzero(keep[e["edge_u"]])
        idx = idx[rng.permutation(len(idx))]
        bs = int(self.optim["batch_size"])
        n_batches = max(1, -(-len(idx) // bs))
        n_items, seen = e["n_items"], e["seen"]

        def gen():
            for lo in range(0, len(idx), bs):
                sel = idx[lo:lo + bs]
                u = e["edge_u"][sel]
                neg = rng.integers(1, n_items + 1, size=len(sel))
                for _ in range(10):  # resample negatives that hit the user's training items
                    bad = _member(u * (n_items + 1) + neg, seen)
                    if not bad.any():
                        break
                    neg[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
                t = torch.from_numpy
                yield {"user": t(u), "pos": t(e["edge_i"][sel]), "neg": t(neg.astype(np.int64)),
                       "pos_edge": t(e["edge_label"][sel])}

        return Batches(n_batches, gen, n_samples=len(idx))

    # ------------------------------------------------------------------ maths
    def _pair_edge_codes(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Edge-code rows [M] of aligned pairs (the "none" row when a side has no vector)."""
        e = self.entry
        n_rows = e["edge_codes"].shape[0]
        if not self.needs_edges:
            return torch.full_like(users, n_rows - 1)
        # float32 even under bf16 autocast (GPU training): near-ties of the nearest centroid
        # would flip for a few pairs, so training negatives would not meet the clusters that
        # the feature build and evaluation assign
        with torch.autocast(users.device.type, enabled=False):
            lab = assign_pairs(e["user_emb"][users], e["item_emb"][items], e["centroids"],
                               self.stats_cfg.edge.op)
        ok = e["user_has"][users] & e["item_has"][items]
        return torch.where(ok, lab, torch.full_like(lab, n_rows - 1))

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor,
                    edge_rows: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of aligned (user, item) pairs; `edge_rows` = known edge clusters."""
        e = self.entry
        if edge_rows is None:
            edge_rows = self._pair_edge_codes(users, items)
        return self.net(e["user_codes"][users], e["item_codes"][items],
                        e["edge_codes"][edge_rows])

    def loss(self, batch: dict) -> torch.Tensor:
        dev = self.device
        u, pos, neg = (batch[k].to(dev) for k in ("user", "pos", "neg"))
        pos_edge = batch["pos_edge"].to(dev) if self.needs_edges else None
        diff = self.pair_scores(u, pos, pos_edge) - self.pair_scores(u, neg)
        return -F.logsigmoid(diff).mean()

    def _edge_grid(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Edge-code rows [B, n] of every pair of `users` × `items`."""
        e = self.entry
        n_rows = e["edge_codes"].shape[0]
        with torch.autocast(users.device.type, enabled=False):  # float32, as _pair_edge_codes
            lab = assign_grid(e["user_emb"][users], e["item_emb"][items], e["centroids"],
                              self.stats_cfg.edge.op)
        ok = e["user_has"][users][:, None] & e["item_has"][items][None, :]
        return torch.where(ok, lab, torch.full_like(lab, n_rows - 1))

    def _chunk(self, n_users: int) -> int:
        """Items per assignment/scoring chunk: `assign_grid` holds about 8 values per pair
        (l1: its [B, n, d] edge vectors and [B, n, k] products)."""
        per_pair = 8
        if self.needs_edges and self.stats_cfg.edge.op == "l1":
            per_pair = sum(self.entry["centroids"].shape)
        return max(1, min(self.score_chunk_items, _GRID_FLOATS // max(1, n_users * per_pair)))

    def _edge_rows_all(self, users: torch.Tensor) -> torch.Tensor:
        """Edge-code rows [B, N + 1] of `users` × every item, in item chunks."""
        e = self.entry
        n1 = e["item_codes"].shape[0]
        if not self.needs_edges:
            return torch.full((len(users), n1), e["edge_codes"].shape[0] - 1,
                              dtype=torch.long, device=users.device)
        out = torch.empty(len(users), n1, dtype=torch.long, device=users.device)
        step = self._chunk(len(users))
        for lo in range(0, n1, step):
            items = torch.arange(lo, min(lo + step, n1), device=users.device)
            out[:, lo:lo + len(items)] = self._edge_grid(users, items)
        return out

    def _edge_rows_cached(self, users: torch.Tensor) -> torch.Tensor | None:
        """Edge-code rows [B, N + 1] of `users` from the per-domain cache (filled for the users
        not seen before), or None when the domain exceeds `edge_cache_pairs`."""
        e = self.entry
        n_u, n1 = e["user_codes"].shape[0], e["item_codes"].shape[0]
        if not self.needs_edges or n_u * n1 > self.edge_cache_pairs:
            return None
        if "edge_rows" not in e:
            cached = load_edge_grid(e["data"], e["feat_hash"])
            if cached is not None:
                e["edge_rows"] = (torch.from_numpy(cached).to(users.device),
                                  torch.ones(n_u, dtype=torch.bool, device=users.device))
            else:  # untouched pages of the table cost no memory
                small = e["edge_codes"].shape[0] <= torch.iinfo(torch.int8).max
                e["edge_rows"] = (torch.empty(n_u, n1, device=users.device,
                                              dtype=torch.int8 if small else torch.int16),
                                  torch.zeros(n_u, dtype=torch.bool, device=users.device))
        rows, done = e["edge_rows"]
        todo = torch.unique(users[~done[users]])
        if len(todo):
            with torch.no_grad():
                rows[todo] = self._edge_rows_all(todo).to(rows.dtype)
            done[todo] = True
            if bool(done[1:].all()):  # row 0 (padding) is never ranked
                rows[0] = rows[1]
                save_edge_grid(e["data"], e["feat_hash"], rows.cpu().numpy())
        return rows[users].long()

    def _grid(self) -> dict | None:
        """Per-domain pair inputs, computed once when U × N ≤ score_cache_pairs: the edge-code
        row of every (user, item) (two_tower), or the index of every pair's distinct
        (user tuple, item tuple, edge tuple) combination (pair_mlp)."""
        e = self.entry
        if "grid" in e:
            return e["grid"]
        n_u, n1 = e["user_codes"].shape[0], e["item_codes"].shape[0]
        if n_u * n1 > self.score_cache_pairs:
            e["grid"] = None
            return None
        dev = self.device
        n_i, n_e = e["item_tuples"].shape[0], e["edge_tuples"].shape[0]
        grid: dict = {}
        rows = torch.empty(n_u, n1, dtype=torch.int16, device=dev)  # ≤ 101 edge rows
        step = 1024  # users per block (`_edge_rows_all` bounds the assignment memory)
        with torch.no_grad():
            for lo in range(0, n_u, step):
                users = torch.arange(lo, min(lo + step, n_u), device=dev)
                rows[lo:lo + len(users)] = self._edge_rows_all(users).to(torch.int16)
            if self.architecture == "two_tower":
                grid["edge_rows"] = rows
            else:
                key = ((e["user_tid"][:, None] * n_i + e["item_tid"][None, :]) * n_e
                       + e["edge_tid"][rows.long()])
                del rows
                uniq, inv = torch.unique(key, return_inverse=True)
                del key
                grid.update(inv=inv.to(torch.int32), combo_edge=uniq % n_e,
                            combo_item=(uniq // n_e) % n_i, combo_user=uniq // n_e // n_i)
        e["grid"] = grid
        return grid

    def _combo_scores(self, grid: dict) -> torch.Tensor:
        """Scores of every distinct input combination of the domain (pair_mlp), cached while
        the weights are unchanged and no gradient is needed."""
        e = self.entry
        cache = not torch.is_grad_enabled() and not self.training
        version = (id(grid), *(p._version for p in self.net.parameters()))
        if cache and grid.get("version") == version:
            return grid["scores"]
        net = self.net
        parts = [net.part(s, e[f"{s}_tuples"]) for s in ("user", "item", "edge")]
        combos = [grid["combo_user"], grid["combo_item"], grid["combo_edge"]]
        scores = net.combo_scores(parts, combos)
        if cache:
            grid.update(version=version, scores=scores)
        return scores

    def score_all(self, batch: SeqBatch) -> torch.Tensor:
        return self._break_ties(self._score_all(batch), None)

    def _break_ties(self, s: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Order equal scores by the items' training events (`tie_break=item_degree`), without
        reordering any two different scores: each float32 score s moves up by less than half
        the gap to the next float32 value, in float64 (s + r · gap / 2 with r in [0, 1))."""
        if self.tie_break == "none":
            return s
        s = s.float()
        gap = (torch.nextafter(s, torch.full_like(s, torch.inf)) - s).double()
        tie = self.entry["tie"]
        r = tie[None, :] if items is None else tie[items]
        return s.double() + r * gap / 2

    def _score_all(self, batch: SeqBatch) -> torch.Tensor:
        e = self.entry
        dev = self.device
        users = batch.users.to(dev)
        grid = self._grid()
        if self.architecture == "two_tower":
            return self._two_tower_all(users, grid)
        if grid is not None:
            return self._combo_scores(grid)[grid["inv"][users].long()]
        # large domains: score item groups, each distinct input combination of a group once
        # (a group spans _KEY_PAIRS pairs: across the chunks of an assignment the same
        # combinations recur, 2.3x on Beauty's validation)
        n1 = e["item_codes"].shape[0]
        out = torch.empty(len(users), n1, device=dev)
        parts = [self.net.part(s, e[f"{s}_tuples"]) for s in ("user", "item", "edge")]
        n_i, n_e = e["item_tuples"].shape[0], e["edge_tuples"].shape[0]
        ut = e["user_tid"][users]
        rows = self._edge_rows_cached(users)
        table = self._score_table()
        step = self._chunk(len(users))
        group = max(step, _KEY_PAIRS // max(1, len(users)) // step * step)
        for lo in range(0, n1, group):
            items = torch.arange(lo, min(lo + group, n1), device=dev)
            key = ut[:, None] * n_i + e["item_tid"][items][None, :]
            if not self.needs_edges:
                key = key * n_e + e["edge_tid"][-1]
            elif rows is not None:
                key = key * n_e + e["edge_tid"][rows[:, lo:lo + len(items)]]
            else:  # assigned chunk by chunk (the assignment's memory bound)
                key = key * n_e
                for a in range(0, len(items), step):
                    key[:, a:a + step] += e["edge_tid"][self._edge_grid(users, items[a:a + step])]
            if table is not None:  # score only the combinations no earlier group had
                vals = table[key]
                new = torch.isnan(vals)
                if bool(new.any()):
                    need = torch.unique(key[new])
                    et, rest = need % n_e, need // n_e
                    table[need] = self.net.combo_scores(parts, [rest // n_i, rest % n_i, et])
                    vals = table[key]
                out[:, lo:lo + len(items)] = vals
                continue
            uniq, inv = torch.unique(key, return_inverse=True)
            del key
            et, rest = uniq % n_e, uniq // n_e
            scores = self.net.combo_scores(parts, [rest // n_i, rest % n_i, et])
            out[:, lo:lo + len(items)] = scores[inv]
        return out

    def _score_table(self) -> torch.Tensor | None:
        """Scores of every (user tuple, item tuple, edge tuple) combination, indexed by the
        combination key and NaN until first scored: without a gradient and with unchanged
        weights, each combination is scored once per domain instead of once per item group
        and user batch (the combinations recur across batches). None when it exceeds
        `_TABLE_FLOATS` or while training."""
        e = self.entry
        if torch.is_grad_enabled() or self.training:
            return None
        size = e["user_tuples"].shape[0] * e["item_tuples"].shape[0] * e["edge_tuples"].shape[0]
        if size > _TABLE_FLOATS:
            return None
        version = tuple(p._version for p in self.net.parameters())
        held = e.get("score_table")
        if held is None or held[0] != version:
            held = (version, torch.full((size,), torch.nan, device=self.device))
            e["score_table"] = held
        return held[1]

    def _two_tower_all(self, users: torch.Tensor, grid: dict | None) -> torch.Tensor:
        e = self.entry
        net = self.net
        out = net.tower("user", e["user_codes"][users]) @ net.tower("item", e["item_codes"]).T
        if self.needs_edges:
            edge_val = net.edge_term(e["edge_codes"])  # one value per edge-code row
            rows = grid["edge_rows"][users].long() if grid is not None else None
            if rows is None:
                rows = self._edge_rows_cached(users)
            if rows is None:
                rows = self._edge_rows_all(users)
            out = out + edge_val[rows]
        return out

    def score_candidates(self, batch: SeqBatch, cand: torch.Tensor) -> torch.Tensor:
        dev = self.device
        cand = cand.to(dev)
        users = batch.users.to(dev)[:, None].expand_as(cand)
        raw = self.pair_scores(users.reshape(-1), cand.reshape(-1)).view(cand.shape)
        return self._break_ties(raw, cand)


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """keys ∈ sorted_keys, by binary search."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys
