"""``jupyter qsecure lab [JUPYTER LAB ARGS...]``: JupyterLab on secure defaults.

1. Without a configured ``vault_addr``, start the embedded OpenBao (``vault up``).
2. Install the ``qsecure`` kernelspec into ``sys.prefix``.
3. Replace this process with ``jupyter lab --MappingKernelManager.default_kernel_name=qsecure
   ARGS...``, with ``BAO_ADDR``, ``BAO_TOKEN`` (the server token) and
   ``QSECURE_ENVIRONMENT`` in *its* environment only. The token is never printed;
   ``--dry-run`` shows it as ``***``.

This command's own options come first; everything from the first other argument
on (or everything after ``--``) goes to ``jupyter lab`` unchanged.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..vault.layout import ENVIRONMENTS
from .vault_cmd import embedded_from_settings, external_vault_addr

if TYPE_CHECKING:
    from ..config import QSecure

KERNEL_NAME = "qsecure"
MASK = "***"


class _PassThroughParser(argparse.ArgumentParser):
    """Parses its own leading options; the rest of the command line is ``jupyter_args``."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        args = list(sys.argv[1:] if args is None else args)
        own: list[str] = []
        index = 0
        while index < len(args):
            arg = args[index]
            if arg == "--":
                index += 1
                break
            action = self._option_string_actions.get(arg.split("=", 1)[0])
            if action is None:
                break
            own.append(arg)
            index += 1
            if action.nargs != 0 and "=" not in arg and index < len(args):
                own.append(args[index])  # the option's value
                index += 1
        parsed, extra = super().parse_known_args(own, namespace)
        assert parsed is not None
        parsed.jupyter_args = [*extra, *args[index:]]
        return parsed, []


def register(subparsers: Any) -> None:
    original = subparsers._parser_class
    subparsers._parser_class = _PassThroughParser
    try:
        parser = subparsers.add_parser(
            "lab",
            help="start JupyterLab with the qsecure kernel and the local OpenBao",
            description="Start JupyterLab on secure defaults: the embedded OpenBao (started "
            "unless vault_addr names another server), the `qsecure` kernel as default, and "
            "the server's OpenBao token in JupyterLab's environment only. Options of this "
            "command come first; all other arguments (or everything after `--`) are passed "
            "to `jupyter lab`.",
            usage="jupyter qsecure lab [-h] [--environment {dev,test,prod}] [--dry-run] "
            "[JUPYTER LAB ARGS...]",
        )
    finally:
        subparsers._parser_class = original
    parser.add_argument(
        "--environment",
        choices=ENVIRONMENTS,
        default=None,
        help="environment whose policies the server gets (default: the `environment` setting)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="start/check OpenBao as usual, then print the jupyter lab command (token shown "
        "as ***) instead of running it; installs no kernelspec",
    )
    parser.set_defaults(handler=run, jupyter_args=[])


def _jupyter_executable() -> str:
    beside = shutil.which("jupyter", path=str(Path(sys.executable).parent))
    found = beside or shutil.which("jupyter")
    if not found:
        raise ConfigError(
            "the `jupyter` command was not found",
            hint="install JupyterLab into this environment: pip install jupyterlab",
        )
    return found


def _install_kernelspec(dry_run: bool) -> None:
    try:
        from ..kernel.install import install_kernelspec
    except ImportError as exc:
        print(
            f"warning: cannot install the `{KERNEL_NAME}` kernelspec ({exc}); JupyterLab "
            "starts without it",
            file=sys.stderr,
        )
        return
    if dry_run:
        print(
            f"(dry run) would install the `{KERNEL_NAME}` kernelspec into {sys.prefix}",
            file=sys.stderr,
        )
        return
    install_kernelspec(prefix=sys.prefix)


def shown_command(command: list[str], env_changes: dict[str, str]) -> str:
    """The command line as a shell would run it, with the token masked."""
    assignments = [
        f"{key}={MASK if key == 'BAO_TOKEN' else shlex.quote(value)}"
        for key, value in env_changes.items()
    ]
    return " ".join([*assignments, shlex.join(command)])


def run(args: argparse.Namespace, settings: QSecure) -> int:
    if importlib.util.find_spec("jupyterlab") is None:
        raise ConfigError(
            "JupyterLab is not installed in this environment",
            hint="pip install jupyterlab (or pip install -e '.[vault]' in a checkout)",
        )
    environment = args.environment or settings.environment
    bao = embedded_from_settings(settings)
    external = external_vault_addr(settings, bao)
    env_changes: dict[str, str] = {}
    if external:
        print(f"using the OpenBao/Vault at {external} (vault_addr)", file=sys.stderr)
        env_changes["BAO_ADDR"] = external
        if settings.vault_token:
            env_changes["BAO_TOKEN"] = str(settings.vault_token)
    else:
        status = bao.up(environment)
        assert status.addr is not None
        print(
            f"embedded OpenBao running at {status.addr} (pid {status.pid}); "
            f"`jupyter qsecure vault down` stops it",
            file=sys.stderr,
        )
        env_changes["BAO_ADDR"] = status.addr
        env_changes["BAO_TOKEN"] = bao.server_token()
    env_changes["QSECURE_ENVIRONMENT"] = environment

    _install_kernelspec(args.dry_run)

    command = [
        _jupyter_executable(),
        "lab",
        f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
        *args.jupyter_args,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in command:
        # Containers and CI machines often run as root, where Jupyter refuses to start.
        print("note: running as root, so --allow-root is passed to jupyter lab", file=sys.stderr)
        command.append("--allow-root")
    if args.dry_run:
        print(shown_command(command, env_changes))
        return 0
    child_env = {k: v for k, v in os.environ.items() if k not in ("VAULT_ADDR", "VAULT_TOKEN")}
    child_env.update(env_changes)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], command, child_env)  # noqa: S606 (replaces this process)
    return 0  # pragma: no cover (execvpe does not return)
