"""Where raw files come from (ARCHITECTURE §6.1): `dataset.path` (custom files),
`dataset.raw_dir` (files already on disk, never touches the network), the download cache
`${paths.data}/<name>/`, then a download from the official source.
"""

from __future__ import annotations

import logging
from pathlib import Path

from recx.errors import DataMissingError

log = logging.getLogger(__name__)


class RawFiles:
    """Maps the file names a dataset config expects to paths on disk (matched by base name)."""

    def __init__(self, folder: Path | None, explicit: dict[str, Path] | None = None):
        self.folder = Path(folder) if folder is not None else None
        self.explicit = dict(explicit or {})

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
        out = list(self.explicit.values())
        if self.folder is not None and self.folder.is_dir():
            out += sorted(p for p in self.folder.iterdir() if p.is_file())
        return out


def expected_files(ds) -> list[str]:
    """The raw files a dataset needs, as named in its config."""
    names = [str(k) for k in (ds.origin.files or {})]
    if not names:
        names = [n for n in (ds.file, ds["items"].file) if n]
    return names


def _missing_message(ds, looked_in: str, missing: list[str]) -> DataMissingError:
    files = ds.origin.files or {}
    listed = ", ".join(
        f"{n} (sha256 {str(files[n])[:8]}…)" if files.get(n) else n for n in expected_files(ds))
    src = ds.origin.url or ds.origin.homepage or "(no official source configured)"
    manual = str(ds.download) == "manual"
    lines = [
        f"Dataset {ds.name!r} is not available locally"
        + (" and must be downloaded by hand (its terms must be accepted)." if manual
           else " and downloading is disabled." if not ds.download else "."),
        f"  Official source: {src}",
        f"  Expected files:  {listed}",
        f"  Missing:         {', '.join(missing)}",
        f"  Looked in:       {looked_in}",
    ]
    if ds.origin.instructions:
        lines.append(f"  Instructions:    {ds.origin.instructions}")
    hint = ("place the files in a folder and pass dataset.raw_dir=/path/to/folder "
            "(target.raw_dir=... / source.<name>.raw_dir=... inside transfer stages)")
    if not manual:
        hint = "allow the download (dataset.download=true), or " + hint
    return DataMissingError("\n".join(lines), hint=hint)


def resolve_raw_files(ds, paths, offline: bool = False) -> RawFiles:
    """Find the raw files of `ds`, downloading them on a cache miss when allowed."""
    if ds.reader == "synthetic":
        return RawFiles(None)
    if ds.path:  # custom: explicit files
        explicit = {"main": Path(ds.path)}
        if ds["items"].path:
            explicit["items"] = Path(ds["items"].path)
        for role, p in explicit.items():
            if not p.exists():
                raise DataMissingError(
                    f"{'interactions' if role == 'main' else 'item'} file {str(p)!r} not found "
                    f"(dataset.{'path' if role == 'main' else 'items.path'})",
                    hint="give an existing file, relative to the directory you run recx from "
                    "or absolute")
        return RawFiles(None, explicit)
    if ds.raw_dir:
        folder = Path(ds.raw_dir)
        files = RawFiles(folder)
        missing = [n for n in expected_files(ds) if not files.exists(n)]
        if missing:
            raise _missing_message(ds, f"{folder}/ (dataset.raw_dir)", missing)
        verify_checksums(ds, files)
        return files
    folder = Path(paths.data) / ds.name
    files = RawFiles(folder)
    missing = [n for n in expected_files(ds) if not files.exists(n)]
    if not missing:
        return files
    if ds.download is True and not offline:
        download_dataset(ds, folder)
        return RawFiles(folder)
    raise _missing_message(ds, f"{folder}/", missing)


def verify_checksums(ds, files: RawFiles) -> None:
    """Check every pinned sha256 (memoised by path, size and mtime)."""
    from recx.errors import ChecksumError

    for name, want in (ds.origin.files or {}).items():
        if not want:
            continue
        path = files.path(str(name))
        got = sha256_cached(path)
        if got != str(want):
            raise ChecksumError(
                f"{path}: sha256 {got} does not match the pinned {want} of dataset {ds.name!r}",
                hint="the file is corrupt or a different release: download it again from "
                f"{ds.origin.url or ds.origin.homepage}")


_SHA_MEMO: dict[tuple, str] = {}


def sha256_cached(path: Path) -> str:
    from recx.config.hashing import file_sha256

    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = file_sha256(path)
    return _SHA_MEMO[key]


def download_dataset(ds, folder: Path) -> None:
    """Fetch the official files of `ds` into `folder` (implemented in recx.data.fetch)."""
    from recx.data.fetch import download_dataset as _download

    _download(ds, folder)
