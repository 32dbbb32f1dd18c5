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
from collections.abc import Sequence

from .._version import __version__
from ..errors import QSecureError

#: Modules that contribute subcommands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "jupyter_qsecure.cli.scan_cmd",
    "jupyter_qsecure.cli.audit_cmd",
    "jupyter_qsecure.cli.config_cmd",
    "jupyter_qsecure.cli.secret_cmd",
    "jupyter_qsecure.cli.recover_cmd",
    "jupyter_qsecure.cli.jobs_cmd",
    "jupyter_qsecure.cli.review_cmd",
    "jupyter_qsecure.cli.vault_cmd",
    "jupyter_qsecure.cli.lab_cmd",
    "jupyter_qsecure.cli.kernel_cmd",
    "jupyter_qsecure.cli.promote_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter qsecure",
        description="jupyter-qsecure: secret scanning, audit ledger, credentials and signed "
        "quantum jobs for Jupyter.",
    )
    parser.add_argument("--version", action="version", version=f"jupyter-qsecure {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # a command not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(argv) if argv is not None else sys.argv[1:]
    if words[:1] == ["scan"]:
        # kingfisher's rule catalogue loads in a background thread (it releases the GIL)
        # while the other commands' modules import: ~0.3 s hidden from every scan.
        from ..scan.providers import builtin_loader

        builtin_loader()
    parser = build_parser()
    args = parser.parse_args(words)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        from ..config import load_settings

        settings = load_settings()
        return int(handler(args, settings))
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
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
