"""Install the "Python 3 (qsecure)" kernelspec.

The kernelspec runs ipykernel in this Python (``sys.executable``) with the
jupyter-qsecure IPython extension loaded through ipykernel's ``--ext`` option (an
alias of ``InteractiveShellApp.extra_extensions``)::

    [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher",
     "-f", "{connection_file}", "--ext", "jupyter_qsecure.kernel"]

It sets no environment variable (credentials arrive with each execution, never
through the environment) and carries ``"qsecure": true`` in its metadata so that
the server extension and the lab extension can recognise it. Its icon
(``logo-32x32.png``, ``logo-64x64.png``, ``logo-svg.svg``) is drawn by
:mod:`.logo`, so it does not look like ipykernel's "Python 3".
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import QSecureError
from .logo import write_logos

KERNEL_NAME = "qsecure"
DISPLAY_NAME = "Python 3 (qsecure)"
EXTENSION = "jupyter_qsecure.kernel"

#: Passed to jupyter_client's installer, whose "not on the Jupyter path" warning the
#: command line replaces with its own note.
_log = logging.getLogger(__name__)
_log.setLevel(logging.ERROR)


class KernelInstallError(QSecureError):
    """The kernelspec could not be written."""


def kernel_argv(executable: str | None = None) -> list[str]:
    """The kernel's command line (``{connection_file}`` is filled in by Jupyter)."""
    python_arguments: list[str] = []
    # As ipykernel's own installer does: frozen modules make the debugger warn.
    if platform.python_implementation() == "CPython" and sys.version_info >= (3, 11):
        python_arguments.append("-Xfrozen_modules=off")
    return [
        executable or sys.executable,
        *python_arguments,
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
        "--ext",
        EXTENSION,
    ]


def kernel_dict(name: str = KERNEL_NAME, display_name: str | None = None) -> dict[str, Any]:
    """The content of kernel.json."""
    if display_name is None:
        display_name = DISPLAY_NAME if name == KERNEL_NAME else f"{DISPLAY_NAME[:-1]}: {name})"
    spec: dict[str, Any] = {"language": "python", "metadata": {"debugger": True}}
    try:  # keep what this ipykernel advertises (protocol version, encryption, debugger)
        from ipykernel.kernelspec import get_kernel_dict

        spec.update(get_kernel_dict())
    except ImportError:  # pragma: no cover - ipykernel is a dependency of jupyter_server
        pass
    spec.pop("env", None)  # credentials never travel through the environment
    spec["argv"] = kernel_argv()
    spec["display_name"] = display_name
    spec["interrupt_mode"] = "signal"
    spec["metadata"] = {**spec.get("metadata", {}), "qsecure": True}
    return spec


def install_kernelspec(
    *,
    user: bool = False,
    prefix: str | os.PathLike[str] | None = None,
    name: str = KERNEL_NAME,
    display_name: str | None = None,
) -> str:
    """Install the kernelspec and return the folder it was written to.

    ``user``: the per-user Jupyter data dir; ``prefix``: ``PREFIX/share/jupyter/kernels``
    (use ``sys.prefix`` for a virtualenv or conda env); neither: the system-wide folder
    (usually needs administrator rights). An existing kernelspec of that name is
    replaced. Raises :class:`KernelInstallError` when the folder cannot be written.
    """
    from jupyter_client.kernelspec import KernelSpecManager, _is_valid_kernel_name

    if user and prefix is not None:
        raise KernelInstallError(
            "choose one place to install the kernel: user or prefix, not both",
            hint="use --user, --sys-prefix or --prefix PATH",
        )
    if not _is_valid_kernel_name(name):
        raise KernelInstallError(
            f"invalid kernel name {name!r}",
            hint="use ASCII letters, digits, '-', '.' and '_' only",
        )
    with tempfile.TemporaryDirectory(prefix="qsecure-kernelspec-") as staging:
        source = Path(staging) / name
        source.mkdir()
        write_logos(source)  # its own icon, not ipykernel's Python logo
        (source / "kernel.json").write_text(
            json.dumps(kernel_dict(name, display_name), indent=1) + "\n", encoding="utf-8"
        )
        manager = KernelSpecManager(log=_log)
        try:
            return str(
                manager.install_kernel_spec(
                    str(source),
                    kernel_name=name,
                    user=user,
                    prefix=os.fspath(prefix) if prefix is not None else None,
                )
            )
        except PermissionError as exc:
            raise KernelInstallError(
                f"cannot write the kernelspec to {exc.filename or 'the kernels folder'}: "
                "permission denied",
                hint="install for yourself with --user, into this environment with "
                "--sys-prefix, or run as an administrator",
            ) from None
        except OSError as exc:
            raise KernelInstallError(
                f"cannot write the kernelspec: {exc.strerror or exc}",
                hint="check that the target folder is writable, or choose another with "
                "--user, --sys-prefix or --prefix PATH",
            ) from None
