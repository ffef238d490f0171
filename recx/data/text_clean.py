"""One cleaning function for every item-text field that any reader returns.

Every reader hands its raw item text to :func:`clean_field` (through
:func:`clean_item_frame`, which the reader dispatcher in ``recx.data.formats`` applies), so that
titles, categories, brands and descriptions look the same whichever data set they come from:

- ``None``, NaN and empty values become ``""``;
- lists (Amazon categories, descriptions, tags) are flattened, cleaned element-wise, de-duplicated
  case-insensitively and joined with ``", "``;
- HTML entities are unescaped (twice: Amazon metadata is sometimes double-escaped) and tags are
  stripped, including an unterminated trailing tag such as the ``<span class="a-size-medium"``
  that replaces most Magazine_Subscriptions titles in the Amazon 2018 metadata;
- scraping junk (JavaScript, CSS, bare URLs) is dropped;
- control characters are removed and whitespace is collapsed;
- very long values are cut at a word boundary to ``max_chars`` characters (1,000 by default;
  ``dataset.options.text_max_chars`` changes it).

The function is pure and deterministic; ``CLEANING_VERSION`` changes whenever its output changes.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

CLEANING_VERSION = 1
DEFAULT_MAX_CHARS = 1000
LIST_SEPARATOR = ", "

# A tag: '<' + a letter, '/' or '!' + anything up to '>' or the end of the text (unterminated).
_TAG = re.compile(r"<(?:[A-Za-z/!][^<>]*)(?:>|$)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_SPACE = re.compile(r"\s+")
_URL = re.compile(r"^(?:https?://|www\.)\S+$", re.IGNORECASE)
# Fragments of scraped JavaScript/CSS that Amazon metadata carries instead of text.
_JUNK = re.compile(
    r"(?:\bvar\s+\w+\s*=|function\s*\(|getTime\(\)|\bwindow\.|\bdocument\.|P\.when\(|"
    r"\bue\.count|\{\s*[\w-]+\s*:\s*[^}]*;\s*\}|\$\(|/\*|\*/)"
)
_QUICK_OK = re.compile(r"^[^<&\x00-\x1f\x7f\u200b\ufeff]*$")


def _is_missing(value) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _cap(text: str, max_chars: int | None) -> str:
    if not max_chars or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    if space >= max_chars * 0.8:  # cut at a word boundary unless that loses too much
        cut = cut[:space]
    return cut.rstrip(" ,;:-")


def clean_string(text: str, max_chars: int | None = DEFAULT_MAX_CHARS) -> str:
    """Clean one string (see the module docstring); returns ``""`` for junk."""
    if _QUICK_OK.match(text) and "  " not in text and not _JUNK.search(text):
        out = text.strip()  # fast path: nothing to unescape, strip or collapse
    else:
        out = html.unescape(html.unescape(text)) if "&" in text else text
        if "<" in out:
            out = _TAG.sub(" ", out)
        out = _CONTROL.sub("", out)
        out = _SPACE.sub(" ", out).strip()
        if _JUNK.search(out):
            return ""
    if not out or _URL.match(out):
        return ""
    return _cap(out, max_chars)


def _flatten(values: Iterable) -> Iterable:
    for v in values:
        if isinstance(v, list | tuple | np.ndarray):
            yield from _flatten(v)
        else:
            yield v


def clean_field(value, max_chars: int | None = DEFAULT_MAX_CHARS) -> str:
    """Clean one raw text value: a string, a number, a (nested) list of them, or missing."""
    if isinstance(value, list | tuple | np.ndarray):
        seen, parts = set(), []
        for v in _flatten(value):
            s = clean_field(v, None)
            if s and s.lower() not in seen:
                seen.add(s.lower())
                parts.append(s)
        return _cap(LIST_SEPARATOR.join(parts), max_chars)
    if _is_missing(value):
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a year read as 1995.0 stays "1995"
    return clean_string(str(value), max_chars)


def clean_item_frame(items: pd.DataFrame | None,
                     max_chars: int | None = DEFAULT_MAX_CHARS) -> pd.DataFrame | None:
    """Clean every text column of a reader's item frame (`item` as str + text columns).

    Items whose text is empty in every column stay in the frame; the processing stats report
    them (`items_without_text`).
    """
    if items is None:
        return None
    out = pd.DataFrame({"item": items["item"].astype(str).to_numpy(dtype=object)})
    for col in items.columns:
        if col == "item":
            continue
        out[col] = np.array([clean_field(v, max_chars) for v in items[col].to_numpy(dtype=object)],
                            dtype=object)
    return out


def has_text(items: pd.DataFrame | None, fields: list[str] | None = None) -> np.ndarray:
    """Boolean mask: the item has a non-empty value in at least one of `fields` (all if None)."""
    if items is None or len(items) == 0:
        return np.zeros(0 if items is None else len(items), dtype=bool)
    cols = [c for c in (fields or items.columns) if c in items.columns and c != "item"]
    mask = np.zeros(len(items), dtype=bool)
    for c in cols:
        mask |= np.array([bool(v) and str(v).strip() != "" for v in items[c].to_numpy(object)],
                         dtype=bool)
    return mask
