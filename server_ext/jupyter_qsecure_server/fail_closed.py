"""Stop the server when jupyter-qsecure cannot start, instead of serving without it.

Jupyter Server catches an exception from an extension's link or load step, logs it and
serves on without that extension (unless ``reraise_server_extension_failures``): for
this extension that means notebooks saved with no save gate and outputs sent unmasked.
``SystemExit`` is not an ``Exception``, so it passes Jupyter's handler and stops the
server before it listens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from jupyter_qsecure.errors import QSecureError

T = TypeVar("T")


def startup_failure(step: str, exc: BaseException) -> str:
    """What the user reads: our own errors' message and hint; only the type of others.

    Another library's message may quote a setting it failed on (a database URL with its
    password, say), so it is not repeated; the traceback is logged at debug level.
    """
    if isinstance(exc, QSecureError):
        reason = exc.message + (f"\n  hint: {exc.hint}" if exc.hint else "")
    else:
        reason = (
            f"{type(exc).__name__} (details with --debug; the message is not shown in case "
            "it quotes a setting such as a database URL)"
        )
    return (
        f"jupyter-qsecure could not {step}, so the server stops rather than serve notebooks "
        f"without the save gate and output masking: {reason}"
    )


def run_or_stop(step: str, log: logging.Logger, action: Callable[[], T]) -> T:
    """``action()``, or ``SystemExit`` naming what failed (see the module docstring)."""
    try:
        return action()
    except Exception as exc:
        log.debug("jupyter-qsecure: %s failed", step, exc_info=True)
        raise SystemExit(startup_failure(step, exc)) from None
