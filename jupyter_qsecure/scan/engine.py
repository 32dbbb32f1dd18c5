"""The scanner: notebooks, texts and files in, findings out, with a content-hash cache.

Each text unit (see :mod:`.extract`) is scanned once per distinct content: results
are cached under a hash of ``(detector profile, text)``, so re-scanning a notebook
after one cell changed runs the detectors on that cell's texts only (everything
else is a cache hit). :attr:`Scanner.stats` counts both, for tests and benchmarks.

Thread safety: a :class:`Scanner` may be shared by any number of threads (the
server saves many notebooks at once). The cache is guarded by a lock; detectors
keep no shared mutable state (see :mod:`.detectors`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._lru import LRU
from .baseline import Baseline
from .detectors import detect
from .errors import InvalidNotebook, ScanError
from .exact import ExactMatcher
from .extract import (
    TextUnit,
    decode_text,
    notebook_units,
    rendered_file_unit,
    text_file_unit,
)
from .fingerprints import Fingerprinter, FingerprintIndex, process_fingerprinter
from .models import Detection, Finding, Match, ScanReport

#: Folders never descended into by a folder scan.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "node_modules",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
    }
)
#: Files bigger than this are reported as not scanned rather than read into memory.
MAX_FILE_BYTES = 512 * 1024 * 1024

ExactValues = ExactMatcher | Iterable[str] | None


@dataclass
class ScanStats:
    """How much work scans did: units run through the detectors vs served from cache."""

    units_scanned: int = 0
    units_cached: int = 0


@dataclass
class ScanResult:
    """Findings of one notebook or text, plus what redaction needs (internal)."""

    path: str
    findings: list[Finding]
    matches: list[Match] = field(default_factory=list, repr=False)
    units: list[TextUnit] = field(default_factory=list, repr=False)
    is_notebook: bool = True

    @property
    def clean(self) -> bool:
        return not self.findings

    def to_json(self) -> list[dict[str, Any]]:
        """Findings as JSON-ready dicts (the design.md contract; no secret values)."""
        return [f.model_dump(mode="json") for f in self.findings]


def _matcher(exact_values: ExactValues) -> ExactMatcher | None:
    if exact_values is None:
        return None
    if isinstance(exact_values, ExactMatcher):
        return exact_values if exact_values else None
    matcher = ExactMatcher(exact_values)
    return matcher if matcher else None


def as_notebook(nb: Any, *, path: str = "") -> Mapping[str, Any]:
    """A v4 notebook mapping from a NotebookNode, dict, JSON text or bytes (v3 converted).

    Raises :class:`InvalidNotebook` (naming ``path``) when it is not a notebook.
    """
    where = path or "notebook"
    try:
        if isinstance(nb, (bytes, bytearray)):
            nb = nb.decode("utf-8")
        if isinstance(nb, str):
            nb = json.loads(nb)
        if not isinstance(nb, Mapping) or "cells" not in nb and "worksheets" not in nb:
            raise ValueError("no 'cells' list: this is JSON but not a notebook")
        major = int(nb.get("nbformat", 4))
        if major == 4:
            # Used as it is (multi-line strings may still be lists: the extractor joins
            # them); converting half a million nodes to NotebookNode costs more than the scan.
            return nb
        import nbformat  # only for old formats: importing it costs ~1 s (jsonschema)

        node = nbformat.convert(nbformat.from_dict(nb), 4)
        nbformat.v4.rwbase.rejoin_lines(node)
        return node
    except InvalidNotebook:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise InvalidNotebook(
            f"{where} is not a valid notebook: {exc}",
            hint="open it in Jupyter to repair it, or exclude it from the scan",
        ) from exc


class Scanner:
    """Scans notebooks and texts for secrets. Share one instance: it owns the cache.

    ``exact_values`` given here are searched in every scan (and per call, more).
    ``fingerprinter`` keys the fingerprints of findings (the server's and the command
    line's come from :func:`~.fingerprints.fingerprinter_from_settings`); without one,
    the process-wide one (:func:`~.fingerprints.set_process_fingerprinter`) is used.
    """

    def __init__(
        self,
        *,
        cache_entries: int = 200_000,
        exact_values: Iterable[str] = (),
        fingerprinter: Fingerprinter | None = None,
    ) -> None:
        self._fingerprinter = fingerprinter
        self._cache: LRU[bytes, tuple[Detection, ...]] = LRU(cache_entries)
        self._lock = threading.Lock()  # for the statistics
        self.stats = ScanStats()
        self._exact = ExactMatcher(exact_values)
        #: Rendered JSON units (big metadata such as widget state), by content hash.
        self._json_memo: LRU[Any, Any] = LRU(2048)

    @property
    def fingerprinter(self) -> Fingerprinter:
        """The key of this scanner's fingerprints (the process-wide one unless given)."""
        return self._fingerprinter or process_fingerprinter()

    # ---------------------------------------------------------------- cache
    def clear_cache(self) -> None:
        self._cache.clear()

    @staticmethod
    def _unit_key(unit: TextUnit) -> bytes:
        return hashlib.sha256(
            unit.profile.encode() + b"\0" + unit.text.encode("utf-8", "surrogatepass")
        ).digest()

    def _detect_cached(self, unit: TextUnit, key: bytes | None = None) -> tuple[Detection, ...]:
        key = key or self._unit_key(unit)
        hit = self._cache.get(key)
        if hit is not None:
            with self._lock:
                self.stats.units_cached += 1
            return hit
        found = tuple(detect(unit.text, unit.profile))
        with self._lock:
            self.stats.units_scanned += 1
        self._cache.put(key, found)
        return found

    # ---------------------------------------------------------------- scanning
    def _scan_units(
        self,
        units: list[TextUnit],
        path: str,
        exact: ExactMatcher | None,
        *,
        is_notebook: bool,
        injected: FingerprintIndex | None = None,
    ) -> ScanResult:
        matchers = [m for m in (self._exact if self._exact else None, exact) if m is not None]
        registry = injected if injected else None
        matches: list[Match] = []
        for index, unit in enumerate(units):
            digest = self._unit_key(unit)
            detections = list(self._detect_cached(unit, digest))
            for matcher in matchers:
                detections.extend(matcher.find(unit.text))
            if registry is not None:
                detections.extend(_unknown_in_memory(registry.find(unit.text, digest), detections))
            for d in detections:
                piece = unit.piece_at(d.start)
                finding = Finding(
                    path=path,
                    cell=unit.cell,
                    cell_id=unit.cell_id,
                    where=unit.where,
                    output=piece.output if piece is not None else unit.output,
                    mime=unit.mime,
                    line=unit.line_of(d.start),
                    type=d.type,
                    fingerprint=d.fingerprint or self.fingerprinter(d.fingerprint_of or d.secret),
                    secret_name=d.secret_name,
                    injected_on=d.injected_on,
                )
                matches.append(Match(finding, index, d.start, d.end, d.secret))
        return ScanResult(path, _unique_findings(matches), matches, units, is_notebook)

    def scan_notebook(
        self,
        nb: Any,
        *,
        path: str = "",
        exact_values: ExactValues = None,
        injected: FingerprintIndex | None = None,
    ) -> ScanResult:
        """Scan a notebook (``NotebookNode``, dict, JSON text or bytes).

        ``exact_values``: extra values to find with their encodings (e.g. what the
        server injected into this notebook's kernel), or a prepared :class:`ExactMatcher`.
        ``injected``: fingerprints of values injected earlier (the registry), matched
        on candidate tokens. Raises :class:`InvalidNotebook` if ``nb`` is not a notebook.
        """
        node = as_notebook(nb, path=path)
        units = notebook_units(node, memo=self._json_memo)
        return self._scan_units(
            units, path, _matcher(exact_values), is_notebook=True, injected=injected
        )

    def scan_text(
        self,
        text: str,
        *,
        path: str = "",
        exact_values: ExactValues = None,
        injected: FingerprintIndex | None = None,
    ) -> ScanResult:
        """Scan a non-notebook text (a ``.py``, ``.env``, ``.yaml`` … file's content).

        ``path``'s suffix selects the keyword syntax (e.g. ``.py`` needs quotes,
        ``.yaml``/``.cfg`` accept ``password: value``).
        """
        unit = text_file_unit(text, path or "text.txt")
        units = [unit] if unit is not None else []
        rendered = rendered_file_unit(text, path)  # SVG/HTML: also what it shows
        if rendered is None or not units:
            return self._scan_units(
                units, path, _matcher(exact_values), is_notebook=False, injected=injected
            )
        result = self._scan_units(
            [*units, rendered], path, _matcher(exact_values), is_notebook=False, injected=injected
        )
        # what the file's own text shows is reported there, once
        shown = {m.secret for m in result.matches if m.unit_index == 0}
        matches = [m for m in result.matches if m.unit_index == 0 or m.secret not in shown]
        if len(matches) == len(result.matches):
            return result
        return ScanResult(path, _unique_findings(matches), matches, result.units, False)

    def scan_file(
        self,
        path: str | os.PathLike[str],
        *,
        exact_values: ExactValues = None,
        injected: FingerprintIndex | None = None,
    ) -> ScanResult | None:
        """Scan one file: ``.ipynb`` as a notebook, other text line by line.

        Returns ``None`` for a binary file (skipped). Raises :class:`ScanError` if the
        file cannot be read, :class:`InvalidNotebook` if a ``.ipynb`` is not a notebook.
        """
        name = os.fspath(path)
        try:
            size = os.path.getsize(name)
            if size > MAX_FILE_BYTES:
                raise ScanError(
                    f"{name} is {size} bytes, more than the scanner reads ({MAX_FILE_BYTES})",
                    hint="split the file or scan it with a dedicated tool",
                )
            with open(name, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ScanError(
                f"cannot read {name}: {exc.strerror or exc}",
                hint="check the path and its permissions",
            ) from exc
        if name.endswith(".ipynb"):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidNotebook(
                    f"{name} is not a valid notebook: not UTF-8 text",
                    hint="open it in Jupyter to repair it, or exclude it from the scan",
                ) from exc
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidNotebook(
                    f"{name} is not a valid notebook: invalid JSON at line {exc.lineno} "
                    f"column {exc.colno}",
                    hint="open it in Jupyter to repair it, or exclude it from the scan",
                ) from exc
            return self.scan_notebook(obj, path=name, exact_values=exact_values, injected=injected)
        decoded = decode_text(data)  # UTF-8, UTF-16/32 with a BOM, 8-bit; None: binary
        if decoded is None:
            return None
        return self.scan_text(decoded.text, path=name, exact_values=exact_values, injected=injected)

    def scan_paths(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        baseline: Baseline | None = None,
        exact_values: ExactValues = None,
        injected: FingerprintIndex | None = None,
        jobs: int = 1,
    ) -> ScanReport:
        """Scan files and folders (recursed). Unreadable files go to ``report.errors``.

        ``jobs > 1`` scans files in that many worker processes (for the command line;
        a server should keep ``jobs=1`` and share this scanner's cache instead).
        ``injected``: the fingerprint registry's index, matched in every file.
        """
        started = time.perf_counter()
        matcher = _matcher(exact_values)
        report = ScanReport()
        names = list(iter_files(paths, report.errors))
        if jobs > 1 and len(names) >= 2 * jobs:
            outcomes: Iterable[tuple[str, list[Finding] | None, str | None]] = _parallel(
                names, baseline, matcher, jobs, self.fingerprinter, injected
            )
        else:
            outcomes = (_scan_one(self, name, baseline, matcher, injected) for name in names)
        for _name, findings, error in outcomes:
            if error is not None:
                report.errors.append(error)
            elif findings is not None:
                report.files += 1
                report.findings.extend(findings)
        report.seconds = round(time.perf_counter() - started, 4)
        return report


def _scan_one(
    scanner: Scanner,
    name: str,
    baseline: Baseline | None,
    matcher: ExactMatcher | None,
    injected: FingerprintIndex | None = None,
) -> tuple[str, list[Finding] | None, str | None]:
    try:
        result = scanner.scan_file(name, exact_values=matcher, injected=injected)
    except ScanError as exc:
        return name, None, exc.message
    if result is None:
        return name, None, None
    return name, _apply_baseline(result, baseline), None


_worker_state: dict[str, Any] = {}


def _worker_init(
    baseline: Baseline | None,
    values: frozenset[str],
    fingerprinter: Fingerprinter,
    injected: FingerprintIndex | None,
) -> None:
    _worker_state["scanner"] = Scanner(fingerprinter=fingerprinter)
    _worker_state["baseline"] = baseline
    _worker_state["matcher"] = ExactMatcher(values) if values else None
    _worker_state["injected"] = injected


def _worker_scan(name: str) -> tuple[str, list[Finding] | None, str | None]:
    return _scan_one(
        _worker_state["scanner"],
        name,
        _worker_state["baseline"],
        _worker_state["matcher"],
        _worker_state["injected"],
    )


def _parallel(
    names: list[str],
    baseline: Baseline | None,
    matcher: ExactMatcher | None,
    jobs: int,
    fingerprinter: Fingerprinter,
    injected: FingerprintIndex | None,
) -> list[tuple[str, list[Finding] | None, str | None]]:
    from concurrent.futures import ProcessPoolExecutor

    # Biggest files first so one large notebook does not finish last on its own.
    order = sorted(names, key=lambda n: -_size(n))
    values = matcher.values if matcher is not None else frozenset()
    with ProcessPoolExecutor(
        max_workers=jobs,
        initializer=_worker_init,
        initargs=(baseline, values, fingerprinter, injected),
    ) as pool:
        done = {
            name: out
            for name, out in zip(order, pool.map(_worker_scan, order, chunksize=1), strict=True)
        }
    return [done[name] for name in names]


def _unknown_in_memory(found: list[Detection], others: list[Detection]) -> list[Detection]:
    """Registry hits not already reported where an in-memory injected value was matched."""
    if not found:
        return found
    spans = [(d.start, d.end) for d in others if d.type.startswith("Injected Secret")]
    return [d for d in found if not any(s < d.end and d.start < e for s, e in spans)]


def _size(name: str) -> int:
    try:
        return os.path.getsize(name)
    except OSError:
        return 0


def _apply_baseline(result: ScanResult, baseline: Baseline | None) -> list[Finding]:
    if baseline is None:
        return result.findings
    known = {
        tuple(m.finding.model_dump().values())
        for m in result.matches
        if baseline.is_known(result.path, m.finding.type, m.sha1)
    }
    return [f for f in result.findings if tuple(f.model_dump().values()) not in known]


def iter_files(paths: Iterable[str | os.PathLike[str]], errors: list[str]) -> Iterator[str]:
    """Files named by ``paths``, folders walked in sorted order (skipping :data:`SKIP_DIRS`)."""
    for raw in paths:
        name = os.fspath(raw)
        if os.path.isdir(name):
            for root, dirs, files in os.walk(name):
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
                for fname in sorted(files):
                    full = os.path.join(root, fname)
                    if os.path.isfile(full):
                        yield full
        elif os.path.isfile(name):
            yield name
        elif os.path.exists(name):
            errors.append(f"{name} is not a regular file; skipped")
        else:
            errors.append(f"{name} does not exist")


_default: Scanner | None = None
_default_lock = threading.Lock()


def _unique_findings(matches: list[Match]) -> list[Finding]:
    """The findings of ``matches``, each once, in order."""
    findings: list[Finding] = []
    seen: set[tuple[Any, ...]] = set()
    for m in matches:
        key = tuple(m.finding.model_dump().values())
        if key not in seen:
            seen.add(key)
            findings.append(m.finding)
    return findings


def default_scanner() -> Scanner:
    """The process-wide scanner (one cache shared by every caller)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Scanner()
    return _default


def scan_notebook(nb: Any, *, path: str = "", exact_values: ExactValues = None) -> ScanResult:
    """Scan a notebook with the process-wide :func:`default_scanner`."""
    return default_scanner().scan_notebook(nb, path=path, exact_values=exact_values)


def scan_text(text: str, *, path: str = "", exact_values: ExactValues = None) -> ScanResult:
    """Scan a text with the process-wide :func:`default_scanner`."""
    return default_scanner().scan_text(text, path=path, exact_values=exact_values)


def scan_paths(
    paths: Iterable[str | os.PathLike[str]], *, baseline: Baseline | None = None
) -> ScanReport:
    """Scan files and folders with the process-wide :func:`default_scanner`."""
    return default_scanner().scan_paths(paths, baseline=baseline)


def path_of(p: str | Path) -> str:
    return os.fspath(p)
