"""Errors of review and promotion (part of the one hierarchy in :mod:`jupyter_qsecure.errors`)."""

from __future__ import annotations

from ..errors import QSecureError


class PromotionError(QSecureError):
    """Base class of review and promotion errors. Exit status 2 unless a subclass says 1."""


class NotebookRefused(PromotionError):
    """A notebook cannot be digested, reviewed or promoted as it is (exit status 2)."""


class InvalidNotebookFormat(NotebookRefused):
    """The file or object is not a valid nbformat 4 notebook."""


class MissingKernelspec(NotebookRefused):
    """The notebook names no kernel (``metadata.kernelspec``), so what runs it is unknown."""


class SecretInNotebook(NotebookRefused):
    """The scanner found a secret in the notebook (exit status 1, as a scan finding)."""

    exit_code = 1
