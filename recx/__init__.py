"""recx: transferable sequential recommendation experiments."""

__version__ = "0.1.0"
