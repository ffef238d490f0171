"""Structure check of the recx package, from the source alone (AST; nothing is imported).

    python scripts/check_structure.py [--json] [--max-file 400] [--max-function 60]

Prints four lists:

- files over ``--max-file`` lines;
- functions (and methods) over ``--max-function`` lines, from ``def`` to the last line;
- import cycles: groups of modules that import each other, directly or through others,
  counting imports at the top of a module and inside functions alike (imports under
  ``if TYPE_CHECKING:`` are never executed and do not count);
- stage-to-stage imports: a stage module (one in ``recx/stages/`` with a top-level ``run``)
  importing another stage module. Stages share code through helper modules instead.

``--json`` prints the same facts as one JSON object (the structure test reads it).
The exit status is 0: this is a report; the test decides what must hold.
"""

from __future__ import annotations

import argparse
import ast
import json
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module of the package
    line: int
    in_function: bool


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted name of every module of the package (``pkg.sub`` for ``pkg/sub/__init__.py``)."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool = False):
    """Yield (node, in_function) below `node`, skipping TYPE_CHECKING blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield other, in_function
                yield from _walk(other, in_function)
            continue
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield child, in_function
        yield from _walk(child, inner)


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module that `import name` executes last (the longest existing prefix)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node, in_function in _walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            # `from pkg import sub` imports the submodule when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        for t in targets:
            resolved = _resolve(t, modules)
            if resolved is not None and resolved != module:
                found.append(Import(module, resolved, node.lineno, in_function))
    return found


def cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def long_functions(path: Path, limit: int) -> list[tuple[str, int, int]]:
    """(qualified name, first line, length) of every def longer than `limit` lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    length = child.end_lineno - child.lineno + 1
                    if length > limit:
                        out.append((name, child.lineno, length))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def stage_modules(modules: dict[str, Path], package: str) -> set[str]:
    """Modules of `<package>.stages` that define a top-level `run` (the stages themselves)."""
    found = set()
    for name, path in modules.items():
        if name.startswith(f"{package}.stages.") and name.count(".") == 2:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if any(isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body):
                found.add(name)
    return found


def check(package_dir: Path, max_file: int = 400, max_function: int = 60) -> dict:
    modules = module_names(package_dir)
    root = package_dir.parent
    rel = {name: path.relative_to(root).as_posix() for name, path in modules.items()}
    edges = [e for name, path in modules.items() for e in imports_of(name, path, modules)]
    stages = stage_modules(modules, package_dir.name)
    files = sorted(((rel[n], len(p.read_text(encoding="utf-8").splitlines()))
                    for n, p in modules.items()), key=lambda x: (-x[1], x[0]))
    functions = sorted(((rel[n], q, line, length) for n, p in modules.items()
                        for q, line, length in long_functions(p, max_function)),
                       key=lambda x: (-x[3], x[0], x[2]))
    groups = cycles(edges)
    return {
        "files_over": [{"file": f, "lines": n} for f, n in files if n > max_file],
        "functions_over": [{"file": f, "function": q, "line": line, "lines": n}
                           for f, q, line, n in functions],
        "import_cycles": groups,
        "cycle_edges": sorted({(rel[e.source], e.line, e.target) for e in edges
                               if any(e.source in c and e.target in c for c in groups)}),
        # one entry per import statement and imported stage
        "stage_to_stage": [
            {"file": rel[s], "line": line, "imports": t, "in_function": f}
            for s, line, t, f in sorted({(e.source, e.line, e.target, e.in_function)
                                         for e in edges if e.source in stages
                                         and e.target in stages})],
        "limits": {"file": max_file, "function": max_function},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", default=str(REPO / "recx"), help="package folder to check")
    ap.add_argument("--max-file", type=int, default=400, help="longest file without a mention")
    ap.add_argument("--max-function", type=int, default=60, help="longest function likewise")
    ap.add_argument("--json", action="store_true", help="print the facts as JSON")
    ap.add_argument("--edges", action="store_true", help="list the imports inside each cycle")
    args = ap.parse_args(argv)
    facts = check(Path(args.package), args.max_file, args.max_function)
    if args.json:
        print(json.dumps(facts, indent=1))
        return
    print(f"files over {args.max_file} lines: {len(facts['files_over'])}")
    for f in facts["files_over"]:
        print(f"  {f['lines']:5d}  {f['file']}")
    print(f"functions over {args.max_function} lines: {len(facts['functions_over'])}")
    for f in facts["functions_over"]:
        print(f"  {f['lines']:5d}  {f['file']}:{f['line']}  {f['function']}")
    print(f"import cycles: {len(facts['import_cycles'])}")
    for c in facts["import_cycles"]:
        print("  " + " <-> ".join(c))
        if args.edges:
            for file, line, target in facts["cycle_edges"]:
                if target in c:
                    print(f"      {file}:{line} imports {target}")
    print(f"stage-to-stage imports: {len(facts['stage_to_stage'])}")
    for s in facts["stage_to_stage"]:
        where = "inside a function" if s["in_function"] else "top level"
        print(f"  {s['file']}:{s['line']}  imports {s['imports']}  ({where})")


if __name__ == "__main__":
    main()
