"""Time diagnostics under the model's own period lengths.

PrepRec describes an item by its popularity in past coarse and fine periods (30 and 7 days,
shortened on short domains under `periods=auto`, or the domain's `time_scale`); a domain whose
events fall in few periods, or in periods far apart, gives it mostly empty inputs. Other models
use 30 and 7 days everywhere, so their numbers are comparable across models.

Profile of one domain (training events only): its time span, and for the coarse and fine
lengths the number of calendar periods between the first and the last event and how many of
them hold an event. Several sources pool as the mean weighted by training events.

Pair diagnostics (`time.*` keys): `time.log10_span_days.*`, `time.log10_events_per_coarse.*`
(training events per non-empty coarse period), `time.empty_coarse_share.*` and
`time.empty_fine_share.*` (the share of calendar periods without an event).
"""

from __future__ import annotations

import numpy as np

from recx.data.features.popularity import DAY_S, PopularityConfig, raw_periods
from recx.diagnostics.cache import Profile, cached_profile, triple, weighted_mean


def period_config(domain, model=None) -> PopularityConfig:
    """The period lengths the model uses on `domain`: PrepRec's feature config (scaled to the
    domain's timestamps under `periods=auto`, as PrepRec does), anything else the default
    lengths; a domain's `time_scale` overrides both, as it does for PrepRec."""
    features = getattr(model, "features", None) if getattr(model, "name", "") == "preprec" \
        else None
    compat = getattr(model, "compat", {}) if features is not None else {}
    return PopularityConfig.from_dict(features or {}, domain.time_scale, ts=domain.ts,
                                      year_reset_periods=bool(compat.get("year_reset_periods")))


def time_profile(domain, cfg: PopularityConfig) -> Profile:
    key = {"coarse_days": float(cfg.coarse_days), "fine_days": float(cfg.fine_days),
           "year_reset": bool(cfg.year_reset_periods)}
    return cached_profile(domain, "time", key, lambda: build_time_profile(domain, cfg))


def build_time_profile(domain, cfg: PopularityConfig) -> Profile:
    ts = domain.ts[domain.train_mask]
    t0 = int(ts.min()) if len(ts) else 0
    out: Profile = {"span_days": np.float64((int(ts.max()) - t0) / DAY_S if len(ts) else 0.0),
                    "train_events": np.int64(len(ts))}
    for name, days in (("coarse", cfg.coarse_days), ("fine", cfg.fine_days)):
        raw = raw_periods(ts, days, t0, cfg.year_reset_periods)
        lo = int(raw.min()) if len(raw) else 0
        out[f"{name}_calendar"] = np.int64(int(raw.max()) - lo + 1 if len(raw) else 0)
        out[f"{name}_nonempty"] = np.int64(len(np.unique(raw)))
    return out


def summary(p: Profile) -> dict[str, float]:
    events = float(p["train_events"])
    return {"log10_span_days": float(np.log10(max(float(p["span_days"]), 1.0))),
            "log10_events_per_coarse": float(np.log10(max(events, 1.0)
                                                      / max(int(p["coarse_nonempty"]), 1))),
            **{f"empty_{n}_share": 1.0 - int(p[f"{n}_nonempty"]) / max(int(p[f"{n}_calendar"]), 1)
               for n in ("coarse", "fine")}}


def time_diagnostics(sources: list[Profile], target: Profile) -> dict[str, float]:
    weights = [float(p["train_events"]) for p in sources]
    per_source = [summary(p) for p in sources]
    t = summary(target)
    out = {}
    for name in t:
        out.update(triple(f"time.{name}", weighted_mean([s[name] for s in per_source], weights),
                          t[name]))
    return out
