"""recx: transferable sequential recommendation experiments.

The command line is `recx <stage> key=value …`; the same stages run in-process:

    import recx
    rows = recx.run("train", ["model=sasrec", "dataset=tiny", "train=fast"])  # a DataFrame
    cfg = recx.compose("train", ["model=sasrec", "dataset=tiny"])             # a DictConfig

`recx.run(stage, overrides)` returns the metrics rows the CLI writes (the columns of
metrics.json; `recommend` returns its recommendations); `recx.compose(stage, overrides)` the
config the stage would run with. Failures raise `recx.errors.RecxError` subclasses. Both are
imported on first use, so `import recx` (and `recx --help`) stays fast.
"""

from recx.version import __version__

__all__ = ["__version__", "compose", "run"]


def __getattr__(name: str):
    if name in ("run", "compose"):
        from recx import api

        return getattr(api, name)
    raise AttributeError(f"module 'recx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "compose", "run"])
