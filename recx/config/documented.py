"""A schema per model, read from the `# (type) meaning` comment of every key of its YAML file.

    hidden: 64              # (int) hidden_size
    stride: 25              # (int|null) targets per window
    loss: ce                # (str) ce = full softmax over all items | bce_1neg = one negative

gives `hidden` the type int, `stride` int or null, and `loss` the choices ce and bce_1neg: a
string comment lists choices when it separates at least two words with `|` (the first may follow
a `: `; text in parentheses is an aside) and the file's own value is one of them (prose that
happens to contain a `|` fails that check and lists none).
Model configs have no dataclass schema (each model has its own keys), so this is how
`recx.config.validate` checks their types and choices before a model is built.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

TYPES = ("int", "float", "str", "bool", "list", "dict", "null")
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_]\w*):(?P<rest>.*)$")
_DOC = re.compile(r"#\s*\((?P<types>[a-z]+(?:\|[a-z]+)*)\)\s*(?P<text>.*)$")
_WORD = re.compile(r"\s*([A-Za-z0-9_.+-]+)")
_ASIDE = re.compile(r"\([^()]*\)")  # "batch (RecBole: one draw per batch)": not a choice


@dataclass(frozen=True)
class Documented:
    types: tuple[str, ...]
    choices: tuple[str, ...] = ()


def parse(text: str) -> dict[str, Documented]:
    """{dotted key: Documented} of a YAML file's commented keys (block mappings nest keys)."""
    out: dict[str, Documented] = {}
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        m = _KEY.match(line)
        if not m or line.lstrip().startswith("#"):
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        rest = m["rest"]
        value = rest.split("#", 1)[0].strip()
        path = ".".join([*(k for _, k in stack), m["key"]])
        if not value:  # a block mapping: its keys follow, indented
            stack.append((indent, m["key"]))
        doc = _DOC.search(rest)
        if doc is None:
            continue
        types = tuple(doc["types"].split("|"))
        if not set(types) <= set(TYPES):
            continue
        choices = ()
        if "str" in types and "|" in doc["text"]:
            parts = [_ASIDE.sub("", p) for p in doc["text"].split("|")]
            parts[0] = parts[0].rsplit(": ", 1)[-1]  # "edge vector: hadamard | l1"
            words = tuple(w.group(1) for w in map(_WORD.match, parts) if w)
            if len(words) >= 2 and value.strip("'\"") in words:
                choices = words
        out[path] = Documented(types, choices)
    return out


@functools.cache
def model_schema(name: str, conf_dirs: tuple[str, ...]) -> dict[str, Documented]:
    """The documented keys of `model/<name>.yaml` in the first config dir that has it."""
    for d in conf_dirs:
        path = Path(d) / "model" / f"{name}.yaml"
        if path.is_file():
            return parse(path.read_text())
    return {}


_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
          "list": "a list", "dict": "a mapping", "null": "null"}


def type_problem(value, doc: Documented) -> str | None:
    """None when `value` has one of the documented types, else what it must be."""
    from omegaconf import DictConfig, ListConfig

    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "list": isinstance(value, list | ListConfig),
        "dict": isinstance(value, dict | DictConfig),
        "null": value is None,
    }
    if any(ok[t] for t in doc.types):
        return None
    return "must be " + " or ".join(_NAMES[t] for t in doc.types)
