"""Errors that recx reports to users: what went wrong, and the override or command that fixes it.

Each class carries an exit code (ARCHITECTURE §10). Stages raise these; the CLI prints them as a
rich panel without a traceback. Ctrl-C ends a run with exit code 130 and one line
(`Interrupted`).
"""

from __future__ import annotations

import re


class RecxError(Exception):
    """Base class: `message` says what went wrong, `hint` how to fix it."""

    exit_code = 1
    title = "recx error"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nFix: {self.hint}"

    def for_role(self, role: str) -> RecxError:
        """The same error with `dataset.<key>` spelt as the key of the data set's role in the
        stage (`target.raw_dir`, `source.<name>.raw_dir`): data code knows no roles."""
        if role == "dataset":
            return self
        sub = re.compile(r"(?<![\w.])dataset\.(?=[\w<])")
        out = type(self).__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.message = sub.sub(f"{role}.", self.message)
        out.hint = sub.sub(f"{role}.", self.hint) if self.hint else self.hint
        out.args = (out.message,)
        return out


class ConfigError(RecxError):
    exit_code = 2
    title = "configuration error"


class DataMissingError(RecxError):
    exit_code = 3
    title = "data not available"


class DataFormatError(RecxError):
    exit_code = 3
    title = "bad input data"

    def __init__(self, message: str, hint: str | None = None, *, path=None, line=None,
                 column=None):
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message, hint)
        self.path, self.line, self.column = path, line, column


class ChecksumError(RecxError):
    exit_code = 3
    title = "checksum mismatch"


class ArtifactMissingError(RecxError):
    exit_code = 4
    title = "missing artifact"


class CheckpointError(RecxError):
    exit_code = 4
    title = "unreadable checkpoint"


class ModelUnavailableError(RecxError):
    exit_code = 5
    title = "model not available"


class EvalError(RecxError):
    exit_code = 6
    title = "evaluation error"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C. `resume_epoch` is the epoch the same command resumes training from (None when
    it was not training)."""

    exit_code = 130

    def __init__(self, resume_epoch: int | None = None):
        super().__init__()
        self.resume_epoch = resume_epoch

    @property
    def line(self) -> str:
        if self.resume_epoch is None:
            return "interrupted; the same command starts again (finished cache entries are kept)"
        return f"interrupted; the same command resumes from epoch {self.resume_epoch}"
