"""Where raw files come from, and whether they are the right ones (ARCHITECTURE §6.1).

Resolution order: `dataset.path` (custom files), `dataset.raw_dir` (files already on disk,
never touches the network), the download cache `${paths.data}/<name>/` (`<name>/<category>/`
for per-category data sets), then a download from the official source (`recx.data.fetch`).
Which files a config names, and its alternative raw layouts, are in `recx.data.layouts`.

Checksums: every pinned sha256 is verified; the sha256 of each raw file recx hashed is
remembered in the cache (keyed by path, size, mtime and ctime), so a large file is hashed
once. `raw_identity` is the content identity of the inputs that the data hash covers.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from recx.config.hashing import file_sha256, stat_identity
from recx.data.fetch import fetch_files
from recx.data.layouts import (
    DEFAULT_LAYOUT,
    can_download,
    candidate_layouts,
    download_folder,
    expected_files,
    fmt,
    layout_view,
    optional_files,
    pinned_files,
    source_text,
)
from recx.errors import ChecksumError, DataFormatError, DataMissingError

log = logging.getLogger(__name__)


class RawFiles:
    """Maps the file names a dataset config expects to paths on disk (matched by base name).

    `names` are the files of the chosen layout (required + optional), `layout` its name
    (`"default"` for the top-level keys), `view` the dataset config with that layout applied.
    """

    def __init__(self, folder: Path | None, explicit: dict[str, Path] | None = None, *,
                 names: list[str] | None = None, layout: str = DEFAULT_LAYOUT, view=None):
        self.folder = Path(folder) if folder is not None else None
        self.explicit = dict(explicit or {})
        self.names = list(names) if names is not None else None
        self.layout = layout
        self.view = view

    def path(self, name: str) -> Path:
        if name in self.explicit:
            return self.explicit[name]
        if self.folder is None:
            raise KeyError(name)
        direct = self.folder / name
        if direct.exists():
            return direct
        return self.folder / Path(name).name

    def exists(self, name: str) -> bool:
        try:
            return self.path(name).exists()
        except KeyError:
            return False

    def all_paths(self) -> list[Path]:
        """The input files, for the content identity of the data (only those the layout reads
        when known, so unrelated files in a raw_dir never change or slow the hash)."""
        out = list(self.explicit.values())
        if self.folder is None:
            return out
        if self.names is not None:
            return out + [self.path(n) for n in self.names if self.exists(n)]
        if self.folder.is_dir():
            out += sorted(p for p in self.folder.iterdir() if p.is_file())
        return out


# -------------------------------------------------------------------------------- resolution
def resolve_raw_files(ds, paths, offline: bool = False) -> RawFiles:
    """Find the raw files of `ds`, downloading them on a cache miss when allowed."""
    if ds.reader == "synthetic":
        return RawFiles(None)
    _use_sha_memo(Path(paths.cache))
    if ds.path:
        return _explicit_files(ds)
    if ds.raw_dir:
        return _from_raw_dir(ds, Path(ds.raw_dir), offline)
    return _from_download_folder(ds, download_folder(ds, paths), offline)


def _explicit_files(ds) -> RawFiles:
    """A custom data set's own files (`dataset.path`, `dataset.items.path`)."""
    explicit = {"main": Path(ds.path)}
    if ds["items"].path:
        explicit["items"] = Path(ds["items"].path)
    for role, p in explicit.items():
        key = f"dataset.{'path' if role == 'main' else 'items.path'}"
        what = "interactions" if role == "main" else "item"
        if not p.exists():
            raise DataMissingError(
                f"{what} file {str(p)!r} not found ({key})",
                hint="give an existing file, relative to the directory you run recx from "
                "or absolute")
        if p.is_dir():
            inside = sorted(x.name for x in p.iterdir() if x.is_file())[:5]
            raise DataFormatError(
                f"{key}={str(p)!r} is a directory, not the {what} file"
                + (f" (it holds {', '.join(inside)}{', ...' if len(inside) == 5 else ''})"
                   if inside else ""),
                hint=f"name the file itself: {key}={p / (inside[0] if inside else '<file>')}"
                " (dataset.raw_dir is the folder setting of the named data sets)")
    return RawFiles(None, explicit)


def _from_raw_dir(ds, folder: Path, offline: bool) -> RawFiles:
    """`dataset.raw_dir`: the first complete layout there, checked against its pins."""
    candidates = candidate_layouts(ds)
    if folder.is_file():
        raise DataMissingError(
            f"dataset.raw_dir={str(folder)!r} is a file; it must be the folder that holds "
            f"the data set's files ({', '.join(expected_files(ds))})",
            hint="pass the folder (dataset.raw_dir=<folder>); a file of your own is read "
            "with dataset=custom dataset.path=<file>")
    files = _first_complete(ds, folder, candidates)
    if files is None:
        raise _missing_message(ds, f"{folder}/ (dataset.raw_dir)",
                               _missing_by_layout(ds, folder, candidates), offline=offline)
    verify_checksums(files.view, files)
    return files


def _from_download_folder(ds, folder: Path, offline: bool) -> RawFiles:
    """The download cache; on a miss (or a damaged file), the first downloadable layout."""
    candidates = candidate_layouts(ds)
    files = _first_complete(ds, folder, candidates)
    if files is not None:
        try:
            verify_checksums(files.view, files, quarantine=True)
            return files
        except ChecksumError:
            if not can_download(files.view, offline):
                raise
            log.warning("re-downloading %s: a cached file failed its checksum", ds.name)
    for name in candidates:
        view = layout_view(ds, name)
        if can_download(view, offline):
            return _download_layout(ds, view, name, folder, offline)
    raise _missing_message(ds, f"{folder}/", _missing_by_layout(ds, folder, candidates),
                           offline=offline)


def _download_layout(ds, view, name: str, folder: Path, offline: bool) -> RawFiles:
    try:
        download_dataset(view, folder, offline=offline)
    except DataMissingError as e:  # name what was expected, not only the failed URL
        listed = ", ".join(expected_files(view))
        raise DataMissingError(
            f"{e.message}\n  Dataset:         {ds.name!r} (layout {name})\n"
            f"  Expected files:  {listed}\n  Download folder: {folder}/",
            hint=e.hint if "raw_dir" in (e.hint or "") else (e.hint or "") +
            "; or pass dataset.raw_dir=/path/to/folder") from None
    files = _files_for(view, folder, name)
    _, missing = _present(view, files)
    if missing:  # the archive did not hold what the config expects
        raise _missing_message(ds, f"{folder}/ (after downloading)", {name: missing})
    verify_checksums(view, files, quarantine=True)
    return files


def _present(ds, files: RawFiles) -> tuple[list[str], list[str]]:
    """(required names, missing names) of one layout view in one folder."""
    names = expected_files(ds)
    return names, [n for n in names if not files.exists(n)]


def _files_for(view, folder: Path, name: str) -> RawFiles:
    probe = RawFiles(folder)
    names = expected_files(view) + [n for n in optional_files(view) if probe.exists(n)]
    return RawFiles(folder, names=names, layout=name, view=view)


def _first_complete(ds, folder: Path, candidates: list[str]) -> RawFiles | None:
    for name in candidates:
        view = layout_view(ds, name)
        files = _files_for(view, folder, name)
        names, missing = _present(view, files)
        if names and not missing:
            return files
    return None


def _missing_by_layout(ds, folder: Path, candidates: list[str]) -> dict[str, list[str]]:
    out = {}
    for name in candidates:
        view = layout_view(ds, name)
        out[name] = _present(view, RawFiles(folder))[1] or expected_files(view)
    return out


def _missing_message(ds, looked_in: str, missing: dict[str, list[str]], *,
                     offline: bool = False) -> DataMissingError:
    """One message naming the official source, every expected file and where recx looked."""
    views = {name: layout_view(ds, name) for name in missing}
    first = next(iter(views.values()))
    manual = all(str(v.download) == "manual" for v in views.values())
    disabled = offline or all(v.download is False for v in views.values())
    if manual:
        why = " and must be downloaded by hand (its terms must be accepted)."
    elif disabled:
        why = " and downloading is disabled" + (" (offline=true)." if offline else ".")
    else:
        why = "."
    lines = [f"Dataset {ds.name!r} is not available locally{why}"]
    for name, view in views.items():
        files = pinned_files(view)
        listed = ", ".join(f"{n} (sha256 {files[n][:8]}…)" if files.get(n) else n
                           for n in expected_files(view))
        label = "" if len(views) == 1 else f" [layout {name}]"
        lines += [f"  Official source{label}: {source_text(view)}",
                  f"  Expected files{label}:  {listed}",
                  f"  Missing{label}:         {', '.join(missing[name])}"]
        if view.origin.instructions:
            lines.append(f"  Instructions{label}:    {view.origin.instructions}")
    lines.append(f"  Looked in:       {looked_in}")
    hint = "place the files in a folder and pass dataset.raw_dir=/path/to/folder"
    if not manual:
        hint = ("allow the download (dataset.download=true"
                + (", offline=false" if offline else "") + "), or " + hint)
    if first.origin.homepage and manual:
        hint += f"; the data set's page is {first.origin.homepage}"
    return DataMissingError("\n".join(lines), hint=hint)


# ---------------------------------------------------------------------------------- download
def download_dataset(ds, folder: Path, *, offline: bool = False,
                     progress: str | bool = "auto") -> list[Path]:
    """Fetch the official files of dataset (layout view) `ds` into `folder`; returns the paths
    of the downloaded files (archives included)."""
    if offline:
        raise DataMissingError(f"dataset {ds.name!r} must be downloaded but offline=true",
                               hint="set offline=false, or pass dataset.raw_dir=<folder>")
    if str(ds.download) == "manual" or ds.download is not True:
        raise DataMissingError(f"dataset {ds.name!r} cannot be downloaded automatically",
                               hint="download it by hand and pass dataset.raw_dir=<folder>")
    pins = pinned_files(ds)
    wanted = expected_files(ds) + optional_files(ds)
    origin = ds.origin
    fetched = fetch_files(
        folder, wanted=wanted, pins=pins, archive=str(origin.archive or "none"),
        url=fmt(ds, str(origin.url)) if origin.url else None,
        urls={fmt(ds, str(k)): fmt(ds, str(v)) for k, v in (origin.urls or {}).items()},
        sha256=origin.get("sha256"), md5=origin.get("md5"), progress=progress)
    for path, sha in fetched.verified.items():
        remember_sha256(path, sha)
    unpinned = [n for n in wanted if not pins.get(n) and (Path(folder) / n).exists()]
    if unpinned and not origin.get("sha256") and not origin.get("md5"):
        log.warning("%s: no sha256 pinned for %s; the computed hashes are in %s",
                    ds.name, ", ".join(unpinned), Path(folder) / "download.json")
    return fetched.paths


# --------------------------------------------------------------------------------- checksums
def verify_checksums(ds, files: RawFiles, *, quarantine: bool = False) -> None:
    """Check every pinned sha256 (memoised by path, size and mtime).

    With `quarantine` (download cache only, never a user's raw_dir) a mismatching file is renamed
    `<file>.corrupt` so that it is never mistaken for a complete file again.
    """
    for name, want in pinned_files(ds).items():
        if not want or not files.exists(name):
            continue
        path = files.path(name)
        got = sha256_cached(path, fresh=_verify_by_hash(ds))
        if got != want:
            where = ""
            if quarantine:
                bad = path.with_name(path.name + ".corrupt")
                os.replace(path, bad)
                where = f" (moved to {bad})"
            raise ChecksumError(
                f"{path}: sha256 mismatch for dataset {ds.name!r}{where}\n"
                f"  expected {want}\n  actual   {got}",
                hint="the file is corrupt or a different release: delete it and download it "
                f"again from {source_text(ds)}")


def raw_identity(ds, files: RawFiles, abort=None) -> dict:
    """Content identity of the raw inputs: pinned sha256 where configured, else computed
    (remembered by path, size, mtime and ctime; `dataset.verify=hash` reads every file again)."""
    pinned = _pinned(ds)
    fresh = _verify_by_hash(ds)
    ident = {}
    for p in _identity_paths(ds, files):
        ident[p.name] = pinned.get(p.name) or sha256_cached(p, abort=abort, fresh=fresh)
    return ident or pinned


def identity_unknown(ds, files: RawFiles) -> bool:
    """Whether an input's identity needs a file read (new or changed since it was hashed)."""
    if _verify_by_hash(ds):  # hashed first: an unchanged file is a cache hit, not a rebuild
        return False
    pinned = _pinned(ds)
    return any(p.name not in pinned and not sha256_known(p) for p in _identity_paths(ds, files))


def _verify_by_hash(ds) -> bool:
    return str(ds.get("verify") or "stat") == "hash"


def _pinned(ds) -> dict:
    return {str(k): v for k, v in (ds.origin.files or {}).items() if v}


def _identity_paths(ds, files: RawFiles) -> list[Path]:
    return files.all_paths() if (ds.path or ds.raw_dir) else []


# ------------------------------------------------------------------------------ sha256 memo
_SHA_MEMO: dict[tuple, str] = {}
_MEMO_FILE: Path | None = None
_MEMO_KEY_LEN = 4


def _use_sha_memo(cache_root: Path) -> None:
    """Persist the sha256 of every raw file recx hashed (keyed by path, size, mtime and ctime)
    in the cache, so a 5 GB file is hashed once, not per run; deleting the cache forgets it."""
    global _MEMO_FILE
    _MEMO_FILE = Path(cache_root) / "sha256-memo.json"
    try:
        for row in json.loads(_MEMO_FILE.read_text()):
            if len(row) == _MEMO_KEY_LEN + 1:  # rows of an older key are dropped
                _SHA_MEMO.setdefault(tuple(row[:-1]), row[-1])
    except (OSError, ValueError, TypeError, IndexError):
        pass


def _save_sha_memo() -> None:
    if _MEMO_FILE is None:
        return
    rows = [[*k, v] for k, v in _SHA_MEMO.items()]
    tmp = _MEMO_FILE.with_name(_MEMO_FILE.name + f".tmp{os.getpid()}")
    try:
        _MEMO_FILE.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(rows))
        os.replace(tmp, _MEMO_FILE)
    except OSError:  # a read-only cache only loses the memo
        tmp.unlink(missing_ok=True)


def _memo_key(path: Path) -> tuple:
    """Path, size, mtime and ctime: a file edited in place keeps its size and can get its mtime
    back (`touch -d`), but its ctime changes with every write and cannot be set by hand."""
    return (*stat_identity(path), Path(path).stat().st_ctime_ns)


def sha256_known(path: Path) -> bool:
    """Whether `path`, as it is now, was hashed before (then `sha256_cached` costs nothing)."""
    return _memo_key(path) in _SHA_MEMO


def remember_sha256(path: Path, sha: str) -> None:
    """Record a hash just computed (e.g. while checking an extracted archive member)."""
    _SHA_MEMO[_memo_key(path)] = sha
    _save_sha_memo()


def sha256_cached(path: Path, abort=None, fresh: bool = False) -> str:
    """The file's sha256, from the memo when its stat identity is unchanged (`fresh`: read the
    file again whatever the memo says, for `dataset.verify=hash`)."""
    key = _memo_key(path)
    if fresh or key not in _SHA_MEMO:
        _SHA_MEMO[key] = file_sha256(path, abort=abort)
        _save_sha_memo()
    return _SHA_MEMO[key]
