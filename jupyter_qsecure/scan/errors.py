"""Scanner errors (part of the one hierarchy in :mod:`jupyter_qsecure.errors`)."""

from __future__ import annotations

from ..errors import QSecureError


class ScanError(QSecureError):
    """A file could not be scanned (unreadable, not a notebook, bad baseline). Exit 2."""


class InvalidNotebook(ScanError):
    """A ``.ipynb`` file or notebook object is not a valid notebook."""
