"""The scanner: notebooks, texts and files in, findings out, with a content-hash cache.

Each text unit (see :mod:`.extract`) is scanned once per distinct content: results
are cached under a hash of ``(detector profile, text)``, so re-scanning a notebook
after one cell changed runs the detectors on that cell's texts only (everything
else is a cache hit). :attr:`Scanner.stats` counts both, for tests and benchmarks.

Layers (see :mod:`.layers` for how they are merged into one finding per secret):
values injected into kernels (exact match, and the fingerprint registry's index of
earlier injections, :mod:`.fingerprints`), an organisation's rule file
(:mod:`.orgrules`), kingfisher's provider rules (:mod:`.providers`), our detectors and
detect-secrets' plugins (:mod:`.detectors`). The units of one scan that miss the cache
go to kingfisher in one native call.

Thread safety: a :class:`Scanner` may be shared by any number of threads (the
server saves many notebooks at once). The cache is guarded by a lock; detectors
keep no shared mutable state (see :mod:`.detectors`); the native scanners are
thread-safe.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import pickle
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from .._lru import LRU
from .baseline import Baseline
from .detectors import detect, is_line_allowlisted
from .errors import InvalidNotebook, ScanError
from .exact import ExactMatcher
from .extract import (
    TextUnit,
    cell_units,
    decode_text,
    metadata_units,
    notebook_cells,
    rendered_file_unit,
    text_file_unit,
)
from .fingerprints import Fingerprinter, FingerprintIndex, process_fingerprinter
from .layers import Layered, Rank, is_placeholder_value, rank_of_ours, resolve, token_around
from .models import Detection, Finding, Match, ScanReport
from .orgrules import OrgRules
from .providers import builtin_detections, builtin_loader

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
RulesFile = str | os.PathLike[str] | OrgRules | None


@dataclass(frozen=True)
class LayeredMatch(Match):
    """A match plus the ``(type, sha1)`` of every detection merged into it (baselines)."""

    aliases: tuple[tuple[str, str], ...] = field(default=(), repr=False)


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


@dataclass(frozen=True, eq=False)
class _Context:
    """Everything besides a unit's text that decides its matches and their findings.

    Two contexts are the same only when every engine is the very same object: a new
    value set (a new exact engine), a reloaded fingerprint registry (a new index), a
    new fingerprint key or rule set is a different context, so nothing matched under
    an old one is served (see :class:`_Part`).
    """

    path: str
    own_exact: ExactMatcher | None  # the scanner's own values
    exact: ExactMatcher | None  # this call's values
    registry: FingerprintIndex | None
    fingerprinter: Fingerprinter
    org_rules: OrgRules | None
    providers: bool

    def same_as(self, other: _Context) -> bool:
        return (
            self.path == other.path
            and _token(self.own_exact) is _token(other.own_exact)
            and _token(self.exact) is _token(other.exact)
            and self.registry is other.registry
            and self.fingerprinter is other.fingerprinter
            and self.org_rules is other.org_rules
            and self.providers == other.providers
        )


def _token(matcher: ExactMatcher | None) -> object:
    return matcher.cache_token if matcher is not None else None


@dataclass
class _Part:
    """One cell (or the notebook's metadata) as last scanned at a path, with its units.

    ``blob`` is an exact serialisation of the cell (:func:`_blob`): equal blobs mean
    equal cells (same strings, numbers, types and key order), so an unchanged cell
    keeps its units and, under the same :class:`_Context`, its matches. An autosave
    after a one-cell edit extracts and matches that cell only. ``scanned`` is replaced
    whole (one assignment), so a concurrent scan sees a consistent pair.
    """

    blob: tuple[str, bytes] | None
    units: list[TextUnit]
    keys: list[bytes]
    scanned: tuple[_Context, list[LayeredMatch]] | None = None


#: Paths whose notebook's parts are remembered (the notebooks open for editing).
NOTEBOOK_MEMO_PATHS = 32


def _blob(value: Any) -> tuple[str, bytes] | None:
    """An exact serialisation of JSON data (``None``: cannot be serialised, not memoised).

    Equal bytes mean equal content, key order and types included: both formats decode
    to exactly the data they encoded. (marshal marks objects referenced more than once
    for back-references, so equal content can give other bytes: a spurious change,
    never a missed one.) marshal is ~2x faster than pickle, but refuses dict subclasses
    (nbformat's ``NotebookNode``); the format's name is part of the result, so the two
    never compare equal.
    """
    try:
        return ("marshal", marshal.dumps(value))
    except ValueError:
        pass
    try:
        return ("pickle", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except (TypeError, ValueError, AttributeError, RecursionError, pickle.PicklingError):
        return None


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

        # nbformat is untyped: its NotebookNode is a dict subclass
        node = nbformat.convert(nbformat.from_dict(nb), 4)  # type: ignore[no-untyped-call]
        nbformat.v4.rwbase.rejoin_lines(node)  # type: ignore[no-untyped-call]
        return cast(Mapping[str, Any], node)
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
    ``rules``: an organisation's rule file (gitleaks TOML or kingfisher YAML, see
    :mod:`.orgrules`), or a loaded :class:`OrgRules`. ``providers=False`` leaves out
    kingfisher's built-in provider rules (for comparisons; the product always has them).
    ``fingerprinter`` keys the fingerprints of findings (the server's and the command
    line's come from :func:`~.fingerprints.fingerprinter_from_settings`); without one,
    the process-wide one (:func:`~.fingerprints.set_process_fingerprinter`) is used.
    """

    def __init__(
        self,
        *,
        cache_entries: int = 200_000,
        exact_values: Iterable[str] = (),
        rules: RulesFile = None,
        providers: bool = True,
        fingerprinter: Fingerprinter | None = None,
    ) -> None:
        self._fingerprinter = fingerprinter
        self.org_rules: OrgRules | None = (
            rules if isinstance(rules, OrgRules) or rules is None else OrgRules.load(rules)
        )
        self.providers = providers
        if providers:
            builtin_loader()  # starts loading kingfisher's catalogue in the background
        # Detections only, never fingerprints: those are computed per scan with the
        # fingerprinter in force then, so a cached unit is never reported under another
        # key. The registry's matches are cached by its index (one key) under the same
        # unit digest.
        self._cache: LRU[bytes, tuple[Layered, ...]] = LRU(cache_entries)
        self._lock = threading.Lock()  # for the statistics
        self.stats = ScanStats()
        self._exact = ExactMatcher(exact_values)
        #: Rendered JSON units (big metadata such as widget state), by content hash.
        self._json_memo: LRU[Any, Any] = LRU(2048)
        #: (unit digest, value set's engine) -> exact matches; the key holds the engine, so
        #: a new value set never finds an old set's entries
        self._exact_memo: LRU[tuple[bytes, object], tuple[Detection, ...]] = LRU(cache_entries)
        #: path -> the parts of the notebook last scanned there (see _Part)
        self._notebooks: LRU[str, list[_Part]] = LRU(NOTEBOOK_MEMO_PATHS)

    @property
    def fingerprinter(self) -> Fingerprinter:
        """The key of this scanner's fingerprints (the process-wide one unless given)."""
        return self._fingerprinter or process_fingerprinter()

    # ---------------------------------------------------------------- cache
    def clear_cache(self) -> None:
        self._cache.clear()
        self._exact_memo.clear()
        self._notebooks.clear()

    @staticmethod
    def _unit_key(unit: TextUnit) -> bytes:
        return hashlib.sha256(
            unit.profile.encode() + b"\0" + unit.text.encode("utf-8", "surrogatepass")
        ).digest()

    def _exact_cached(
        self, matcher: ExactMatcher, unit: TextUnit, digest: bytes
    ) -> tuple[Detection, ...]:
        """``matcher.find(unit.text)``, remembered per text and value set: an autosave after
        a one-cell edit searches only the changed cell for the injected values again."""
        key = (digest, matcher.cache_token)
        hit = self._exact_memo.get(key)
        if hit is None:
            hit = tuple(matcher.find(unit.text))
            self._exact_memo.put(key, hit)
        return hit

    def _detect_all(self, units: list[TextUnit]) -> list[tuple[Layered, ...]]:
        """Every layer but exact values over ``units``: one native call per rule engine."""
        texts = [u.text for u in units]
        found: list[list[Layered]] = [
            [Layered(rank_of_ours(d.type), d) for d in detect(u.text, u.profile)] for u in units
        ]
        rule_hits: list[list[Layered]] = [[] for _ in units]
        if self.providers:
            for i, dets in enumerate(builtin_detections(texts)):
                rule_hits[i].extend(
                    Layered(Rank.PROVIDER_RULE if high else Rank.PROVIDER_GUESS, d)
                    for high, d in dets
                )
        if self.org_rules is not None:
            for i, pairs in enumerate(self.org_rules.detections(texts)):
                rule_hits[i].extend(Layered(Rank.ORG_RULE, d, rid) for rid, d in pairs)
        for i, hits in enumerate(rule_hits):
            if hits:
                found[i].extend(_not_pragma_allowed(texts[i], hits))
        return [
            tuple(
                x
                for x in f
                if not is_placeholder_value(token_around(text, x.detection.start, x.detection.end))
            )
            for text, f in zip(texts, found, strict=True)
        ]

    def _detect_cached(
        self, units: list[TextUnit], keys: list[bytes] | None = None
    ) -> list[tuple[Layered, ...]]:
        keys = keys if keys is not None else [self._unit_key(u) for u in units]
        out: list[tuple[Layered, ...] | None] = [self._cache.get(k) for k in keys]
        misses = [i for i, hit in enumerate(out) if hit is None]
        if misses:
            fresh = self._detect_all([units[i] for i in misses])
            for i, value in zip(misses, fresh, strict=True):
                self._cache.put(keys[i], value)
                out[i] = value
        with self._lock:
            self.stats.units_scanned += len(misses)
            self.stats.units_cached += len(units) - len(misses)
        return [o if o is not None else () for o in out]

    # ---------------------------------------------------------------- scanning
    def _context(
        self, path: str, exact: ExactMatcher | None, injected: FingerprintIndex | None
    ) -> _Context:
        """Everything but the units' texts that decides their matches (see :class:`_Part`)."""
        return _Context(
            path,
            self._exact if self._exact else None,
            exact if exact else None,
            injected if injected else None,
            self.fingerprinter,
            self.org_rules,
            self.providers,
        )

    def _scan_units(
        self,
        units: list[TextUnit],
        path: str,
        exact: ExactMatcher | None,
        *,
        is_notebook: bool,
        injected: FingerprintIndex | None = None,
    ) -> ScanResult:
        keys = [self._unit_key(u) for u in units]
        context = self._context(path, exact, injected)
        found = self._unit_matches(units, keys, context, self._detect_cached(units, keys))
        matches: list[Match] = list(found)
        return ScanResult(path, _unique_findings(matches), matches, units, is_notebook)

    def _unit_matches(
        self,
        units: list[TextUnit],
        keys: list[bytes],
        context: _Context,
        layered: list[tuple[Layered, ...]],
    ) -> list[LayeredMatch]:
        """The matches of ``units`` (``unit_index`` counted from 0) under ``context``, given
        what the detectors found in them (``layered``, from :meth:`_detect_cached`)."""
        path = context.path
        matchers = [m for m in (context.own_exact, context.exact) if m is not None]
        registry = context.registry
        matches: list[LayeredMatch] = []
        org = context.org_rules
        fingerprinter = context.fingerprinter
        for index, (unit, digest, cached) in enumerate(zip(units, keys, layered, strict=True)):
            items = list(cached)
            if org is not None:
                items = [
                    x
                    for x in items
                    if not x.rule
                    or not org.rule_allows(
                        x.rule,
                        path=path,
                        secret=_value_of(x.detection),
                        line=_line_at(unit.text, x.detection.start),
                        hashes=(fingerprinter(_value_of(x.detection)),),
                    )
                ]
            exact_found: list[Detection] = []
            for matcher in matchers:
                exact_found.extend(self._exact_cached(matcher, unit, digest))
            if registry is not None:
                # Registry values rank with exact values: both are what a kernel was given.
                exact_found.extend(
                    _unknown_in_memory(registry.find(unit.text, digest), exact_found)
                )
            items.extend(Layered(Rank.EXACT, d) for d in exact_found)
            found: list[tuple[LayeredMatch, bool]] = []
            for group in resolve(items):
                d = group.detection
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
                    fingerprint=d.fingerprint or fingerprinter(d.fingerprint_of or d.secret),
                    secret_name=d.secret_name,
                    injected_on=d.injected_on,
                )
                if (
                    org is not None
                    and group.winner.rank != Rank.EXACT
                    and org.allows(
                        path=path,
                        secret=_value_of(d),
                        line=_line_at(unit.text, d.start),
                        hashes=_fingerprints(finding, group.members, fingerprinter),
                    )
                ):
                    continue
                aliases = _aliases(group.members)
                match = LayeredMatch(finding, index, group.start, group.end, d.secret, aliases)
                # a rule layer's hit inside a base64 blob it decoded (see .providers)
                found.append(
                    (match, group.winner.rank != Rank.EXACT and d.fingerprint_of is not None)
                )
            matches.extend(_fold_decoded(found))
        return matches

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
        context = self._context(path, _matcher(exact_values), injected)
        before = self._notebooks.get(path)
        if before and before[-1].scanned and before[-1].scanned[0].same_as(context):
            context = before[-1].scanned[0]  # compared once here, by identity per part
        parts = self._notebook_parts(node, before or [])
        done = [p.scanned if p.scanned and p.scanned[0] is context else None for p in parts]
        # the units of every part to match go through the detectors in one batch
        todo = [p for p, d in zip(parts, done, strict=True) if d is None]
        layered = iter(
            self._detect_cached(
                [u for p in todo for u in p.units], [k for p in todo for k in p.keys]
            )
        )
        units: list[TextUnit] = []
        matches: list[Match] = []
        reused = 0
        for part, scanned in zip(parts, done, strict=True):
            if scanned is not None:
                found = scanned[1]
                reused += len(part.units)
            else:
                detected = [next(layered) for _ in part.units]
                found = self._unit_matches(part.units, part.keys, context, detected)
                part.scanned = (context, found)
            base = len(units)
            matches.extend(replace(m, unit_index=m.unit_index + base) if base else m for m in found)
            units.extend(part.units)
        if reused:
            with self._lock:
                self.stats.units_cached += reused
        self._notebooks.put(path, parts)
        return ScanResult(path, _unique_findings(matches), matches, units, True)

    def _notebook_parts(self, node: Mapping[str, Any], before: list[_Part]) -> list[_Part]:
        """The notebook's cells and metadata as :class:`_Part` s, those unchanged since
        ``before`` (the last scan at this path) reused, the others extracted afresh."""
        cells = notebook_cells(node)
        items: list[tuple[Any, Any]] = [(ci, cell) for ci, cell in enumerate(cells)]
        items.append((None, node.get("metadata")))
        parts: list[_Part] = []
        for position, (ci, value) in enumerate(items):
            blob = _blob(value)
            # the metadata is last: matched with the last part, never with a cell
            if ci is None:
                old = before[-1] if before else None
            else:
                old = before[position] if position < len(before) - 1 else None
            if blob is not None and old is not None and old.blob == blob:
                parts.append(old)
                continue
            units = (
                metadata_units(value, self._json_memo)
                if ci is None
                else cell_units(ci, value, self._json_memo)
            )
            keys = [self._unit_key(u) for u in units]
            parts.append(_Part(blob, units, keys))
        return parts

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
            if self.providers:
                builtin_loader().get()  # loaded before the workers fork (they inherit it)
            outcomes: Iterable[tuple[str, list[Finding] | None, str | None]] = _parallel(
                names,
                baseline,
                matcher,
                jobs,
                self.org_rules,
                self.providers,
                self.fingerprinter,
                injected,
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


def _line_at(text: str, offset: int) -> str:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return text[start : end if end != -1 else len(text)]


#: Value-level detect-secrets types: the same value was reported under any of them from
#: one run to the next (issue 13), so a baseline entry under one covers the others.
_GENERIC_TYPES = ("Secret Keyword", "Base64 High Entropy String", "Hex High Entropy String")


def _aliases(members: Iterable[Layered]) -> tuple[tuple[str, str], ...]:
    """``(type, sha1)`` pairs under which a baseline may know this secret."""
    out: list[tuple[str, str]] = []
    for m in members:
        sha1 = _sha1(m.detection.secret)
        types = _GENERIC_TYPES if m.detection.type in _GENERIC_TYPES else (m.detection.type,)
        out.extend((t, sha1) for t in types if (t, sha1) not in out)
    return tuple(out)


def _sha1(secret: str) -> str:
    return hashlib.sha1(secret.encode("utf-8", "surrogatepass")).hexdigest()  # noqa: S324


def _fold_decoded(found: list[tuple[LayeredMatch, bool]]) -> list[LayeredMatch]:
    """One unit's matches, a secret decoded from base64 where the unit also holds it as
    written reported as that finding (one secret, one finding: a short attachment is
    scanned decoded and as stored). Its match stays, so redaction removes the blob too."""
    written = {m.finding.fingerprint: m.finding for m, decoded in found if not decoded}
    out = []
    for m, decoded in found:
        same = written.get(m.finding.fingerprint) if decoded else None
        out.append(m if same is None else replace(m, finding=same))
    return out


def _value_of(d: Detection) -> str:
    """The secret a detection stands for: what it fingerprints (a token kingfisher decoded
    from base64, an injected value found encoded), else the matched text."""
    return d.fingerprint_of or d.secret


def _fingerprints(
    finding: Finding, members: Iterable[Layered], fingerprinter: Fingerprinter
) -> list[str]:
    """The keyed fingerprints an organisation's ``fingerprints`` allowlist may name for
    this secret: the finding's, and that of every detection merged into it (a value the
    finding's span widened from one run to the next keeps matching)."""
    out = [finding.fingerprint]
    for m in members:
        d = m.detection
        fp = d.fingerprint or fingerprinter(_value_of(d))
        if fp not in out:
            out.append(fp)
    return out


def _not_pragma_allowed(text: str, hits: list[Layered]) -> list[Layered]:
    """Rule-engine hits not on a line allowlisted inline (``pragma: allowlist secret``,
    ``gitleaks:allow``), as our own detectors honour the pragma."""
    if "pragma" not in text and "gitleaks:allow" not in text:
        return hits
    kept = []
    for hit in hits:
        start = hit.detection.start
        line = _line_at(text, start)
        line_start = text.rfind("\n", 0, start) + 1
        previous = _line_at(text, line_start - 1) if line_start > 0 else ""
        if "gitleaks:allow" in line or is_line_allowlisted(line[-4096:], previous[-4096:]):
            continue
        kept.append(hit)
    return kept


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
    rules: str | None,
    providers: bool,
    fingerprinter: Fingerprinter,
    injected: FingerprintIndex | None,
) -> None:
    _worker_state["scanner"] = Scanner(
        rules=rules, providers=providers, fingerprinter=fingerprinter
    )
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
    rules: OrgRules | None,
    providers: bool,
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
        initargs=(
            baseline,
            values,
            rules.path if rules is not None else None,
            providers,
            fingerprinter,
            injected,
        ),
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
        if any(
            baseline.is_known(result.path, type_, sha1)
            for type_, sha1 in (
                m.aliases if isinstance(m, LayeredMatch) else ((m.finding.type, m.sha1),)
            )
        )
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


def scanner_for_settings(settings: Any) -> Scanner:
    """The scanner a server or command uses: the shared one, with ``settings.scan_rules``.

    Raises :class:`ScanError` if the rule file is missing or invalid (fail closed).
    """
    rules = str(getattr(settings, "scan_rules", "") or "")
    if not rules:
        return default_scanner()
    org = OrgRules.load(rules)
    with _default_lock:
        scanner = _with_rules.get(org.path)
        if scanner is None or scanner.org_rules is not org:
            scanner = _with_rules[org.path] = Scanner(rules=org)
    return scanner


_with_rules: dict[str, Scanner] = {}


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
