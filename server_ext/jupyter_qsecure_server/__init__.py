"""Jupyter Server extension of jupyter-qsecure: a thin adapter over ``jupyter_qsecure``."""

from __future__ import annotations

from typing import Any

from jupyter_qsecure import __version__
from jupyter_qsecure.extras import MissingExtra, require_extra

from .fail_closed import startup_failure

try:
    require_extra("jobs", "the jupyter-qsecure server extension (its %qsubmit job broker)")
except MissingExtra as exc:
    # SystemExit, not ImportError: Jupyter Server logs an extension that fails to import
    # and starts without it, which would serve notebooks with no save gate or masking.
    raise SystemExit(startup_failure("import its server extension", exc)) from None

from .app import QSecureExtension  # noqa: E402

__all__ = ["QSecureExtension", "__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "jupyter_qsecure_server", "app": QSecureExtension}]
