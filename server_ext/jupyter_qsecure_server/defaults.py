"""The qsecure kernel as the default for new notebooks, from every entry point.

JupyterLab preselects the kernel the server names as default (``GET /api/kernelspecs``
answers ``"default": kernel_manager.default_kernel_name``) in File > New > Notebook, the
launcher's notebook tile and the kernel picker; so does Notebook 7. ``jupyter qsecure
lab`` passes ``--MappingKernelManager.default_kernel_name=qsecure``; a plain ``jupyter
lab`` (or ``jupyter server``, or a Hub's single-user server) gets the same from here, when
the ``qsecure`` kernelspec is installed. A default the operator set themselves (any
config source) is left alone.
"""

from __future__ import annotations

import logging
from typing import Any

from jupyter_qsecure.kernel.install import KERNEL_NAME

__all__ = ["make_qsecure_kernel_default"]

#: Config sections that may set ``default_kernel_name`` on the server's kernel manager.
_SECTIONS = (
    "MultiKernelManager",
    "AsyncMultiKernelManager",
    "MappingKernelManager",
    "AsyncMappingKernelManager",
)


def _configured(server: Any) -> bool:
    config = server.config
    sections = {*_SECTIONS, type(server.kernel_manager).__name__}
    for section in sections:
        values = config.get(section)
        if values is not None and "default_kernel_name" in values:
            return True
    return False


def make_qsecure_kernel_default(server: Any, log: logging.Logger | Any) -> bool:
    """Make ``qsecure`` the server's default kernel; True when it now is."""
    manager = server.kernel_manager
    if manager.default_kernel_name == KERNEL_NAME:
        return True
    if _configured(server):
        log.info(
            "jupyter-qsecure: the default kernel is configured as %r; new notebooks do not get "
            "%%qsecure and %%qsubmit unless they pick the %r kernel",
            manager.default_kernel_name,
            KERNEL_NAME,
        )
        return False
    try:
        server.kernel_spec_manager.get_kernel_spec(KERNEL_NAME)
    except Exception:  # NoSuchKernel, or a broken kernelspec
        log.warning(
            "jupyter-qsecure: the %r kernelspec is not installed, so new notebooks start "
            "%r; `jupyter qsecure install-kernel` installs it",
            KERNEL_NAME,
            manager.default_kernel_name,
        )
        return False
    manager.default_kernel_name = KERNEL_NAME
    return True
