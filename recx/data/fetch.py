"""Downloads from URLs into a folder (ARCHITECTURE §6.1, step 3), the data layer's network leaf.

Guarantees:

- bytes stream to ``<file>.part``; only a complete, verified file is moved into place with
  ``os.replace``, so an interrupted or failed download never leaves a file that looks complete;
- the sha256 is computed while streaming (the bytes of a resumed ``.part`` are hashed first);
- a ``.part`` left by an interrupted download is resumed with an HTTP ``Range`` request when the
  server honours it (``206``), and restarted from zero otherwise;
- a checksum mismatch renames the file ``<file>.corrupt`` and raises :class:`ChecksumError`
  with the expected and the actual hash;
- archives (zip, tar, gzip) are extracted through a staging folder (`recx.data.archives`): a
  rejected archive leaves no file that a later run would take as data;
- ``file://`` URLs work (tests and mirrors on a shared disk), with resume by seeking;
- progress is a rich bar on a terminal and one log line per 10 % otherwise (SLURM, CI, logs).

The computed sha256 of every download is written to ``<folder>/download.json`` (so that an
unpinned file can be pinned). This module knows URLs, file names and pins, never a dataset
config: `recx.data.rawfiles.download_dataset` turns a config into those.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from recx.data.archives import extract_tar, extract_zip, gunzip, staging
from recx.errors import ChecksumError, DataFormatError, DataMissingError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 60


class DownloadError(DataMissingError):
    """The transfer failed; the partial `.part` file is kept for a resume."""


# ------------------------------------------------------------------------------- public entry
@dataclass
class Fetched:
    """What `fetch_files` left in the folder: the downloaded files (archives included) and the
    sha256 of every extracted member it checked against a pin (path → sha256)."""

    paths: list[Path] = field(default_factory=list)
    verified: dict[Path, str] = field(default_factory=dict)


def fetch_files(folder: Path, *, wanted: list[str], pins: dict[str, str | None],
                url: str | None = None, urls: dict[str, str] | None = None,
                archive: str = "none", sha256: str | None = None, md5: str | None = None,
                progress: str | bool = "auto") -> Fetched:
    """Download into `folder`: `urls` (file name → URL, each file on its own; `archive: gzip`
    keeps `<name>.gz` and extracts `<name>`) and `url` (one file, or an archive holding the
    `wanted` files). `pins` maps file names to the sha256 they must have; `sha256`/`md5` pin
    the file behind `url` itself."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = Fetched()
    record: dict[str, dict] = {}
    for name, one in (urls or {}).items():
        if archive == "gzip":  # url is <name>.gz: keep the .gz, extract <name>
            gz = folder / Path(urllib.parse.urlparse(one).path).name
            sha = fetch_url(one, gz, progress=progress)
            record[gz.name] = {"url": one, "sha256": sha}
            with staging(folder, pins, gz, out.verified) as tmp:
                gunzip(gz, tmp / name)
            out.paths.append(gz)
        else:
            target = folder / name
            sha = fetch_url(one, target, sha256=pins.get(name), progress=progress)
            record[name] = {"url": one, "sha256": sha, "pinned": bool(pins.get(name))}
            out.paths.append(target)
    if url:
        target, sha = _fetch_archive(folder, url, archive, wanted, pins, sha256, md5, progress,
                                     out.verified)
        record[target.name] = {"url": url, "sha256": sha}
        out.paths.append(target)
    _write_record(folder / "download.json", record)
    return out


def _fetch_archive(folder: Path, url: str, archive: str, wanted: list[str], pins: dict,
                   sha256: str | None, md5: str | None, progress, verified: dict
                   ) -> tuple[Path, str]:
    """Download `url` (a file, or an archive extracted through a staging folder)."""
    fname = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
    target = folder / fname
    direct = archive == "none"
    sha = fetch_url(url, target, progress=progress, md5=md5,
                    sha256=sha256 or (pins.get(fname) if direct else None))
    if archive not in ("none", "zip", "tar", "gzip"):
        raise DataFormatError(f"unknown origin.archive={archive!r}",
                              hint="use none, zip, tar or gzip")
    if archive == "gzip" and len(wanted) != 1:
        raise DataFormatError(f"archive: gzip holds one file, but {len(wanted)} are "
                              f"expected ({wanted})", path=target,
                              hint="list exactly one file in origin.files")
    if archive != "none":
        with staging(folder, pins, target, verified) as tmp:
            if archive == "zip":
                extract_zip(target, tmp, wanted)
            elif archive == "tar":
                extract_tar(target, tmp, wanted)
            else:
                gunzip(target, tmp / wanted[0])
    return target, sha


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
