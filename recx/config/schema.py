"""Structured-config schemas: a typo or a wrong type in an override fails at once and names the key.

Each group option YAML starts with `defaults: [_schema, _self_]`, which merges the dataclass below
under the file's own values. Hydra then rejects unknown keys (struct mode) and values of the wrong
type at override time, before any work starts.

Fields with a closed set of values name it with a `Choice` enum (`choice(Ties, "pessimistic")`);
`recx.config.validate` checks every one of them, with a "did you mean", before any data is read.
The values stay plain strings in the config: an OmegaConf enum field would turn them into enum
members, and every hash and protocol string built from them would change.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING


class Choice(str, Enum):
    """The values a string field accepts (member name = value)."""

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


def choice(kind: type[Choice], default: str | None):
    return field(default=default, metadata={"choices": kind})


def choice_fields(schema, prefix: str = "") -> dict[str, type[Choice]]:
    """{dotted key: its Choice enum} of a schema dataclass, nested dataclasses included."""
    out = {}
    for f in dataclasses.fields(schema):
        path = f"{prefix}{f.name}"
        if "choices" in f.metadata:
            out[path] = f.metadata["choices"]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(sub):
            out.update(choice_fields(sub, f"{path}."))
    return out


class Archive(Choice):
    none = "none"
    zip = "zip"
    gzip = "gzip"
    tar = "tar"


class TimestampUnit(Choice):  # or a strptime format containing '%'
    s = "s"
    ms = "ms"
    us = "us"
    ns = "ns"
    days = "days"
    iso = "iso"


class Dedup(Choice):
    earliest = "earliest"
    all = "all"
    first_row = "first_row"


class Verify(Choice):
    stat = "stat"  # a file is known by path, size, mtime and ctime (its sha256 remembered)
    hash = "hash"  # read and hash every input file on every run


class Amp(Choice):
    auto = "auto"
    off = "off"
    bf16 = "bf16"
    fp16 = "fp16"


class Resume(Choice):
    auto = "auto"
    never = "never"


class Backend(Choice):
    auto = "auto"
    nccl = "nccl"
    gloo = "gloo"


class Scenario(Choice):
    leave_one_out = "leave_one_out"
    global_time = "global_time"


class Candidates(Choice):
    full = "full"
    sampled = "sampled"


class Sampler(Choice):
    uniform = "uniform"
    popularity = "popularity"


class MaskHistory(Choice):  # compared case-insensitively (YAML true becomes "True")
    auto = "auto"
    true = "true"
    false = "false"
    on = "on"
    off = "off"


class MaskVariants(Choice):
    both = "both"
    policy = "policy"


class Ties(Choice):
    pessimistic = "pessimistic"
    random = "random"
    optimistic = "optimistic"


class SelectProtocol(Choice):
    full = "full"
    same = "same"


class TextKind(Choice):
    sentence_transformers = "sentence_transformers"
    hashing = "hashing"


class Pooling(Choice):
    mean = "mean"
    cls = "cls"


# --------------------------------------------------------------------------------------- dataset
@dataclass
class OriginSchema:
    homepage: str | None = None
    license: str | None = None
    citation: str | None = None
    url: str | None = None  # official download; several files → `urls`
    urls: dict[str, str] = field(default_factory=dict)  # file → url, when files come separately
    archive: str = choice(Archive, "none")
    files: dict[str, Any] = field(default_factory=dict)  # expected file → sha256 (or null)
    optional: list[str] = field(default_factory=list)  # files read when present (e.g. tags)
    sha256: str | None = None  # of the `url` download itself (the archive), when pinned
    md5: str | None = None  # of the `url` download, where the source publishes only an md5
    instructions: str | None = None  # for manual downloads (terms to accept by hand)


@dataclass
class ColumnsSchema:
    user: str | None = None
    item: str | None = None
    timestamp: str | None = None
    rating: str | None = None
    text: str | None = None


@dataclass
class TimestampSchema:
    unit: str = choice(TimestampUnit, "s")  # or a strptime format containing '%'


@dataclass
class ItemsSchema:
    path: str | None = None  # item file (custom datasets: any path)
    file: str | None = None  # item file name inside raw_dir / the download
    key: str | None = None  # column joining items to interactions (compared as strings)
    text_columns: list[str] = field(default_factory=list)
    sep: str | None = None


@dataclass
class KCoreSchema:
    user: int = 5
    item: int = 5
    iterative: bool = True


@dataclass
class FiltersSchema:
    dedup: str = choice(Dedup, "earliest")
    min_rating: float | None = None
    k_core: KCoreSchema = field(default_factory=KCoreSchema)


@dataclass
class TimeScaleSchema:
    coarse_days: float | None = None  # PrepRec period lengths when the domain needs its own
    fine_days: float | None = None


@dataclass
class SyntheticSchema:
    """Parameters of the synthetic multi-domain generator (recx/data/synthetic.py)."""

    seed: int = 0  # domain seed (>= 0); the shared topic world has its own fixed seed
    n_users: int = 2000  # users generated (before any k-core filter)
    n_items: int = 1000  # items generated
    topics: list[int] = field(default_factory=lambda: list(range(8)))  # world topic ids (0..31)
    alpha_cat: float = 1.0  # Dirichlet concentration of the category mix
    sigma_item: float = 0.5  # item factor noise around its topic centroid
    sigma_appeal: float = 1.0  # LogNormal sigma of base appeal (heavy-tailed popularity)
    prerelease_fraction: float = 0.2  # items already released at the start
    span_days: float = 730.0  # length of the timeline, from 2020-01-01 UTC
    lifetime_median_days: float = 120.0  # median life-cycle scale L (small = news-like, fast)
    lifetime_sigma: float = 0.5  # LogNormal sigma of the lifetimes
    kappa: float = 2.0  # life-cycle shape (>1): peak at x = kappa - 1
    activity_median: float = 12.0  # median events per user
    activity_sigma: float = 0.8  # LogNormal sigma of activity (tail heaviness)
    min_len: int = 5  # activity clipped to [min_len, max_len]
    max_len: int = 200  # longest generated sequence
    gap_median_days: float = 3.0  # median inter-event gap
    gap_sigma: float = 1.0  # LogNormal sigma of a user's gaps around the user's own scale
    gap_user_sigma: float = 0.7  # LogNormal sigma of the per-user gap scale across users
    beta: float = 1.5  # preference strength
    gamma: float = 1.0  # popularity strength (>= 0)
    drift: float = 0.15  # eta: preference drift toward consumed items
    two_topic_prob: float = 0.5  # share of users whose preference mixes two topics
    repeat_prob: float = 0.0  # probability that an event re-consumes a consumed item
    pref_noise: float = 0.3  # noise added to the user's topic-centroid preference
    rho_topic: float = 0.7  # share of title words drawn from the topic list
    exact_max_items: int = 20_000  # above: pooled sampling (exact only in the limit)
    pool_size: int = 1024  # pooled path: candidates per pool (split evenly over topics)
    pool_events: int = 256  # pooled path: events sharing one candidate pool
    bucket_days: float = 1.0  # pooled path: time resolution of the life-cycle evaluation


def text_fields_of(ds) -> list[str]:
    """The item text fields text models read: `text_fields` when set, else the text the data
    set names (`columns.text`, then `items.text_columns`), so a user who points recx at item
    text needs to say so once."""
    fields = list(ds.get("text_fields") or [])
    if fields:
        return fields
    named = [str(ds.columns.text)] if ds.get("columns") and ds.columns.get("text") else []
    items = ds.get("items") or {}
    return [*named, *(str(c) for c in (items.get("text_columns") or []) if str(c) not in named)]


@dataclass
class DatasetSchema:
    name: str = MISSING
    origin: OriginSchema = field(default_factory=OriginSchema)
    download: Any = True  # true | false | manual
    raw_dir: str | None = None  # read the expected files from this folder (never downloads)
    reader: str = "csv"
    file: str | None = None  # interactions file inside raw_dir / the download
    path: str | None = None  # custom: the interactions file
    sep: str | None = None  # csv/tsv delimiter; null = sniff
    category: str | None = None  # Amazon: any category by name
    columns: ColumnsSchema = field(default_factory=ColumnsSchema)
    timestamp: TimestampSchema = field(default_factory=TimestampSchema)
    items: ItemsSchema = field(default_factory=ItemsSchema)
    text_fields: list[str] = field(default_factory=list)
    filters: FiltersSchema = field(default_factory=FiltersSchema)
    time_scale: TimeScaleSchema = field(default_factory=TimeScaleSchema)
    synthetic: SyntheticSchema | None = None
    layouts: dict[str, Any] = field(default_factory=dict)  # alternative raw layouts (raw_dir)
    layout: str | None = None  # null = first complete layout (default first); or a layout name
    options: dict[str, Any] = field(default_factory=dict)  # reader-specific settings
    pretrain_only: bool = False  # the data cannot be evaluated (e.g. held-out events missing)
    verify: str = choice(Verify, "stat")  # how a cached input file is known to be unchanged


# ----------------------------------------------------------------------------------------- train
@dataclass
class DDPSchema:
    backend: str = choice(Backend, "auto")  # auto = nccl on CUDA, gloo on CPU
    timeout_s: int = 1800  # collective timeout (rank 0 validates while the others wait)
    find_unused_parameters: bool = False  # DDP option: needed if a loss leaves parameters unused


@dataclass
class TrainSchema:
    max_epochs: int | None = None  # null = the model's recipe
    limit_batches: int | None = None  # cap batches per epoch (smoke tests)
    amp: str = choice(Amp, "auto")  # auto = bf16 on CUDA
    grad_clip: float | None = None
    num_workers: int = 0
    checkpoint_every: int = 1
    resume: str = choice(Resume, "auto")
    user_fraction: float = 1.0  # train on a seeded fraction of users (IDP's cold setting)
    compile: bool = False  # torch.compile the network (GPU)
    ddp: DDPSchema = field(default_factory=DDPSchema)


# ------------------------------------------------------------------------------------------ eval
@dataclass
class EvalSchema:
    scenario: str = choice(Scenario, "leave_one_out")
    valid_quantile: float = 0.8  # global_time
    test_quantile: float = 0.9
    candidates: str = choice(Candidates, "full")
    n_negatives: int = 100
    sampler: str = choice(Sampler, "uniform")
    popularity_power: float = 1.0
    share_valid_test_negatives: bool = False
    negatives_seed: int = 2024
    mask_history: str = choice(MaskHistory, "auto")  # auto = the domain's policy
    mask_variants: str = choice(MaskVariants, "both")  # both: rows of the other rule too
    ties: str = choice(Ties, "pessimistic")
    metrics: list[str] = field(default_factory=lambda: ["Recall", "NDCG", "MRR"])
    ks: list[int] = field(default_factory=lambda: [10, 20, 50])
    select_metric: str = "NDCG@10"
    select_protocol: str = choice(SelectProtocol, "full")
    batch_users: int = 1024
    max_scores: int = 50_000_000  # cap on users x items scored at once (memory bound)
    slices: list[str] = field(default_factory=lambda: ["all"])
    sample_users: int | None = None  # rank a seeded sample of this many queries per split
    cold_item_fraction: float = 0.0
    cache: bool = True  # reuse the ranks of an identical earlier evaluation


# ------------------------------------------------------------------------------------------ text
@dataclass
class TextSchema:
    kind: str = choice(TextKind, "sentence_transformers")
    name: str = "sentence-transformers/all-MiniLM-L6-v2"
    path: str | None = None  # explicit local model folder (first in the resolution order)
    pooling: str = choice(Pooling, "mean")
    max_length: int = 256
    batch_size: int = 256
    dim: int = 384  # hashing only
    allow_download: bool = True
    normalize: bool = False


SCHEMAS = {
    "dataset": DatasetSchema,
    "train": TrainSchema,
    "eval": EvalSchema,
    "text": TextSchema,
}


def register_schemas() -> None:
    """Store `<group>/_schema` nodes that the group's YAML files list first in their defaults."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, node in SCHEMAS.items():
        cs.store(group=group, name="_schema", node=node)
    # `report.where` takes any row field as written (`report.where.target=synth_t`): Hydra closes
    # every mapping before it applies overrides, except one that is explicitly open
    from omegaconf import OmegaConf

    cs.store(name="_report_where", node=OmegaConf.create(
        {"report": {"where": OmegaConf.create({}, flags={"struct": False})}}))
    # conf/hydra/launcher/{joblib,submitit_local,ray}.yaml share their plugin's schema name on
    # purpose (so `hydra/launcher=joblib` reads as the plugin documents it, with recx's defaults);
    # Hydra still validates them against that schema but calls the name match deprecated. A
    # different name is the only way out, and would break the documented override.
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/\w+' is validated against "
                            r"ConfigStore schema with the same name", category=UserWarning)
