"""``jupyter qsecure install-kernel [--user | --sys-prefix | --prefix P] [--name N]``.

Installs the "Python 3 (qsecure)" kernelspec (named ``qsecure``): ipykernel in this
Python with the jupyter-qsecure IPython extension loaded. Without an option it goes to
the system-wide kernels folder, like ``python -m ipykernel install``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..kernel.install import DISPLAY_NAME, KERNEL_NAME, install_kernelspec


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "install-kernel",
        help=f"install the {DISPLAY_NAME!r} kernelspec",
        description=f"Install the {DISPLAY_NAME!r} kernelspec: ipykernel in this Python with "
        "the jupyter-qsecure extension (secrets.get, %qsecure). Without an option it is "
        "installed system-wide.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user only")
    where.add_argument(
        "--sys-prefix",
        action="store_true",
        help=f"install into this Python environment ({sys.prefix})",
    )
    where.add_argument("--prefix", metavar="PATH", help="install into PATH/share/jupyter/kernels")
    parser.add_argument(
        "--name",
        default=KERNEL_NAME,
        metavar="NAME",
        help=f"kernelspec name (default {KERNEL_NAME})",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Any) -> int:
    prefix = sys.prefix if args.sys_prefix else args.prefix
    destination = install_kernelspec(user=args.user, prefix=prefix, name=args.name)
    print(f"installed kernelspec {args.name!r} in {destination}")

    from jupyter_client.kernelspec import KernelSpecManager

    kernels_dir = os.path.realpath(os.path.dirname(destination))
    if kernels_dir not in {os.path.realpath(d) for d in KernelSpecManager().kernel_dirs}:
        print(
            f"note: {kernels_dir} is not on the Jupyter path, so Jupyter will not find the "
            f"kernel; add {os.path.dirname(kernels_dir)} to JUPYTER_PATH",
            file=sys.stderr,
        )
    return 0
