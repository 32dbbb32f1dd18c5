"""Entry point of ``jupyter qsecure`` / ``jupyter-qsecure``.

Each subcommand lives in its own module exposing ``register(subparsers)``; the
module adds its parser and sets ``handler=callable(args, settings) -> int``.
Exit status (design.md): 0 success or clean, 1 findings or failed verification,
2 usage or environment error. Errors print one message (what is wrong and what
to do), never a traceback, and never a secret.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .._version import __version__
from ..errors import QSecureError
from ..extras import missing_extra

#: Each subcommand and the module that registers it, in the order ``--help`` lists them.
#: Only the module of the command that runs is imported (and it imports its own
#: dependencies when it runs), so ``--version`` and ``audit note`` start fast; ``--help``
#: and a mistyped command import them all to list them. ``test_cli_imports`` checks this
#: table against what the modules register.
COMMANDS: dict[str, str] = {
    "scan": "jupyter_qsecure.cli.scan_cmd",
    "audit": "jupyter_qsecure.cli.audit_cmd",
    "config": "jupyter_qsecure.cli.config_cmd",
    "secret": "jupyter_qsecure.cli.secret_cmd",
    "recover": "jupyter_qsecure.cli.recover_cmd",
    "jobs": "jupyter_qsecure.cli.jobs_cmd",
    "replay": "jupyter_qsecure.cli.jobs_cmd",
    "review": "jupyter_qsecure.cli.review_cmd",
    "vault": "jupyter_qsecure.cli.vault_cmd",
    "lab": "jupyter_qsecure.cli.lab_cmd",
    "install-kernel": "jupyter_qsecure.cli.kernel_cmd",
    "promote": "jupyter_qsecure.cli.promote_cmd",
    "verify-promotion": "jupyter_qsecure.cli.promote_cmd",
}

#: Modules that contribute subcommands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMMANDS.values()))


def modules_for(words: Sequence[str]) -> tuple[str, ...]:
    """The command modules the parser needs for these arguments."""
    if words and words[0] in COMMANDS:
        return (COMMANDS[words[0]],)
    if list(words) == ["--version"]:
        return ()
    return COMMAND_MODULES  # --help, no command, or a mistyped one: list every command


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter qsecure",
        description="jupyter-qsecure: secret scanning, audit ledger, credentials and signed "
        "quantum jobs for Jupyter.",
    )
    parser.add_argument("--version", action="version", version=f"jupyter-qsecure {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(list(argv) if argv is not None else sys.argv[1:])
        finally:  # also after --help's SystemExit
            sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
    except BrokenPipeError:
        return _output_closed()


def _output_closed() -> int:
    """The reader of our output went away (``jupyter qsecure audit export | head -1``).

    Quiet, like other Unix tools, and with their status (128 + SIGPIPE), not 0: a
    pipeline under ``set -o pipefail`` must not take a cut-off scan for a clean one.
    Python flushes stdout again at exit; pointing it at /dev/null keeps that quiet too.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout replaced by a file object without a descriptor
        pass
    return 128 + 13  # SIGPIPE


def _main(words: list[str]) -> int:
    if words[:1] == ["scan"]:
        # kingfisher's rule catalogue loads in a background thread (it releases the GIL)
        # while the scanner's modules import: ~0.3 s hidden from every scan.
        from ..scan.providers import builtin_loader

        builtin_loader()
    parser = build_parser(modules_for(words))
    args = parser.parse_args(words)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        from ..config import load_settings

        settings = load_settings()
        return _run(handler, args, settings)
    except BrokenPipeError:
        raise  # the reader went away: main ends quietly
    except QSecureError as exc:
        print(f"jupyter qsecure {args.command}: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # never a bare traceback; the message may not hold secrets
        if os.environ.get("QSECURE_DEBUG"):
            raise
        where = exc.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        location = f" in {where.tb_frame.f_code.co_filename}:{where.tb_lineno}" if where else ""
        print(
            f"jupyter qsecure {args.command}: internal error {type(exc).__name__}{location}",
            file=sys.stderr,
        )
        print(
            "  hint: re-run with QSECURE_DEBUG=1 for the traceback, and report it", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _run(
    handler: Callable[[argparse.Namespace, Any], int], args: argparse.Namespace, settings: Any
) -> int:
    """Run a command; a missing optional dependency becomes an error naming its extra."""
    try:
        return int(handler(args, settings))
    except ModuleNotFoundError as exc:
        needed = missing_extra(exc, f"jupyter qsecure {args.command}")
        if needed is None:
            raise
        raise needed from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
