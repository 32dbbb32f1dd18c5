"""Commands that a Jupyter kernel must not run: is this process a kernel, or under one?

Restoring a recovery copy (``jupyter qsecure recover restore``) decrypts content the
save gate refused because it holds a secret; it is for the user at a terminal (their
own shell, or a JupyterLab terminal, which they open with their own login) or the
operator, not for code running in a kernel, which is where a notebook's untrusted or
merely careless code runs (``!jupyter qsecure recover restore …``, ``subprocess``).

A process counts as inside a kernel when any of these holds:

- it *is* a kernel (IPython's kernel app is running in it: the CLI called as a
  function from a cell);
- ``JPY_PARENT_PID`` is set: jupyter_client sets it in every kernel it starts on
  POSIX, and the kernel's children inherit it;
- one of its ancestor processes runs a kernel: ``ipykernel``/``ipykernel_launcher``,
  the qsecure kernel extension, or any process given a ``kernel-….json`` connection
  file (how Jupyter starts every kernel, whatever its language).

This stops accidents and casual misuse. It is not a security boundary against code
that sets out to get around it (it can clear its environment and re-parent itself to
``init``): on a single-user server kernels run as the same OS account as everything
else. What does stop a kernel is a key it has no credentials for: with OpenBao the
recovery key is a transit key that kernel tokens' policy cannot use (see
docs/threat-model.md).
"""

from __future__ import annotations

import os
import re
import sys

from .errors import QSecureError

__all__ = ["InsideKernel", "kernel_context", "refuse_inside_kernel"]

_CONNECTION_FILE = re.compile(r"kernel-[^/\\]+\.json$")
_KERNEL_MODULES = ("ipykernel_launcher", "ipykernel", "jupyter_qsecure.kernel")


class InsideKernel(QSecureError):
    """The command is refused because it runs inside (or under) a Jupyter kernel."""


def _is_kernel_command(argv: list[str]) -> bool:
    for position, arg in enumerate(argv):
        if _CONNECTION_FILE.search(arg):
            return True
        if arg in ("-m", "--ext") and position + 1 < len(argv):
            if argv[position + 1] in _KERNEL_MODULES:
                return True
    return False


def _this_process_is_a_kernel() -> bool:
    app_module = sys.modules.get("ipykernel.kernelapp")
    app = getattr(app_module, "IPKernelApp", None)
    return bool(app is not None and app.initialized())


def kernel_context() -> str | None:
    """Why this process counts as inside a Jupyter kernel, or None if it does not."""
    if _this_process_is_a_kernel():
        return "this process is a Jupyter kernel"
    parent = os.environ.get("JPY_PARENT_PID")
    if parent:
        return f"JPY_PARENT_PID={parent} is set, as in a kernel and the processes it starts"
    try:
        import psutil  # a dependency of ipykernel and distributed
    except ImportError:  # pragma: no cover - always installed with jupyter-qsecure
        return None
    try:
        ancestors = psutil.Process().parents()
    except psutil.Error:
        return None
    for ancestor in ancestors:
        try:
            argv = ancestor.cmdline()
        except psutil.Error:  # gone, or not ours to read
            continue
        if _is_kernel_command(argv):
            return f"it was started by a kernel (process {ancestor.pid}, {ancestor.name()})"
    return None


def refuse_inside_kernel(action: str) -> None:
    """Raise :class:`InsideKernel` (exit status 2) if this runs inside a kernel."""
    reason = kernel_context()
    if reason is None:
        return
    raise InsideKernel(
        f"{action} is refused inside a Jupyter kernel ({reason}): code in a notebook must "
        "not open what the save gate kept back",
        hint="run it yourself in a terminal (your own shell, or File > New > Terminal in "
        "JupyterLab), not from a notebook cell, `!` command or subprocess of a kernel",
    )
