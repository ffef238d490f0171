"""The union of several domains as one domain with domain-prefixed ids (`<domain>:<raw id>`),
for ID-based models pre-trained on several sources with one shared item table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recx.config.hashing import stable_hash
from recx.data.domain import DomainData


def merge_domains(domains: list[DomainData], cache_root=None) -> DomainData:
    domains = sorted(domains, key=lambda d: d.name)
    u_off = np.cumsum([0] + [d.n_users for d in domains])
    i_off = np.cumsum([0] + [d.n_items for d in domains])
    user = np.concatenate([d.user + u_off[k] for k, d in enumerate(domains)]).astype(np.int32)
    item = np.concatenate([d.item + i_off[k] for k, d in enumerate(domains)]).astype(np.int32)
    ts = np.concatenate([d.ts for d in domains])
    split = np.concatenate([d.split for d in domains])
    n_users, n_items = int(u_off[-1]), int(i_off[-1])
    indptr = np.zeros(n_users + 2, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=n_users + 1), out=indptr[1:])
    frames = []
    for k, d in enumerate(domains):
        f = d.items.copy()
        f["item"] = f["item"].astype(np.int64) + i_off[k]
        f["raw_id"] = d.name + ":" + f["raw_id"].astype(str)
        f["domain"] = d.name
        frames.append(f)
    items = pd.concat(frames, ignore_index=True)
    fields = sorted({f for d in domains for f in d.text_fields})
    for f in fields:
        items[f] = items[f].fillna("") if f in items else ""
    merged = DomainData(
        name="+".join(d.name for d in domains),
        data_hash=stable_hash([d.data_hash for d in domains], "merge"),
        n_users=n_users, n_items=n_items, user=user, item=item, ts=ts, split=split,
        indptr=indptr, text_fields=fields,
        stats={"merged": [d.name for d in domains], "users": n_users, "items": n_items,
               "interactions": len(item)},
        env=domains[0].env,
        parts=[(d.name, int(i_off[k]), d.n_items) for k, d in enumerate(domains)],
        _items=items,
    )
    return merged
