"""The package's structure, as `scripts/check_structure.py` reports it from the AST: stage modules
never import each other, and outside the data layer there is no import cycle and no function
over 60 lines (the report stage's own views excepted)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "check_structure.py"


def check(package=None) -> dict:
    args = [sys.executable, str(SCRIPT), "--json"]
    if package is not None:
        args += ["--package", str(package)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_stages_cycles_and_long_functions():
    facts = check()
    assert facts["stage_to_stage"] == []
    outside = [c for c in facts["import_cycles"]
               if not all(m.startswith("recx.data.") for m in c)]
    assert outside == []
    long = [f"{f['file']}:{f['function']}" for f in facts["functions_over"]
            if not f["file"].startswith(("recx/data/", "recx/stages/report"))]
    assert long == []


def test_the_check_finds_what_it_reports(tmp_path):
    """A made-up package: a cycle through an import inside a function, one only under
    TYPE_CHECKING (never executed: no cycle), a stage importing another, a 61-line function."""
    pkg = tmp_path / "pkg"
    (pkg / "stages").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "def f():\n    from pkg.a import x\n    return x\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n",
        "d.py": "import pkg.c\n",
        "stages/__init__.py": "",
        "stages/common.py": "",
        "stages/one.py": "from pkg.stages.common import *\n\ndef run(ctx):\n    pass\n",
        "stages/two.py": "def run(ctx):\n    from pkg.stages import one\n",
        "long.py": "def long():\n" + "    x = 1\n" * 60,
    }
    for name, text in files.items():
        (pkg / name).write_text(textwrap.dedent(text))
    facts = check(pkg)
    assert facts["import_cycles"] == [["pkg.a", "pkg.b"]]
    assert facts["stage_to_stage"] == [{"file": "pkg/stages/two.py", "line": 2,
                                        "imports": "pkg.stages.one", "in_function": True}]
    assert [(f["function"], f["lines"]) for f in facts["functions_over"]] == [("long", 61)]
    assert facts["files_over"] == []
