"""Decide what happens to content about to be saved: allow, block, redact or warn.

Works on Jupyter contents models (``type`` notebook/file/directory, ``format``
json/text/base64) and on raw bytes (assembled chunked uploads, checkpoints), so
every path that persists a file can call it. Fails closed: any error while
scanning or recording becomes a :class:`GateError`, and the caller refuses the save.

Refusals do not stack: when the content refused for a user at a path is the same as
last time (JupyterLab's autosave sending an unchanged notebook again), the refusal is a
*repeat*: no new recovery copy, no new ledger entry, and the earlier copy's id. The last
refused digest per (user, path) is forgotten when that path is saved.

A save (``saving=True``) of a notebook that changes what it runs (its
:func:`~jupyter_qsecure.promote.digest.notebook_digest`) is recorded as
``notebook.saved`` with the user: the notebook's last editor, whom the two-person rule of
review (:mod:`jupyter_qsecure.promote.review`) keeps from approving their own change.
Saves that change only outputs or metadata are not recorded (one entry per change of
code, not per autosave). If that record cannot be written the save still goes ahead:
the ledger then does not know who made the current version, and review refuses to
count approvals where the rule needs the editor (it fails closed there instead).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from .._lru import LRU
from ..errors import QSecureError
from ..identity import user_actor
from ..promote.digest import notebook_digest
from ..promote.errors import NotebookRefused
from ..scan import InvalidNotebook, Scanner, ScanResult, redact_notebook, redact_text
from ..scan.extract import decode_text
from ..scan.fingerprints import FingerprintIndex
from ..scan.models import Finding
from .recovery import RecoveryStore

log = logging.getLogger("jupyter_qsecure.gate")

Action = Literal["allow", "block", "redact", "warn", "override"]
MODES = ("block", "redact", "warn")


class GateError(QSecureError):
    """The gate could not decide (scanner or ledger failure): the save must be refused."""


@dataclass
class GateOutcome:
    action: Action
    path: str
    findings: list[Finding] = field(default_factory=list)
    model: dict[str, Any] | None = None  # the (possibly redacted) model to save
    content: bytes | None = None  # the (possibly redacted) bytes to save, for raw checks
    recovery_id: str | None = None
    message: str = ""
    #: A refusal of the same content as the last refusal of this path: nothing kept
    #: or recorded again (``recovery_id`` and ``refused_at`` are the first refusal's).
    repeat: bool = False
    refused_at: str | None = None
    #: The ledger entry that recorded the decision (overrides report it).
    ledger_index: int | None = None

    def findings_json(self) -> list[dict[str, Any]]:
        """Findings as in the scan contract (``cell`` 0-based), plus ``cell_number`` (as
        JupyterLab numbers cells, from 1) and ``location`` (text for people)."""
        return [
            {**f.model_dump(mode="json"), "cell_number": f.cell_number, "location": f.location()}
            for f in self.findings
        ]


@dataclass(frozen=True)
class _Refusal:
    digest: str
    recovery_id: str | None
    at: str


#: (user, path) pairs whose last refusal is remembered.
MAX_REMEMBERED_REFUSALS = 4096


@dataclass
class _Subject:
    """What to scan, and how to put a redacted version back."""

    kind: Literal["notebook", "text", "skip"]
    notebook: Any = None
    text: str = ""
    #: The bytes as they came (base64 model, whole file); empty for a text model, whose
    #: bytes are its text (every reader falls back to ``text`` in UTF-8).
    raw: bytes = b""
    encoding: Literal["json", "text", "base64", "bytes"] = "text"
    #: The codec of ``raw`` (see :func:`~jupyter_qsecure.scan.extract.decode_text`): a
    #: redacted copy is written back in it.
    charset: str = "utf-8"

    def encode(self, text: str) -> bytes:
        """``text`` (a redacted copy) in this file's own encoding."""
        try:
            return text.encode(self.charset)
        except UnicodeEncodeError:  # e.g. a placeholder character cp1252 lacks
            return text.encode(self.charset, "replace")


def _subject_from_model(model: dict[str, Any], path: str) -> _Subject:
    content = model.get("content")
    if content is None or model.get("type") == "directory":
        return _Subject("skip")
    if model.get("type") == "notebook" and isinstance(content, dict):
        return _Subject("notebook", notebook=content, encoding="json")
    if model.get("format") == "base64" and isinstance(content, str):
        try:
            raw = base64.b64decode(content, validate=False)
        except (binascii.Error, ValueError):
            return _Subject("skip")
        return _subject_from_bytes(raw, path, encoding="base64")
    if isinstance(content, str):
        return _subject_from_text(content, path)
    if isinstance(content, dict):  # a notebook arriving as type "file" with JSON content
        return _Subject("notebook", notebook=content, encoding="json")
    return _Subject("skip")


def _subject_from_bytes(raw: bytes, path: str, *, encoding: Literal["base64", "bytes"]) -> _Subject:
    """Bytes of a file: text in whatever encoding it is in (UTF-8, UTF-16/32 with a byte
    order mark, Windows-1252/Latin-1), or binary, which is not scanned."""
    decoded = decode_text(raw)
    if decoded is None:
        return _Subject("skip", raw=raw, encoding=encoding)  # binary payloads are not text
    return _subject_from_text(decoded.text, path, raw=raw, encoding=encoding, charset=decoded.codec)


def _subject_from_text(
    text: str,
    path: str,
    *,
    raw: bytes = b"",
    encoding: Literal["text", "base64", "bytes"] = "text",
    charset: str = "utf-8",
) -> _Subject:
    if path.endswith(".ipynb"):
        try:
            notebook = json.loads(text)
        except ValueError:
            notebook = None
        if isinstance(notebook, dict) and "cells" in notebook:
            return _Subject(
                "notebook",
                notebook=notebook,
                text=text,
                raw=raw,
                encoding=encoding,
                charset=charset,
            )
    return _Subject("text", text=text, raw=raw, encoding=encoding, charset=charset)


class SaveGate:
    """The decision core of the save gate; one per server, shared by all saves."""

    def __init__(
        self,
        *,
        scanner: Scanner,
        recovery: RecoveryStore,
        mode: str = "block",
        ledger: Any = None,
        exact_values: Callable[[], Iterable[str]] | None = None,
        injected: Callable[[], FingerprintIndex | None] | None = None,
        root_dir: str | Path | None = None,
    ) -> None:
        if mode not in MODES:
            raise GateError(f"save_mode {mode!r} is not one of {', '.join(MODES)}")
        self.scanner = scanner
        self.recovery = recovery
        self.mode = mode
        self.ledger = ledger
        # Values injected into kernels: exactly (with their encodings) while they may be
        # valid, and through the fingerprint registry (also across server restarts).
        self._exact_values = exact_values or (lambda: ())
        self._injected = injected or (lambda: None)
        #: The contents manager's root: maps a contents path to the file on disk.
        self.root_dir = Path(root_dir).resolve() if root_dir else None
        #: path -> digest last recorded ("" when the notebook has none)
        self._saved_digests: LRU[str, str] = LRU(4096)
        self._refused: LRU[tuple[str, str], _Refusal] = LRU(MAX_REMEMBERED_REFUSALS)

    def exact_values(self) -> list[str]:
        """The values handed to kernels (and stored by name), matched exactly on save."""
        return list(self._exact_values())

    # ---- entry points ---------------------------------------------------------------------
    def check_model(
        self, model: dict[str, Any], path: str, user: str, *, saving: bool = False
    ) -> GateOutcome:
        """Check a contents model before it is saved at ``path``.

        ``saving``: the model is about to replace the file (a save, not a checkpoint):
        a notebook whose digest changes is recorded with ``user`` as its editor.
        """
        subject = _subject_from_model(model, path)
        outcome = self._decide(subject, path, user)
        if outcome.action == "redact":
            outcome.model = self._redacted_model(model, subject, outcome)
        elif outcome.action in ("allow", "warn"):
            outcome.model = model
        if saving and subject.kind == "notebook" and outcome.model is not None:
            content = outcome.model.get("content")
            if not isinstance(content, dict):
                content = _parse_notebook(content, outcome.model.get("format"))
            self._record_editor(content, path, user)
        return outcome

    def check_bytes(self, raw: bytes, path: str, user: str, *, saving: bool = False) -> GateOutcome:
        """Check a whole file's bytes (assembled chunked upload, checkpoint)."""
        subject = _subject_from_bytes(raw, path, encoding="bytes")
        outcome = self._decide(subject, path, user)
        if outcome.action == "redact":
            outcome.content = subject.encode(self._redacted_text(subject, outcome))
        elif outcome.action in ("allow", "warn"):
            outcome.content = raw
        if saving and subject.kind == "notebook" and outcome.content is not None:
            self._record_editor(_parse_notebook(outcome.content, "bytes"), path, user)
        return outcome

    def check_override(
        self, model: dict[str, Any], path: str, user: str, reason: str
    ) -> GateOutcome:
        """A save the user makes anyway, with ``reason`` (where policy allows it: the
        caller checks). The findings and the reason are recorded (``save.overridden``)
        before the content may be written; a failed record raises :class:`GateError`."""
        subject = _subject_from_model(model, path)
        result = self._scan(subject, path)
        findings = result.findings if result is not None else []
        entry = self._record(
            "save.overridden", path, user, findings, None, mode="override", reason=reason
        )
        self._refused.pop((user, path))
        if subject.kind == "notebook":  # a save: the overriding user is the editor
            self._record_editor(subject.notebook, path, user)
        noun = "secret" if len(findings) == 1 else "secrets"
        return GateOutcome(
            "override",
            path,
            findings,
            model=model,
            message=f"Saved {path} with {len(findings)} {noun}, overriding the save gate "
            f"(recorded with your reason).",
            ledger_index=getattr(entry, "index", None),
        )

    # ---- last editors -----------------------------------------------------------------------
    def _record_editor(self, notebook: Any, path: str, user: str) -> None:
        """Record ``user`` as the notebook's editor if this save changes its digest."""
        if self.ledger is None:
            return
        digest = _digest(notebook)
        known = self._saved_digests.get(path)
        if known is None:  # first save of this path since the server started
            known = self._digest_on_disk(path)
        if known == digest:
            self._saved_digests.put(path, digest)
            return
        body = {
            "path": path,
            "file": str(self._file(path).resolve()) if self.root_dir is not None else None,
            "user": user,
            "digest": digest or None,
        }
        try:
            self.ledger.append("notebook.saved", body, actor=user_actor(user))
        except Exception as exc:  # see the module docstring: review fails closed instead
            log.error(
                "could not record the editor of %s in the ledger (%s)", path, type(exc).__name__
            )
            return
        self._saved_digests.put(path, digest)

    def _file(self, path: str) -> Path:
        assert self.root_dir is not None
        return self.root_dir / path.strip("/")

    def _digest_on_disk(self, path: str) -> str | None:
        """The digest of the notebook the save replaces, or None when unknown."""
        if self.root_dir is None:
            return None
        try:
            raw = self._file(path).read_bytes()
        except OSError:
            return None
        return _digest(_parse_notebook(raw, "bytes"))

    # ---- internals ------------------------------------------------------------------------
    def _scan(self, subject: _Subject, path: str) -> ScanResult | None:
        if subject.kind == "skip":
            return None
        try:
            values = list(self._exact_values())
            index = self._injected()
        except QSecureError as exc:  # e.g. the fingerprint registry is unreadable
            raise GateError(
                f"the save of {path} was refused to be safe: {exc.message}", hint=exc.hint
            ) from exc
        try:
            if subject.kind == "notebook":
                try:
                    return self.scanner.scan_notebook(
                        subject.notebook, path=path, exact_values=values, injected=index
                    )
                except InvalidNotebook:
                    return self.scanner.scan_text(
                        subject.text or subject.raw.decode("utf-8", "replace"),
                        path=path,
                        exact_values=values,
                        injected=index,
                    )
            return self.scanner.scan_text(
                subject.text, path=path, exact_values=values, injected=index
            )
        except Exception as exc:
            raise GateError(
                f"the secret scan of {path} failed ({type(exc).__name__}); the save was refused to be safe",
                hint="retry; if it keeps failing, report it with the server log",
            ) from exc

    def _decide(self, subject: _Subject, path: str, user: str) -> GateOutcome:
        try:
            result = self._scan(subject, path)
        except GateError as exc:
            recovery_id = self._keep(subject, path, user, "scan failed", [])
            if recovery_id:
                exc.hint = (
                    f"your content is kept encrypted: jupyter qsecure recover restore {recovery_id}"
                )
            self._record("save.refused", path, user, [], recovery_id, mode="error")
            raise
        if result is None or result.clean:
            self._refused.pop((user, path))
            return GateOutcome("allow", path)
        findings = result.findings
        summary = _summary(findings)
        if self.mode == "block":
            return self._refuse(subject, path, user, findings, summary)
        self._refused.pop((user, path))
        if self.mode == "redact":
            recovery_id = self._keep(subject, path, user, "redacted on save", findings)
            self._record("save.redacted", path, user, findings, recovery_id)
            return GateOutcome(
                "redact",
                path,
                findings,
                recovery_id=recovery_id,
                message=f"Saved {path} with {summary} replaced by placeholders.",
                model=None,
            )
        self._record("save.warned", path, user, findings, None)
        return GateOutcome("warn", path, findings, message=f"Saved {path}, but it holds {summary}.")

    def _refuse(
        self, subject: _Subject, path: str, user: str, findings: list[Finding], summary: str
    ) -> GateOutcome:
        digest = _content_digest(subject)
        last = self._refused.get((user, path))
        repeat = last is not None and last.digest == digest
        if last is not None and repeat:
            recovery_id, at = last.recovery_id, last.at
        else:
            recovery_id = self._keep(subject, path, user, "secrets found", findings)
            self._record("save.refused", path, user, findings, recovery_id)
            at = _now()
            self._refused.put((user, path), _Refusal(digest, recovery_id, at))
        message = (
            f"Save of {path} refused: {summary}. Remove the secret(s), or mark a false "
            "positive with a `pragma: allowlist secret` comment, then save again."
        )
        if recovery_id:
            message += (
                " Your unsaved content is kept encrypted: "
                f"`jupyter qsecure recover restore {recovery_id}`."
            )
        if repeat:
            message += f" (Unchanged since the refusal at {at}: not recorded again.)"
        return GateOutcome(
            "block",
            path,
            findings,
            recovery_id=recovery_id,
            message=message,
            repeat=repeat,
            refused_at=at,
        )

    def _keep(
        self, subject: _Subject, path: str, user: str, reason: str, findings: list[Finding]
    ) -> str | None:
        raw = subject.raw or subject.text.encode("utf-8", "surrogatepass")
        if not raw and subject.notebook is not None:  # serialised only when a copy is kept
            raw = json.dumps(subject.notebook, indent=1, ensure_ascii=False).encode("utf-8")
        if not raw:
            return None
        try:
            return self.recovery.save(
                raw, path=path, user=user, reason=reason, findings=findings
            ).id
        except Exception as exc:  # the refusal must still happen; say the copy failed
            log.error("could not keep a recovery copy of %s: %s", path, type(exc).__name__)
            return None

    def _record(
        self,
        kind: str,
        path: str,
        user: str,
        findings: list[Finding],
        recovery_id: str | None,
        *,
        mode: str | None = None,
        reason: str | None = None,
    ) -> Any:
        if self.ledger is None:
            return None
        body: dict[str, Any] = {
            "path": path,
            "user": user,
            "mode": mode or self.mode,
            "findings": [
                {
                    "type": f.type,
                    "fingerprint": f.fingerprint,
                    "cell": f.cell,
                    "where": f.where,
                    "line": f.line,
                }
                for f in findings
            ],
            "recovery_id": recovery_id,
        }
        if reason is not None:
            body["reason"] = reason
        try:
            return self.ledger.append(kind, body, actor=user_actor(user))
        except Exception as exc:
            raise GateError(
                f"the save gate could not record its decision for {path} in the audit ledger "
                f"({type(exc).__name__}); the save was refused to be safe",
                hint="check the ledger (`jupyter qsecure audit verify`) and the server log",
            ) from exc

    def _redacted_model(
        self, model: dict[str, Any], subject: _Subject, outcome: GateOutcome
    ) -> dict[str, Any]:
        redacted = dict(model)
        if subject.kind == "notebook" and subject.encoding == "json":
            redacted["content"] = redact_notebook(
                subject.notebook,
                scanner=self.scanner,
                exact_values=list(self._exact_values()),
                injected=self._injected(),
            )
            return redacted
        text = self._redacted_text(subject, outcome)
        if subject.encoding == "base64":
            redacted["content"] = base64.b64encode(subject.encode(text)).decode("ascii")
        else:
            redacted["content"] = text
        return redacted

    def _redacted_text(self, subject: _Subject, outcome: GateOutcome) -> str:
        values = list(self._exact_values())
        index = self._injected()
        if subject.kind == "notebook":
            notebook = redact_notebook(
                subject.notebook, scanner=self.scanner, exact_values=values, injected=index
            )
            return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
        return redact_text(
            subject.text,
            scanner=self.scanner,
            path=outcome.path,
            exact_values=values,
            injected=index,
        )


def _content_digest(subject: _Subject) -> str:
    """SHA-256 of the content a refusal is about (what the user would save)."""
    if subject.raw:
        data = subject.raw
    elif subject.text:
        data = subject.text.encode("utf-8", "surrogatepass")
    else:
        data = json.dumps(
            subject.notebook, sort_keys=True, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_notebook(content: Any, encoding: Any) -> Any:
    try:
        if encoding == "base64" and isinstance(content, str):
            content = base64.b64decode(content)
        if isinstance(content, bytes):
            content = content.decode("utf-8")
        return json.loads(content) if isinstance(content, str) else None
    except (ValueError, binascii.Error):
        return None


def _digest(notebook: Any) -> str:
    """The notebook's digest, or "" when it has none (invalid, no kernelspec)."""
    if not isinstance(notebook, dict):
        return ""
    try:
        return notebook_digest(notebook, schema=False)
    except (NotebookRefused, RecursionError, ValueError, TypeError):
        return ""


def _summary(findings: list[Finding]) -> str:
    parts = []
    for f in findings[:5]:
        parts.append(f"{f.type} in {f.location()}")
    more = f" and {len(findings) - 5} more" if len(findings) > 5 else ""
    noun = "secret" if len(findings) == 1 else "secrets"
    return f"{len(findings)} {noun} found ({'; '.join(parts)}{more})"
