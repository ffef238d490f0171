"""OmegaConf resolvers used in the configs (`${recx.source_key:${source}}`)."""

from __future__ import annotations


def source_key(source) -> str:
    """Sorted source names joined by '+' (the key of multi-source artifacts)."""
    if source is None:
        return "none"
    return "+".join(sorted(str(k) for k in source))


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("recx.source_key"):
        OmegaConf.register_new_resolver("recx.source_key", source_key)
