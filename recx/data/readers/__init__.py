"""Readers of the official raw formats, one module per family; `recx.data.formats.READERS` is
the single registry that names them."""
