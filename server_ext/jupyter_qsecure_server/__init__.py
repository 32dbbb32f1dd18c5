"""Jupyter Server extension of jupyter-qsecure: a thin adapter over ``jupyter_qsecure``."""

from __future__ import annotations

from typing import Any

from jupyter_qsecure import __version__

from .app import QSecureExtension

__all__ = ["QSecureExtension", "__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "jupyter_qsecure_server", "app": QSecureExtension}]
