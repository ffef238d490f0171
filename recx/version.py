"""The version, defined once (also read by the packaging: pyproject.toml)."""

__version__ = "0.1.0"
