"""Archives of a download (zip, tar, gzip), extracted so that nothing half-done or foreign is
ever taken as data: members land in a staging folder, members that would escape it are refused,
and files move into place only when every pinned sha256 matches. A damaged archive is renamed
`<archive>.corrupt` and reported as such."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from recx.config.hashing import file_sha256
from recx.errors import ChecksumError, DataFormatError

CHUNK = 1 << 20


@contextlib.contextmanager
def staging(folder: Path, pins: dict[str, str | None], archive: Path, verified: dict):
    """A fresh folder to extract `archive` into. Its files move into `folder` only when the
    extraction finished and every pinned sha256 matches, so a rejected archive (an unsafe
    member, a damaged or foreign file) leaves nothing that a later run would take as data.
    The sha256 of each checked member is added to `verified` (final path → sha256)."""
    tmp = folder / f".extracting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        files = [p for p in sorted(tmp.rglob("*")) if p.is_file()]
        sums = {}
        for p in files:
            rel = p.relative_to(tmp).as_posix()
            want = pins.get(rel) or next((v for k, v in pins.items()
                                          if Path(k).name == p.name), None)
            if want:
                sums[p] = file_sha256(p)
                if sums[p] != want:
                    bad = archive.with_name(archive.name + ".corrupt")
                    os.replace(archive, bad)
                    raise ChecksumError(
                        f"{archive.name}: member {rel} has sha256 {sums[p]}, expected {want}; "
                        f"nothing was extracted and the archive was moved to {bad}",
                        hint="the server returned a different or damaged archive: run the "
                        "command again later, or download it by hand, check it, and pass "
                        "dataset.raw_dir=<folder>")
        for p in files:
            dest = folder / p.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, dest)
            if p in sums:
                verified[dest] = sums[p]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _safe_dest(folder: Path, member: str) -> Path:
    dest = (folder / member).resolve()
    if not str(dest).startswith(str(folder.resolve()) + os.sep):
        raise DataFormatError(f"archive member {member!r} would be written outside {folder}",
                              hint="the archive is not the expected one: delete it and retry")
    return dest


def _wanted(member: str, wanted: list[str]) -> bool:
    if not wanted:
        return True
    return any(member == w or member.endswith("/" + w) or Path(member).name == Path(w).name
               for w in wanted)


def _member_target(folder: Path, member: str, wanted: list[str]) -> Path:
    """Extract to the expected name when the archive nests it differently."""
    for w in wanted:
        if member == w:
            return _safe_dest(folder, w)
    return _safe_dest(folder, member)


def _copy_atomic(src, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with open(part, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK)
    os.replace(part, dest)


def extract_zip(archive: Path, folder: Path, wanted: list[str]) -> list[Path]:
    out = []
    try:
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if info.is_dir() or not _wanted(info.filename, wanted):
                    continue
                dest = _member_target(folder, info.filename, wanted)
                with z.open(info) as src:
                    _copy_atomic(src, dest)
                out.append(dest)
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise _corrupt_archive(archive, "zip", e) from None
    return out


def extract_tar(archive: Path, folder: Path, wanted: list[str]) -> list[Path]:
    out = []
    try:
        with tarfile.open(archive, "r:*") as t:
            for m in t:
                if not m.isfile() or not _wanted(m.name, wanted):
                    continue
                dest = _member_target(folder, m.name, wanted)
                src = t.extractfile(m)
                if src is None:
                    continue
                with src:
                    _copy_atomic(src, dest)
                out.append(dest)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise _corrupt_archive(archive, "tar", e) from None
    return out


def gunzip(archive: Path, dest: Path) -> Path:
    try:
        with gzip.open(archive, "rb") as src:
            _copy_atomic(src, dest)
    except (gzip.BadGzipFile, EOFError, OSError) as e:
        Path(str(dest) + ".part").unlink(missing_ok=True)
        raise _corrupt_archive(archive, "gzip", e) from None
    return dest


def _corrupt_archive(archive: Path, kind: str, e) -> DataFormatError:
    bad = archive.with_name(archive.name + ".corrupt")
    if archive.exists():
        os.replace(archive, bad)
    return DataFormatError(f"corrupted or truncated {kind} archive ({e}); moved to {bad}",
                           path=archive,
                           hint="run the command again to download it afresh, or download it "
                           "by hand and pass dataset.raw_dir=<folder>")
