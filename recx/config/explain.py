"""Hydra's own errors (an unknown key, a value of the wrong type, a missing group option, a
launcher plugin that is not installed) as one recx message with the fix.

The CLI asks Hydra to raise these instead of printing them (`HYDRA_FULL_ERROR=1` for its own
call) and passes them here; a user who sets `HYDRA_FULL_ERROR=1` still gets Hydra's traceback.
"""

from __future__ import annotations

import difflib
import re

from recx.config.validate import did_you_mean

_OVERRIDE = re.compile(r"Could not override '([^']+)'")
_MERGE = re.compile(r"Error merging override (\S+)")
_NOT_FOUND = re.compile(r"Could not find '([^']+)/([^']+)'")
_OPTIONS = re.compile(r"Available options in '[^']+':\n((?:\t.*\n?)+)")
_PLUGIN = re.compile(r"hydra_plugins\.(hydra_\w+?)\.")
_LAUNCHER = re.compile(r"^hydra/launcher=(\S+)$")


def explain(error: BaseException, stage: str, overrides: list[str]) -> tuple[str, int]:
    """(message, exit code) for an exception Hydra raised before or around the stage."""
    text = str(error)
    cause = error.__cause__ or error.__context__
    if m := _OVERRIDE.search(text):
        return _unknown_key(m.group(1), stage, overrides), 2
    if m := _MERGE.search(text):
        why = str(cause).splitlines()[0] if cause is not None else text
        return f"{m.group(1)}: {why}", 2
    if m := _NOT_FOUND.search(text):
        group, name = m.groups()
        opts = _OPTIONS.search(text)
        options = [o.strip() for o in opts.group(1).splitlines()
                   if o.strip() and not o.strip().startswith("_")] if opts else []
        return (f"unknown {group} option {name!r}{did_you_mean(name, options)}"
                + (f"\n  options: {', '.join(options)}" if options else "")), 2
    if m := _PLUGIN.search(text + " " + str(cause or "")):
        launcher = next((lm.group(1) for o in overrides if (lm := _LAUNCHER.match(o))), None)
        what = f"hydra/launcher={launcher}" if launcher else "this command"
        package = m.group(1).replace("_", "-")
        return (f"{what} needs the Hydra plugin {package}, which is not installed\n"
                f"  install the launchers extra: pip install 'recx[launchers]' "
                f"(or pip install {package})"), 2
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    lines = [x.strip() for x in text.splitlines() if x.strip()][:3] or [type(error).__name__]
    if getattr(error, "override", None):  # an override that does not parse
        lines[0] = f"cannot parse the override {error.override!r}: {lines[0]}"
    if cause is not None and str(cause).strip() and str(cause).strip() not in text:
        lines.append(str(cause).strip().splitlines()[0])
    code = 2 if isinstance(error, HydraException | OmegaConfBaseException | ValueError) else 1
    return ("\n  ".join(lines) + "\n  (set HYDRA_FULL_ERROR=1 for Hydra's full traceback)",
            code)


def _unknown_key(key: str, stage: str, overrides: list[str]) -> str:
    parent, _, leaf = key.rpartition(".")
    value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key), "...")
    keys = _keys_of(stage, parent, [o for o in overrides if o.split("=", 1)[0] != key])
    close = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.5)
    guess = f" — did you mean {'.'.join(filter(None, [parent, close[0]]))!r}?" if close else ""
    lines = [f"unknown key {key!r}{guess}"]
    if keys and not close:
        lines.append(f"  keys of {parent or 'the config'}: {', '.join(sorted(keys))}")
    lines.append(f"  to add a key of your own on purpose: +{key}={value}")
    return "\n".join(lines)


def _keys_of(stage: str, parent: str, overrides: list[str]) -> list[str]:
    """The keys of `parent` in the stage's config composed without the failing override (empty
    when that does not compose either)."""
    try:
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
        from omegaconf import DictConfig, OmegaConf

        from recx.config.location import conf_dir

        GlobalHydra.instance().clear()
        plain = [o for o in overrides if not o.startswith("-") and "=" in o
                 and not o.startswith("hydra")]
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name=stage, overrides=plain)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        return [str(k) for k in node] if isinstance(node, DictConfig) else []
    except Exception:
        return []
