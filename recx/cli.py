"""`recx <stage> [hydra overrides]`: an argv shim onto Hydra's `--config-name` (ARCHITECTURE §3).

The shim replaces only the first word: `-m`, `--cfg job`, `--info`, `-cd`, sweeps and launchers
pass through to Hydra unchanged. Before Hydra starts it registers the schemas and the
`source/target/base` alias groups, and answers an unknown stage, model or dataset with
"did you mean".
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from pathlib import Path

from recx.config.location import conf_dir

STAGES: dict[str, tuple[str, str]] = {
    "preprocess": ("read, filter, split and cache a dataset; print its stats",
                   "recx preprocess dataset=ml_100k dataset.raw_dir=data/ml-100k"),
    "train": ("train and evaluate a model in-domain on one dataset",
              "recx train model=sasrec dataset=synth_t"),
    "pretrain": ("train a model on one or several source domains",
                 "recx pretrain model=preprec 'source=[synth_a,synth_b]'"),
    "transfer": ("zero-shot: evaluate a pretrained model on an unseen target",
                 "recx transfer model=preprec source=synth_a target=synth_t"),
    "finetune": ("adapt a pretrained model on the target, then evaluate",
                 "recx finetune model=unisrec source=synth_a target=synth_t"),
    "interpolate": ("blend a transferred model with an in-domain one; α chosen on valid",
                    "recx interpolate model=pop base=sasrec target=synth_t"),
    "diagnose": ("transferability diagnostics of sources → target, before any transfer",
                 "recx diagnose model=preprec source=synth_a target=synth_t"),
    "report": ("aggregate metrics.json of runs and sweeps into tables and figures",
               "recx report report.where.target=synth_t"),
    "run": ("the default experiment end to end, one results table",
            "recx run"),
    "recommend": ("top-k items per user from any model, with the original ids",
                  "recx recommend model=sasrec dataset=synth_t recommend.k=20"),
}
ALIAS_GROUPS = ("model", "base", "dataset", "source", "target")


def print_stage_overview() -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from recx.version import __version__

    t = Table(title=f"recx {__version__} — transferable sequential recommendation",
              title_justify="left", show_lines=False)
    t.add_column("stage", style="bold cyan")
    t.add_column("purpose")
    t.add_column("example", style="green")
    for name, (purpose, example) in STAGES.items():
        t.add_row(name, purpose, escape(example))
    c = Console()
    c.print(escape("usage: recx <stage> [key=value ...] [-m] [--cfg job] [--help]\n"))
    c.print(t)
    root = conf_dir()
    from recx.config.aliases import option_names

    c.print("\n[bold]config groups[/bold] (pick with group=option):")
    for group in ("model", "dataset", "train", "eval", "text", "experiment"):
        names = option_names([root], group)
        c.print(f"  [cyan]{group}[/cyan]: {', '.join(names)}")
    c.print("  [cyan]source[/cyan] / [cyan]target[/cyan]: any dataset (" + escape("'source=[a,b]'")
            + " for several); [cyan]base[/cyan]: any model")
    c.print("\nper-stage help: recx <stage> --help     composed config: recx <stage> --cfg job"
            "\nbash completion: eval \"$(recx -sc install=bash)\"")


def _suggest(word: str, options, what: str) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    guess = f" — did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {word!r}{guess}\n  options: {', '.join(options)}"


def _fail(message: str, code: int = 2) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]recx:[/bold red] {escape(message)}", highlight=False)
    sys.exit(code)


_VALUE_RE = re.compile(r"^~?\+{0,2}(model|base|dataset|source|target)=(.*)$")


def unknown_group_value(args: list[str], names: dict[str, list[str]]) -> str | None:
    """The message of the first unknown option given to an alias group (a "did you mean"), or
    of an empty source (the way to pick one)."""
    for arg in args:
        m = _VALUE_RE.match(arg)
        if not m:
            continue
        group, value = m.groups()
        value = value.strip()
        if group == "source" and value.strip("'\"") in ("", "[]", "null", "None"):
            return (f"source={value or ''} leaves no source domain; pick at least one: "
                    "source=synth_a (or 'source=[synth_a,synth_b]'; any dataset is an option)")
        if not value or "(" in value or "$" in value:  # glob(), interpolations: leave to Hydra
            continue
        for token in re.split(r"[\[\],\s]+", value):
            token = token.strip("'\"")
            if token and token != "null" and token not in names[group]:
                return _suggest(token, names[group], f"{group} option")
    return None


def check_group_values(args: list[str], names: dict[str, list[str]]) -> None:
    """Unknown option names given to the alias groups get a "did you mean" (exit 2)."""
    problem = unknown_group_value(args, names)
    if problem:
        _fail(problem)


def register_configs(extra: list[Path]) -> dict[str, list[str]]:
    """Resolvers, schemas and the alias groups of conf_dir(), $RECX_CONF_DIR and `extra` config
    folders; returns the option names of each alias group."""
    from recx.config.aliases import register_aliases
    from recx.config.resolvers import register_resolvers
    from recx.config.schema import register_schemas

    root = conf_dir()
    extra = list(extra)
    if os.environ.get("RECX_CONF_DIR") and Path(os.environ["RECX_CONF_DIR"]) != root:
        extra.append(Path(os.environ["RECX_CONF_DIR"]))
    register_resolvers()
    register_schemas()
    return register_aliases([root, *extra])


_NAME_RE = re.compile(r"^\+{0,2}((?:dataset|target|source\.[^.=]+)\.(?:name|category)|run_name|"
                      r"report\.name|experiment_name)=(.*)$")


def check_names(args: list[str]) -> None:
    """Names that become folders are checked before Hydra creates the run dir from them, so a
    `dataset.name=../../x` never writes outside the outputs (exit 2)."""
    from recx.config.validate import name_problem

    for arg in args:
        m = _NAME_RE.match(arg)
        if not m or "$" in m.group(2):
            continue
        key, value = m.groups()
        loose = key.endswith("category")
        for token in [value] if loose else value.split(","):  # sweeps: a,b
            if problem := name_problem(key, token.strip().strip("'\""), loose=loose):
                _fail(problem)


def _extra_conf_dirs(args: list[str]) -> list[Path]:
    out = []
    for i, a in enumerate(args):
        if a in ("-cd", "--config-dir") and i + 1 < len(args):
            out.append(Path(args[i + 1]))
        elif a.startswith("--config-dir="):
            out.append(Path(a.split("=", 1)[1]))
    return out


def _stage_from_comp_line() -> str | None:
    """Bash completion: take the stage word out of COMP_LINE so Hydra completes overrides."""
    line = os.environ.get("COMP_LINE")
    if line is None:
        return None
    words = line.split()
    if len(words) >= 2 and words[1] in STAGES:
        os.environ["COMP_LINE"] = " ".join([words[0], *words[2:]]) + (
            " " if line.endswith(" ") else "")
        return words[1]
    partial = words[1] if len(words) == 2 and not line.endswith(" ") else ""
    if len(words) <= 1 or (partial and "=" not in partial):
        print(" ".join(s for s in STAGES if s.startswith(partial)))
        sys.exit(0)
    return None


def main() -> None:
    try:
        _main()
    except KeyboardInterrupt:  # Ctrl-C outside a stage (a stage says where to resume itself)
        _fail("interrupted", code=130)


def _main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print_stage_overview()
        return
    if args[0] in ("--version", "-V"):
        from recx.version import __version__

        print(__version__)
        return
    if args[0].startswith("-"):  # -sc query=bash (completion), --hydra-help, ...
        stage = _stage_from_comp_line() or "run"
        rest = args
    else:
        stage, rest = args[0], args[1:]
        if stage not in STAGES:
            _fail(_suggest(stage, STAGES, "stage") + "\n  overview: recx --help")
    names = register_configs(_extra_conf_dirs(rest))
    check_group_values(rest, names)
    check_names(rest)
    _pin_ddp_run_dir(stage, rest)
    sys.argv = [sys.argv[0], f"--config-name={stage}", *rest]
    if "--help" in rest or "-h" in rest:
        _stage_help(stage, rest)
        return
    _hydra_entry(stage, rest)


def _stage_help(stage: str, rest: list[str]) -> None:
    """Hydra's help of a stage without the `_schema` nodes the group YAMLs inherit from (they are
    not options a user picks)."""
    import contextlib
    import io

    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            _hydra_entry(stage, rest)
    finally:
        print(re.sub(r"\b_schema(, |$)", "", buf.getvalue(), flags=re.M), end="")


def _pin_ddp_run_dir(stage: str, rest: list[str]) -> None:
    """Under torchrun all ranks must share one run dir (ARCHITECTURE §9); ranks other than 0
    log to <stage>_rank<r>.log only (no console)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if not any(a.startswith("hydra.run.dir=") for a in rest):
        run_id = os.environ.get("TORCHELASTIC_RUN_ID", "ddp")
        rest.append(f"hydra.run.dir=${{paths.outputs}}/runs/{stage}/${{run_name}}/ddp-{run_id}")
    rank = int(os.environ.get("RANK", "0"))
    if rank > 0:
        rest += [f"hydra.job.name={stage}_rank{rank}", "hydra.job_logging.root.handlers=[file]"]


def _hydra_entry(stage: str, rest: list[str]) -> None:
    """Run the stage under Hydra. Hydra's own errors (composition, overrides, launchers) come
    back as exceptions and are printed as one recx message; `HYDRA_FULL_ERROR=1` set by the
    user keeps Hydra's traceback (and makes stages print theirs, `RECX_TRACEBACK`)."""
    import hydra

    @hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=None)
    def entry(cfg):
        from recx.stages import run_stage

        return run_stage(cfg)

    full = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ.setdefault("RECX_TRACEBACK", "1" if full else "0")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors to us instead of printing
    try:
        entry()
    except Exception as e:
        if full:
            raise
        from recx.config.explain import explain

        message, code = explain(e, stage, rest)
        _fail(message, code)
    from recx.hydra_callbacks import exit_code

    code = exit_code()
    if code:
        sys.exit(code)


def stage_alias(stage: str):
    """Console scripts `recx-<stage>`: the same code path as `recx <stage>`."""

    def _main() -> None:
        sys.argv = [sys.argv[0], stage, *sys.argv[1:]]
        main()

    return _main


if __name__ == "__main__":
    main()
