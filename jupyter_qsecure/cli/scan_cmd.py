"""``jupyter qsecure scan PATH... [--format text|json] [--baseline FILE]``.

Scans files and folders (recursed): ``.ipynb`` files as notebooks, other text files
line by line, binary files skipped. Exit status: 0 clean, 1 secrets found, 2 a file
could not be scanned (unreadable, invalid notebook, bad baseline) and nothing was
found. A file that cannot be scanned in a folder scan is reported on stderr and the
scan goes on. Output never contains a secret, only its type, place and keyed
fingerprint (HMAC-SHA-256 under the configured fingerprint key).

Besides the detectors, every file is checked against the fingerprint registry of the
data dir: values the server injected into kernels in the last
``fingerprint_retention_days`` are reported as "value of secret NAME injected on
DATE" wherever they stand as a token (a log line, quotes, ``key=value``, JSON, CSV).
The key is read with the credentials this process has (OpenBao when ``vault_addr``
is set, else the local key file); if it cannot be, and the registry holds entries,
the scan stops with exit 2 rather than call the files clean.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..errors import QSecureError
from ..scan import Baseline, Scanner, ScanReport
from ..scan.errors import ScanError
from ..scan.fingerprints import (
    Fingerprinter,
    FingerprintIndex,
    fingerprinter_from_settings,
    set_process_fingerprinter,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="scan notebooks and files for secrets",
        description="Scan notebooks (every cell, output, metadata and attachment) and other "
        "text files for secrets. Exit 0 if clean, 1 if secrets were found, 2 on error.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to scan")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default text)"
    )
    parser.add_argument(
        "--baseline",
        metavar="FILE",
        help="detect-secrets baseline file: secrets listed there are not reported",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="worker processes for many files (default: one per CPU, at most 8)",
    )
    parser.set_defaults(handler=run)


def _print_text(report: ScanReport, out: Any) -> None:
    for finding in report.findings:
        print(finding.describe(), file=out)
    noun = "file" if report.files == 1 else "files"
    if report.findings:
        count = len(report.findings)
        print(
            f"{count} secret{'s' if count != 1 else ''} found in {report.files} {noun} "
            f"({report.seconds:.2f} s). Remove them (and rotate them), or add a "
            "'# pragma: allowlist secret' comment or a --baseline entry if they are not secrets.",
            file=out,
        )
    else:
        print(f"no secrets found in {report.files} {noun} ({report.seconds:.2f} s)", file=out)


def _registry(settings: Any) -> tuple[Fingerprinter, FingerprintIndex | None, str | None]:
    """The fingerprint key, the registry's index, and a warning for stderr (or None)."""
    from ..vault.injected import InjectedRegistry

    try:
        fingerprinter = fingerprinter_from_settings(settings, create=False)
    except QSecureError as exc:
        # Without the key nothing registered can be checked: fine only if nothing is.
        ephemeral = Fingerprinter.ephemeral()
        if InjectedRegistry.for_settings(settings, ephemeral).status().unusable:
            raise QSecureError(
                f"cannot check the fingerprint registry of injected secrets: {exc.message}",
                hint=(exc.hint + "; " if exc.hint else "")
                + "the scan needs the key the server fingerprints injected values with",
            ) from None
        return ephemeral, None, None
    registry = InjectedRegistry.for_settings(settings, fingerprinter)
    index = registry.index()
    status = registry.status()
    warning = None
    if status.unusable:
        where = "; ".join(
            f"{count} with the key at {source}" for source, count in status.other_keys.items()
        )
        warning = (
            f"{status.unusable} fingerprint(s) in {registry.path} were made with another key "
            f"({where}) and were not checked: run the scan with the settings (vault_addr, "
            "token, environment) of the server that injected them"
        )
    return fingerprinter, (index if index else None), warning


def run(args: argparse.Namespace, settings: Any) -> int:
    baseline = Baseline.load(args.baseline) if args.baseline else None
    fingerprinter, index, warning = _registry(settings)
    set_process_fingerprinter(fingerprinter)
    scanner = Scanner(fingerprinter=fingerprinter)
    paths: list[str] = list(args.paths)
    if len(paths) == 1 and os.path.isfile(paths[0]):
        # One named file: an unreadable or invalid file is the command's error (exit 2,
        # message and hint). The scan below then hits the cache.
        scanner.scan_file(paths[0], injected=index)
    jobs = args.jobs if args.jobs else min(8, os.cpu_count() or 1)
    report = scanner.scan_paths(paths, baseline=baseline, jobs=jobs, injected=index)
    if not report.files and report.errors and len(report.errors) == len(paths):
        raise ScanError(
            "; ".join(report.errors), hint="check the paths given to `jupyter qsecure scan`"
        )
    if args.format == "json":
        json.dump(report.model_dump(mode="json"), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(report, sys.stdout)
    for error in report.errors:
        print(f"jupyter qsecure scan: error: {error}", file=sys.stderr)
    if warning is not None:
        print(f"jupyter qsecure scan: error: {warning}", file=sys.stderr)
    if report.findings:
        return 1
    return 2 if report.errors or warning is not None else 0
