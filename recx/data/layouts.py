"""What a dataset config names: its raw files, their pinned sha256, its raw layouts and its
official source. Pure config, no disk and no network (`recx.data.rawfiles` finds the files).

Layouts
-------
A config may accept several raw layouts: the top-level keys describe the default one, and
`layouts: {<name>: {...}}` lists alternatives. A layout replaces the top-level keys it names
(`reader`, `file`, `columns`, `items`, `options`, `download`, ...) wholesale, except `origin`,
whose sub-keys (`url`, `urls`, `archive`, `files`, ...) it replaces one by one. With
`dataset.layout=null` recx uses the first layout whose files are all present (default first),
and downloads the first downloadable one; `dataset.layout=<name>` forces one. Example:
`ml_100k` reads RecBole's atomic files (default) or GroupLens' official `u.data`/`u.item`
(layout `official`, downloadable); both give identical interactions.

File names, URLs and `origin.files` keys may contain `{category}`, replaced by
`dataset.category` (Amazon: any category by name).
"""

from __future__ import annotations

from pathlib import Path

from recx.errors import ConfigError

DEFAULT_LAYOUT = "default"


def fmt(ds, text: str | None) -> str | None:
    """Replace `{category}` in a file name or URL by `dataset.category`."""
    if text is None or "{category}" not in str(text):
        return text
    cat = ds.get("category") if hasattr(ds, "get") else None
    if not cat or str(cat) == "???":
        raise ConfigError(f"dataset {ds.name!r} needs a category (its files are named by it)",
                          hint="set dataset.category=<name>, e.g. dataset.category=Beauty")
    return str(text).replace("{category}", str(cat))


def pinned_files(ds) -> dict[str, str | None]:
    """origin.files with `{category}` filled: expected file → sha256 (or None)."""
    return {fmt(ds, str(k)): (str(v) if v else None) for k, v in (ds.origin.files or {}).items()}


def expected_files(ds) -> list[str]:
    """The raw files a dataset (layout view) needs, as named in its config."""
    names = list(pinned_files(ds))
    if not names:
        names = [fmt(ds, n) for n in (ds.file, ds["items"].file) if n]
    optional = set(optional_files(ds))
    return [n for n in names if n not in optional]


def optional_files(ds) -> list[str]:
    """Files a reader uses when present (e.g. MovieLens tags), never required."""
    return [fmt(ds, str(n)) for n in (ds.origin.get("optional") or [])]


def layout_names(ds) -> list[str]:
    return [DEFAULT_LAYOUT, *[str(k) for k in (ds.layouts or {})]]


def layout_view(ds, name: str = DEFAULT_LAYOUT):
    """The dataset config with layout `name` applied (the config itself for the default)."""
    if name == DEFAULT_LAYOUT:
        return ds
    layouts = ds.layouts or {}
    if name not in layouts:
        raise ConfigError(f"dataset {ds.name!r} has no layout {name!r}",
                          hint=f"use dataset.layout=<one of {layout_names(ds)}> or null (auto)")
    from omegaconf import OmegaConf

    from recx.config.schema import DatasetSchema

    base = OmegaConf.to_container(ds, resolve=True)
    spec = OmegaConf.to_container(layouts[name], resolve=True) if not isinstance(
        layouts[name], dict) else dict(layouts[name])
    for key, value in spec.items():
        if key == "origin":
            base.setdefault("origin", {})
            base["origin"].update(value or {})
        else:
            base[key] = value
    base["layouts"] = {}
    base["layout"] = name
    return OmegaConf.merge(OmegaConf.structured(DatasetSchema), base)


def candidate_layouts(ds) -> list[str]:
    """The layouts to try, in order: the forced one (`dataset.layout`), else all of them."""
    forced = ds.get("layout")
    if forced:
        layout_view(ds, str(forced))  # validates the name
        return [str(forced)]
    return layout_names(ds)


def source_text(view) -> str:
    """The official source of a layout view, as the messages name it."""
    urls = [fmt(view, str(u)) for u in (view.origin.urls or {}).values()]
    if view.origin.url:
        urls.insert(0, fmt(view, str(view.origin.url)))
    if urls and str(view.download) != "manual":
        return " ".join(urls)
    return view.origin.homepage or (" ".join(urls) if urls else "(no official source configured)")


def can_download(view, offline: bool) -> bool:
    has_url = bool(view.origin.url or view.origin.urls)
    return view.download is True and not offline and has_url


def download_folder(ds, paths) -> Path:
    """`${paths.data}/<name>/`, or `<name>/<category>/` for data sets named by category."""
    folder = Path(paths.data) / ds.name
    if any("{category}" in str(x) for x in _all_names(ds)):
        folder = folder / str(fmt(ds, "{category}"))
    return folder


def _all_names(ds) -> list[str]:
    out = [str(k) for k in (ds.origin.files or {})] + [str(ds.file or "")]
    for spec in (ds.layouts or {}).values():
        out += [str(k) for k in ((spec.get("origin") or {}).get("files") or {})]
        out.append(str(spec.get("file") or ""))
    return out
