"""Downloads from a data set's official source (ARCHITECTURE §6.1, step 3).

Guarantees:

- bytes stream to ``<file>.part``; only a complete, verified file is moved into place with
  ``os.replace``, so an interrupted or failed download never leaves a file that looks complete;
- the sha256 is computed while streaming (the bytes of a resumed ``.part`` are hashed first);
- a ``.part`` left by an interrupted download is resumed with an HTTP ``Range`` request when the
  server honours it (``206``), and restarted from zero otherwise;
- a checksum mismatch renames the file ``<file>.corrupt`` and raises :class:`ChecksumError`
  with the expected and the actual hash;
- archives (zip, tar, gzip) are extracted into a staging folder, refusing members that would
  land outside it, and their files move into place only when every pinned sha256 matches: a
  rejected archive leaves no file that a later run would take as data;
- ``file://`` URLs work (tests and mirrors on a shared disk), with resume by seeking;
- progress is a rich bar on a terminal and one log line per 10 % otherwise (SLURM, CI, logs);
- ``offline=true`` forbids all of it.

Unpinned files (no sha256 in ``origin.files``) are downloaded with a warning; their computed
sha256 is written to ``<folder>/download.json`` so that it can be pinned.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import logging
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from recx.errors import ChecksumError, DataFormatError, DataMissingError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 60


class DownloadError(DataMissingError):
    """The transfer failed; the partial `.part` file is kept for a resume."""


# ------------------------------------------------------------------------------- public entry
def download_dataset(ds, folder: Path, *, offline: bool = False,
                     progress: str | bool = "auto") -> list[Path]:
    """Download (and extract) the files of dataset view `ds` into `folder`; returns the paths of
    the downloaded files (archives included)."""
    from recx.data.download import expected_files, fmt, optional_files, pinned_files

    if offline:
        raise DataMissingError(f"dataset {ds.name!r} must be downloaded but offline=true",
                               hint="set offline=false, or pass dataset.raw_dir=<folder>")
    if str(ds.download) == "manual" or ds.download is not True:
        raise DataMissingError(f"dataset {ds.name!r} cannot be downloaded automatically",
                               hint="download it by hand and pass dataset.raw_dir=<folder>")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pins = pinned_files(ds)
    wanted = expected_files(ds) + optional_files(ds)
    archive = str(ds.origin.archive or "none")
    got: list[Path] = []
    record: dict[str, dict] = {}
    if ds.origin.urls:
        for name, url in ds.origin.urls.items():
            name, url = fmt(ds, str(name)), fmt(ds, str(url))
            if archive == "gzip":  # url is <name>.gz: keep the .gz, extract <name>
                gz = folder / Path(urllib.parse.urlparse(url).path).name
                sha = fetch_url(url, gz, progress=progress)
                record[gz.name] = {"url": url, "sha256": sha}
                with staging(folder, pins, gz) as tmp:
                    gunzip(gz, tmp / name)
                got.append(gz)
            else:
                target = folder / name
                sha = fetch_url(url, target, sha256=pins.get(name), progress=progress)
                record[name] = {"url": url, "sha256": sha, "pinned": bool(pins.get(name))}
                got.append(target)
    if ds.origin.url:
        url = fmt(ds, str(ds.origin.url))
        fname = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
        target = folder / fname
        direct = archive == "none"
        sha = fetch_url(url, target, progress=progress,
                        sha256=ds.origin.get("sha256") or (pins.get(fname) if direct else None),
                        md5=ds.origin.get("md5"))
        record[fname] = {"url": url, "sha256": sha}
        got.append(target)
        if archive not in ("none", "zip", "tar", "gzip"):
            raise DataFormatError(f"unknown origin.archive={archive!r}",
                                  hint="use none, zip, tar or gzip")
        if archive == "gzip" and len(wanted) != 1:
            raise DataFormatError(f"archive: gzip holds one file, but {len(wanted)} are "
                                  f"expected ({wanted})", path=target,
                                  hint="list exactly one file in origin.files")
        if archive != "none":
            with staging(folder, pins, target) as tmp:
                if archive == "zip":
                    extract_zip(target, tmp, wanted)
                elif archive == "tar":
                    extract_tar(target, tmp, wanted)
                else:
                    gunzip(target, tmp / wanted[0])
    unpinned = [n for n in wanted if not pins.get(n) and (folder / n).exists()]
    if unpinned and not ds.origin.get("sha256") and not ds.origin.get("md5"):
        log.warning("%s: no sha256 pinned for %s; the computed hashes are in %s",
                    ds.name, ", ".join(unpinned), folder / "download.json")
    _write_record(folder / "download.json", record)
    return got


def _write_record(path: Path, record: dict) -> None:
    try:
        old = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        old = {}
    old.update({k: {**v, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")} for k, v in
                record.items()})
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(old, indent=1) + "\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ one URL
def fetch_url(url: str, target: Path, *, sha256: str | None = None, md5: str | None = None,
              progress: str | bool = "auto") -> str:
    """Download `url` to `target` through `target.part`; returns the sha256 of the file.

    An existing `target` with the pinned hash is kept. A `.part` is resumed. On a hash mismatch
    the data is moved to `target.corrupt` and ChecksumError names both hashes.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and (sha256 or md5):
        if _hash_file(target, "sha256" if sha256 else "md5") == (sha256 or md5):
            return sha256 if sha256 else _hash_file(target, "sha256")
        os.replace(target, target.with_name(target.name + ".corrupt"))
    part = target.with_name(target.name + ".part")
    sha, md = hashlib.sha256(), hashlib.md5()
    offset = part.stat().st_size if part.exists() else 0
    if offset:
        with open(part, "rb") as f:  # hash what a previous attempt already fetched
            while block := f.read(CHUNK):
                sha.update(block)
                md.update(block)
    stream, total, used = _open(url, offset)
    if used != offset:  # the server cannot resume: start from zero with fresh hashes
        part.unlink(missing_ok=True)
        sha, md = hashlib.sha256(), hashlib.md5()
    offset = written = used
    with stream, open(part, "ab" if offset else "wb") as out, \
            _Progress(target.name, total, offset, progress) as bar:
        while True:
            try:
                block = stream.read(CHUNK)
            except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
                out.flush()
                raise _interrupted(url, part, written, total, e) from None
            if not block:
                break
            out.write(block)
            sha.update(block)
            md.update(block)
            written += len(block)
            bar.update(written)
        out.flush()
        os.fsync(out.fileno())
    if total is not None and written != total:
        raise _interrupted(url, part, written, total, "connection closed early")
    actual = sha.hexdigest()
    if (sha256 and actual != sha256) or (md5 and md.hexdigest() != md5):
        bad = target.with_name(target.name + ".corrupt")
        os.replace(part, bad)
        kind, want, got = ("sha256", sha256, actual) if sha256 else ("md5", md5, md.hexdigest())
        raise ChecksumError(
            f"{url}: {kind} mismatch, the download was moved to {bad}\n"
            f"  expected {want}\n  actual   {got}",
            hint="the server returned a different or damaged file: try again later, or "
            "download it by hand, check it, and pass dataset.raw_dir=<folder>")
    os.replace(part, target)
    return actual


def _interrupted(url, part: Path, written: int, total, why) -> DownloadError:
    size = f"{written} of {total} bytes" if total else f"{written} bytes"
    return DownloadError(
        f"download of {url} was interrupted after {size} ({why}); the partial data is kept "
        f"in {part}",
        hint="run the same command again to resume, or download the file by hand and pass "
        "dataset.raw_dir=<folder>")


def _open(url: str, offset: int):
    """Open `url` at `offset`; returns (stream, total size or None, the offset actually used:
    0 when the source cannot resume)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        if not path.exists():
            raise DownloadError(f"{url}: no such file", hint="check origin.url / origin.urls")
        size = path.stat().st_size
        if offset > size:  # a stale .part longer than the file: start again
            offset = 0
        f = open(path, "rb")  # noqa: SIM115 - returned to the caller, closed there
        f.seek(offset)
        return f, size, offset
    headers = {"User-Agent": "recx-downloader"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # range not satisfiable: the .part is stale
            return _open(url, 0)
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}",
                            hint="the source may have moved: check origin.url, or download by "
                            "hand and pass dataset.raw_dir=<folder>") from None
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"{url}: {getattr(e, 'reason', e)}",
                            hint="check the network (offline=true forbids downloads), or "
                            "download by hand and pass dataset.raw_dir=<folder>") from None
    length = resp.headers.get("Content-Length")
    if offset and resp.status == 206:
        rng = resp.headers.get("Content-Range", "")
        tail = rng.rsplit("/", 1)[-1]
        total = int(tail) if tail.isdigit() else (offset + int(length) if length else None)
        log.info("resuming %s at byte %d", url, offset)
        return resp, total, offset
    if offset:
        log.info("%s: the server does not resume; downloading from the start", url)
    return resp, int(length) if length else None, 0


def _hash_file(path: Path, kind: str) -> str:
    h = hashlib.new(kind)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------ progress
class _Progress:
    """A rich download bar on a TTY, else one log line per 10 %."""

    def __init__(self, name: str, total: int | None, start: int, setting):
        from recx.console import progress_enabled

        self.name, self.total, self.setting = name, total, setting
        self.rich = progress_enabled(setting)
        self.next_pct = 10 * (int(100 * start / total) // 10 + 1) if total else 10
        self.next_bytes = start + (256 << 20)
        self.bar = None

    def __enter__(self):
        if self.rich:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            from recx.console import console

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                                console=console, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task(f"downloading {self.name}", total=self.total)
        else:
            log.info("downloading %s (%s)", self.name,
                     _mib(self.total) if self.total else "size unknown")
        return self

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done)
            return
        if self.total:
            pct = 100 * done / self.total
            if pct >= self.next_pct:
                log.info("downloading %s: %d%% (%s of %s)", self.name, int(pct) // 10 * 10,
                         _mib(done), _mib(self.total))
                self.next_pct = 10 * (int(pct) // 10 + 1)
        elif done >= self.next_bytes:
            log.info("downloading %s: %s", self.name, _mib(done))
            self.next_bytes = done + (256 << 20)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.1f} MiB"


# ------------------------------------------------------------------------------ archives
@contextlib.contextmanager
def staging(folder: Path, pins: dict[str, str | None], archive: Path):
    """A fresh folder to extract `archive` into. Its files move into `folder` only when the
    extraction finished and every pinned sha256 matches, so a rejected archive (an unsafe
    member, a damaged or foreign file) leaves nothing that a later run would take as data."""
    from recx.config.hashing import file_sha256
    from recx.data.download import remember_sha256

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
                remember_sha256(dest, sums[p])
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
