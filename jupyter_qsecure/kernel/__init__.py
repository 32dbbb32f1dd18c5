"""The jupyter-qsecure IPython extension, loaded by the "Python 3 (qsecure)" kernel.

``jupyter qsecure install-kernel`` writes a kernelspec whose command line loads it
(``--ext jupyter_qsecure.kernel``); it can also be loaded by hand with
``%load_ext jupyter_qsecure.kernel``. Loading registers the ``%qsecure`` magic
(:mod:`.magics`); loading it again is harmless. User code reads credentials with
``from jupyter_qsecure import secrets`` (:mod:`jupyter_qsecure.secrets`), which works
in any kernel whose requests carry jupyter-qsecure metadata (:mod:`.context`).

The extension puts nothing in the user's namespace and reads no value at load time:
credentials exist only in each execute_request's metadata, and when an execution
ends (IPython's ``post_execute`` event, also fired for silent executions) the
extension deletes them from the request ipykernel keeps in memory, so they do not
outlive their cell.

This package's ``__init__`` imports no IPython at import time, so
:mod:`jupyter_qsecure.kernel.context` stays importable in plain Python.
"""

from __future__ import annotations

from typing import Any

#: Attribute set on the shell while the extension is loaded (idempotent loading).
_LOADED_FLAG = "_jupyter_qsecure_magics"


def load_ipython_extension(ip: Any) -> None:
    """Register ``%qsecure`` on the shell ``ip``. Loading twice changes nothing."""
    if getattr(ip, _LOADED_FLAG, None) is not None:
        return
    from .magics import QSecureMagics

    magics = QSecureMagics(shell=ip)
    ip.register_magics(magics)
    ip.extension_manager.load_extension(__name__ + ".qsubmit")  # %qsubmit / %%qsubmit
    ip.events.register("pre_execute", magics.enter_execution)
    ip.events.register("post_execute", magics.forget_credentials)
    setattr(ip, _LOADED_FLAG, magics)


def unload_ipython_extension(ip: Any) -> None:
    """Remove ``%qsecure`` from the shell ``ip`` (no-op if not loaded)."""
    magics = getattr(ip, _LOADED_FLAG, None)
    if magics is None:
        return
    for event, hook in (
        ("pre_execute", magics.enter_execution),
        ("post_execute", magics.forget_credentials),
    ):
        try:
            ip.events.unregister(event, hook)
        except ValueError:  # already unregistered by hand
            pass
    manager = ip.magics_manager
    for kind, table in magics.magics.items():
        for name in table:
            registered = manager.magics.get(kind, {}).get(name)
            if getattr(registered, "__self__", None) is magics:
                del manager.magics[kind][name]
    manager.registry.pop(type(magics).__name__, None)
    delattr(ip, _LOADED_FLAG)


__all__ = ["load_ipython_extension", "unload_ipython_extension"]
