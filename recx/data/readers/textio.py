"""Raw text files as the readers open them: plain or gzip, their encoding and delimiter, their
header, the line of a bad row, and decompression failures as errors that name the file."""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import zlib
from pathlib import Path

import pyarrow as pa

from recx.errors import DataFormatError

_SEPARATORS = [",", "\t", ";", "|"]


def open_text(path: Path, encoding: str = "utf-8"):
    """Text handle on a plain or gzip file; undecodable bytes are replaced, never fatal."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding, errors="replace")
    return open(path, encoding=encoding, errors="replace")


_HEAD_BYTES = 1 << 16


_UTF8 = ("utf-8", "utf8", "utf_8")


def _head(path: Path) -> bytes:
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with reading(path), opener(path, "rb") as f:
        return f.read(_HEAD_BYTES)


def text_encoding(path: Path, configured: str | None = None) -> str:
    """The encoding to read a user's text file with.

    A byte-order mark decides (UTF-8 with BOM, UTF-16), as do the zero bytes of UTF-16 text
    without one; otherwise `configured` (`dataset.options.encoding`, UTF-8 by default). The
    first 64 KiB must decode: bytes that are no text, or text in another encoding, are a
    DataFormatError naming the line and the option to set.
    """
    path = Path(path)
    head = _head(path)
    enc = str(configured or "utf-8")
    default = enc.lower() in _UTF8
    if default:
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        even, odd = head[0::2], head[1::2]
        if len(head) >= 8 and odd.count(0) > 0.4 * len(odd) and not even.count(0):
            return "utf-16-le"
        if len(head) >= 8 and even.count(0) > 0.4 * len(even) and not odd.count(0):
            return "utf-16-be"
    control = sum(head.count(bytes([b])) for b in (*range(0, 9), *range(14, 32)))
    if default and head and control > 0.01 * len(head):
        raise DataFormatError(
            "not a text file (it holds binary bytes, e.g. a compressed or spreadsheet file)",
            path=path, hint="give a CSV/TSV text file, a .parquet, or a .jsonl file; "
            "decompress or export the data first (a .gz suffix is read as gzip)")
    try:
        codecs.getincrementaldecoder(enc)().decode(head, final=len(head) < _HEAD_BYTES)
    except LookupError:
        raise DataFormatError(f"unknown encoding {enc!r} (+dataset.options.encoding)",
                              path=path, hint="use a Python codec name such as utf-8, "
                              "latin-1, cp1252 or utf-16") from None
    except UnicodeDecodeError as e:
        raise encoding_error(path, enc, e.start, head) from None
    return enc


def encoding_error(path: Path, enc: str, offset: int, data: bytes,
                   lines_before: int = 0) -> DataFormatError:
    line = lines_before + data.count(b"\n", 0, offset) + 1
    return DataFormatError(
        f"not valid {enc} text (byte 0x{data[offset]:02x})", path=path, line=line,
        hint="name the file's encoding: +dataset.options.encoding=latin-1 (or cp1252, "
        "utf-16, ...), or save the file as UTF-8")


def first_undecodable(path: Path, enc: str) -> DataFormatError | None:
    """The error for the first bytes of `path` that do not decode as `enc` (whole file)."""
    dec = codecs.getincrementaldecoder(enc)()
    opener = gzip.open if Path(path).suffix == ".gz" else open
    line = 1
    with opener(path, "rb") as f:
        while block := f.read(1 << 20):
            try:
                dec.decode(block)
            except UnicodeDecodeError as e:
                return encoding_error(path, enc, e.start, block, line - 1)
            line += block.count(b"\n")
    return None


def sniff_separator(path: Path, default: str = ",", encoding: str = "utf-8") -> str:
    """Guess the delimiter from the first lines (the parsers need it spelled out)."""
    with reading(path), open_text(path, encoding) as f:
        head = "".join(f.readline() for _ in range(20))
    if not head.strip():
        return default
    try:
        return csv.Sniffer().sniff(head, delimiters="".join(_SEPARATORS)).delimiter
    except csv.Error:
        counts = {s: head.splitlines()[0].count(s) for s in _SEPARATORS}
        best = max(counts, key=counts.get)
        return best if counts[best] else default


def gzip_problem(path: Path) -> str | None:
    """Why a gzip file cannot be read to the end (None when it can)."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(8 << 20):
                pass
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as e:
        return str(e) or type(e).__name__
    return None


def corrupt_gzip_error(path: Path, why: str) -> DataFormatError:
    return DataFormatError(
        f"corrupted or truncated gzip file ({why})", path=path,
        hint="the file is damaged (an interrupted download?): delete it and download it again "
        "(or copy it again into dataset.raw_dir)")


@contextlib.contextmanager
def reading(path: Path):
    """Turn a decompression failure while reading `path` into a DataFormatError naming it."""
    path = Path(path)
    try:
        yield
    except DataFormatError:
        raise
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise corrupt_gzip_error(path, str(e) or type(e).__name__) from None
    except (OSError, pa.ArrowException):
        if path.suffix == ".gz" and (why := gzip_problem(path)):
            raise corrupt_gzip_error(path, why) from None
        raise


def csv_header(path: Path, sep: str, encoding: str = "utf-8") -> list[str]:
    with reading(path), open_text(path, encoding) as f:
        first = f.readline()
    if not first.strip():
        raise DataFormatError("the file is empty", path=path,
                              hint="point the dataset at a file with a header and data rows")
    return next(csv.reader([first.rstrip("\r\n")], delimiter=sep))


def locate_bad_row(path: Path, sep: str, n_fields: int, *, header: bool,
                   encoding: str = "utf-8") -> tuple[int | None, str]:
    """The first line whose field count differs from the header's (for error messages)."""
    with open_text(path, encoding) as f:
        reader = csv.reader(f, delimiter=sep)
        for row in reader:
            if reader.line_num == 1 and header:
                continue
            if row and len(row) != n_fields:
                return reader.line_num, f"expected {n_fields} fields, saw {len(row)}"
    return None, "could not parse the file"


def estimate_rows(path: Path, rows_in_first_block: int, block_size: int) -> int:
    """About how many rows a file holds, from its first block (10 % margin). For gzip the
    uncompressed size comes from the trailer (exact below 4 GiB)."""
    size = Path(path).stat().st_size
    if Path(path).suffix == ".gz":
        with open(path, "rb") as f:
            f.seek(-4, 2)
            isize = int.from_bytes(f.read(4), "little")
        size = isize if isize >= size else size * 5
    return int(1.1 * rows_in_first_block * max(1.0, size / block_size)) + 1024
