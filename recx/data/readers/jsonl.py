"""JSON lines (plain or gzip): streamed by pyarrow with an explicit schema, or line by line
through `json.loads` when pyarrow cannot parse a line (its errors name the line)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from recx.data.readers.sink import feed_records
from recx.data.readers.textio import estimate_rows, open_text, reading
from recx.errors import DataFormatError

JSON_BLOCK = 1 << 20  # bytes per JSON block (> the longest line; retried larger); the reader
# keeps dozens in flight, so a bigger block costs memory and buys no speed


def scan_json(path: Path, sink, fields: dict[str, pa.DataType]) -> None:
    """Feed JSON-lines `path` (plain or .gz) to `sink.add` in chunks, keeping only `fields`.

    pyarrow parses the lines with an explicit schema and ignores every other field (review
    texts never reach memory); a line it cannot parse sends the file through `json.loads`,
    whose errors name the line.
    """
    import pyarrow.json as pajson

    path = Path(path)
    schema = pa.schema([(k, v) for k, v in fields.items()])
    block = JSON_BLOCK
    for _attempt in range(3):
        try:
            with reading(path):
                stream = pa.input_stream(str(path), compression="detect")
                reader = pajson.open_json(
                    stream, read_options=pajson.ReadOptions(block_size=block),
                    parse_options=pajson.ParseOptions(explicit_schema=schema,
                                                      unexpected_field_behavior="ignore"))
                line = 1
                for batch in reader:
                    if line == 1 and batch.num_rows:
                        sink.reserve(estimate_rows(path, batch.num_rows, block))
                    sink.add(batch, line)
                    line += batch.num_rows
            if sink.rows_seen == 0:
                _check_json_not_empty(path)
            return
        except DataFormatError:
            raise
        except pa.ArrowInvalid as e:
            sink.reset()
            if "straddling" in str(e) or "block size" in str(e).lower():
                block *= 8  # a line longer than a block
                continue
            break
        except (pa.ArrowException, UnicodeDecodeError):
            sink.reset()
            break
    scan_json_python(path, sink, list(fields))


def _check_json_not_empty(path: Path) -> None:
    with reading(path), open_text(path) as f:
        for line in f:
            if line.strip():
                return
    raise DataFormatError("the file is empty", path=path,
                          hint="point the dataset at a file with data rows")


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of a JSON-lines file; a bad line is a DataFormatError."""
    with reading(path), open_text(path) as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(f"not valid JSON ({e.msg})", path=path, line=no,
                                      hint="each line must be one JSON object") from None
            if not isinstance(obj, dict):
                raise DataFormatError("not a JSON object", path=path, line=no,
                                      hint="each line must be one JSON object")
            yield no, obj


def scan_json_python(path: Path, sink, fields: list[str]) -> None:
    feed_records(iter_json_lines(path), sink, fields, path)
