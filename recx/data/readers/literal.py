"""Python-literal lines (`{'asin': '…', …}`, Amazon 2014 metadata, Steam): the wanted keys are
picked out by a regular expression, and a line is parsed whole with `ast.literal_eval` only when
that fails (no full parse of long review texts)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

from recx.data.readers.textio import open_text, reading
from recx.errors import DataFormatError


def _field_re(key: str) -> re.Pattern:
    lit = r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|True|False|None"""
    return re.compile(r"""['"]""" + re.escape(key) + r"""['"]\s*:\s*(""" + lit + ")")


def _literal(text: str):
    if text[0] in "'\"":
        return text[1:-1] if "\\" not in text else ast.literal_eval(text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_literal_line(line: str, no: int, path) -> dict:
    """One line of Python-literal text (`{'asin': '…', …}`), or JSON, as a dict."""
    try:
        obj = json.loads(line) if line.lstrip().startswith('{"') else ast.literal_eval(line)
    except (ValueError, SyntaxError, json.JSONDecodeError, MemoryError, RecursionError):
        try:
            obj = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
            raise DataFormatError(f"not a Python literal or JSON object ({type(e).__name__})",
                                  path=path, line=no,
                                  hint="each line must be one dict literal, e.g. "
                                  "{'asin': '...', 'title': '...'}") from None
    if not isinstance(obj, dict):
        raise DataFormatError("not a dict literal", path=path, line=no,
                              hint="each line must be one dict literal")
    return obj


def iter_literal_fields(path: Path, keys: list[str]) -> Iterator[tuple[int, dict]]:
    """(line, {key: value}) of Python-literal lines, reading only `keys` of scalar value.

    A regular expression extracts each key (no full parse of the long review text); a line
    where one is missing is parsed whole with `ast.literal_eval`.
    """
    pats = {k: _field_re(k) for k in keys}
    with reading(path), open_text(path) as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            out = {}
            for k, pat in pats.items():
                m = pat.search(line)
                if m is None:
                    break
                out[k] = _literal(m.group(1))
            else:
                yield no, out
                continue
            obj = parse_literal_line(line, no, path)
            yield no, {k: obj.get(k) for k in keys}


def iter_literal_records(path: Path, wanted_key: str | None = None,
                         wanted: set[str] | None = None) -> Iterator[tuple[int, dict]]:
    """Whole records of Python-literal (or JSON) lines; with `wanted`, only those whose
    `wanted_key` is in the set are parsed (a cheap regex looks at the key first)."""
    pat = _field_re(wanted_key) if wanted_key and wanted is not None else None
    with reading(path), open_text(path) as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            if pat is not None:
                m = pat.search(line)
                if m is not None and str(_literal(m.group(1))) not in wanted:
                    continue
            yield no, parse_literal_line(line, no, path)
