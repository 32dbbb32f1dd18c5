"""Wire the save gate into Jupyter Server: every write of the contents manager.

The gate wraps the contents manager's ``save`` (so saves from the REST API, from
collaboration back ends and from ``copy``/``new`` all pass through it), its
``create_checkpoint`` and ``restore_checkpoint``, and handles chunked uploads
itself: chunks are staged outside the contents root and the assembled file is
scanned before anything reaches the destination. A ``pre_save_hook`` is not
used on purpose: it runs only on the first chunk, and a non-HTTP exception in
it lets the save through.

Staged chunks are encrypted (:class:`ChunkStaging`): an upload that is never
finished leaves no plaintext behind, and its part file is removed at the next
clean-up (at server start, then every few minutes).

Every error inside the gate becomes an ``HTTPError`` (fail closed).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import inspect
import json
import os
import re
import struct
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from jupyter_server.services.contents.handlers import (
    CheckpointsHandler,
    ContentsHandler,
    ModifyCheckpointsHandler,
)
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import PeriodicCallback

from jupyter_qsecure.errors import QSecureError
from jupyter_qsecure.gate import GateOutcome, SaveGate
from jupyter_qsecure.gate.recovery import new_data_key, seal, unseal

from .identity import stable_user

#: The user behind the request that is saving, set by the contents handler below.
current_user: contextvars.ContextVar[str] = contextvars.ContextVar("qsecure_user", default="server")
#: True while the manager saves content this gate has just checked.
_in_gated_save: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "qsecure_gated", default=False
)


#: Shortest written reason a "save anyway" takes (non-space characters).
OVERRIDE_REASON_MIN = 10
OVERRIDE_REASON_MAX = 2000


class SaveRefused(web.HTTPError):
    """422 with the findings (types, locations, hashes; never the secrets). The body is
    the contract in docs/rest-api.md ("The refusal")."""

    def __init__(self, outcome: GateOutcome, *, override_allowed: bool = False) -> None:
        super().__init__(422, _log_safe(outcome.message), reason="Secrets found")
        self.payload = {
            "message": outcome.message,
            "reason": "secrets found",
            "path": outcome.path,
            "findings": outcome.findings_json(),
            "recovery_id": outcome.recovery_id,
            "mode": "block",
            "repeat": outcome.repeat,
            "refused_at": outcome.refused_at,
            "override": {
                "allowed": override_allowed,
                "reason_min_length": OVERRIDE_REASON_MIN,
            },
        }


def _log_safe(message: str) -> str:
    """Tornado %-formats log_message with args; keep a literal '%' from breaking it."""
    return message.replace("%", "%%")


def _fail_closed(exc: BaseException, path: str) -> web.HTTPError:
    if isinstance(exc, web.HTTPError):
        return exc
    if isinstance(exc, QSecureError):
        text = exc.message + (f" ({exc.hint})" if exc.hint else "")
        return web.HTTPError(500, _log_safe(text), reason="Save gate error")
    return web.HTTPError(
        500,
        _log_safe(
            f"the save gate failed on {path} ({type(exc).__name__}); the save was refused to be safe"
        ),
        reason="Save gate error",
    )


class _GateAware:
    """Mixin: record the requesting user for the gate; report refusals as JSON."""

    # JupyterHandler's signature; the API handlers below it take no argument (never redirect).
    async def prepare(self, *, _redirect_to_login: bool = True) -> None:
        await super().prepare()  # type: ignore[misc]
        current_user.set(stable_user(self))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SaveRefused):
            self.set_header("Content-Type", "application/json")  # type: ignore[attr-defined]
            self.finish(json.dumps(exc.payload))  # type: ignore[attr-defined]
            return
        super().write_error(status_code, **kwargs)  # type: ignore[misc]


class GateAwareContentsHandler(_GateAware, ContentsHandler):
    """The contents API handler with the gate's user context and refusal payloads."""


class GateAwareCheckpointsHandler(_GateAware, CheckpointsHandler):
    """Creating checkpoints (the gate refuses to checkpoint a file holding a secret)."""


class GateAwareModifyCheckpointsHandler(_GateAware, ModifyCheckpointsHandler):
    """Restoring checkpoints (the gate refuses to restore one holding a secret)."""


#: An upload with no new chunk for this long is abandoned: its part file is removed.
STAGING_MAX_IDLE_SECONDS = 3600.0
#: How often abandoned part files are looked for.
STAGING_CLEANUP_SECONDS = 300.0
_RECORD_LENGTH = struct.Struct(">I")


@dataclass
class _Upload:
    key: bytes = field(repr=False)
    chunks: int = 0
    last: float = 0.0


class StagingError(Exception):
    """A chunk cannot be added, or the staged file cannot be read back."""


class ChunkStaging:
    """Chunked uploads staged encrypted, one part file per destination path.

    Each chunk is sealed with the recovery copies' cipher (AES-256-GCM, see
    :func:`jupyter_qsecure.gate.recovery.seal`) under a data key made for the upload
    and kept only in this process's memory, with the upload and the chunk's number
    as associated data (chunks cannot be reordered, dropped or mixed between
    uploads). The key is not wrapped by the recovery store's key-encryption key on
    purpose: a part file is only ever read back by the process that received its
    first chunk (Jupyter itself keys uploads by path, in memory), so a key that never
    reaches disk makes an abandoned part unreadable by construction, even before it
    is cleaned up, at no OpenBao round trip per upload.

    Part files the process holds no key for (left by an earlier run, or by a version
    that staged plaintext) can never be completed: :meth:`cleanup` removes them, as
    it removes uploads idle for longer than ``max_idle`` seconds.
    """

    def __init__(self, folder: Path, *, max_idle: float = STAGING_MAX_IDLE_SECONDS) -> None:
        self.folder = folder
        self.max_idle = max_idle
        self._uploads: dict[str, _Upload] = {}

    def part_file(self, path: str) -> Path:
        # Keyed by path, as Jupyter's own chunk handling is (one upload per path at a time).
        key = hashlib.sha256(path.strip("/").encode()).hexdigest()[:32]
        return self.folder / f"{key}.part"

    def add(self, path: str, chunk: int, data: bytes, now: float | None = None) -> int:
        """Stage chunk number ``chunk`` (1 starts an upload); returns the bytes staged so far."""
        part = self.part_file(path)
        if chunk == 1:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            upload = self._uploads[part.stem] = _Upload(new_data_key())
            part.unlink(missing_ok=True)
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        else:
            found = self._uploads.get(part.stem)
            if found is None or not part.exists():
                raise StagingError(
                    f"chunk {chunk} of {path.strip('/')} arrived without chunk 1, or after the "
                    "upload was idle too long and discarded; upload the file again"
                )
            upload = found
        upload.chunks += 1
        upload.last = time.time() if now is None else now
        sealed = seal(upload.key, data, f"{part.stem}:{upload.chunks}".encode())
        with open(part, "ab") as handle:
            handle.write(_RECORD_LENGTH.pack(len(sealed)) + sealed)
        return part.stat().st_size

    def take(self, path: str) -> bytes:
        """The whole staged file, decrypted; the part file and its key are gone afterwards."""
        part = self.part_file(path)
        upload = self._uploads.pop(part.stem, None)
        try:
            blob = part.read_bytes() if upload is not None else b""
        finally:
            part.unlink(missing_ok=True)
        if upload is None:
            raise StagingError(
                f"the upload of {path.strip('/')} has no first chunk; upload the file again"
            )
        chunks: list[bytes] = []
        offset = 0
        try:
            while offset < len(blob):
                (size,) = _RECORD_LENGTH.unpack_from(blob, offset)
                offset += _RECORD_LENGTH.size
                sealed = blob[offset : offset + size]
                offset += size
                associated = f"{part.stem}:{len(chunks) + 1}".encode()
                chunks.append(unseal(upload.key, sealed, associated))
        except (InvalidTag, struct.error, ValueError):
            raise StagingError(
                f"the staged upload of {path.strip('/')} is damaged (another upload of the "
                "same file may have interrupted it); upload the file again"
            ) from None
        if len(chunks) != upload.chunks:
            raise StagingError(
                f"the staged upload of {path.strip('/')} is incomplete; upload the file again"
            )
        return b"".join(chunks)

    def discard(self, path: str) -> None:
        part = self.part_file(path)
        self._uploads.pop(part.stem, None)
        part.unlink(missing_ok=True)

    def cleanup(self, now: float | None = None, *, everything: bool = False) -> int:
        """Remove abandoned part files; returns how many. ``everything``: at server start."""
        now = time.time() if now is None else now
        removed = 0
        for part in self.folder.glob("*.part") if self.folder.is_dir() else ():
            upload = self._uploads.get(part.stem)
            if everything or upload is None or now - upload.last > self.max_idle:
                self._uploads.pop(part.stem, None)
                part.unlink(missing_ok=True)
                removed += 1
        for stem in [s for s in self._uploads if not (self.folder / f"{s}.part").exists()]:
            del self._uploads[stem]
        return removed


class ContentsGate:
    """Installs the gate on one contents manager."""

    def __init__(
        self,
        contents_manager: Any,
        gate: SaveGate,
        staging_dir: Path,
        log: Any,
        *,
        staging_max_idle: float = STAGING_MAX_IDLE_SECONDS,
        override_allowed: bool = False,
    ) -> None:
        self.cm = contents_manager
        self.gate = gate
        self.staging = ChunkStaging(staging_dir, max_idle=staging_max_idle)
        self.log = log
        self.override_allowed = override_allowed
        self._save = contents_manager.save
        self._is_async = inspect.iscoroutinefunction(self._save)
        self._cleanup_timer: PeriodicCallback | None = None

    @property
    def staging_dir(self) -> Path:
        return self.staging.folder

    def install(self) -> None:
        cm = self.cm
        if self._is_async:
            cm.save = self.save_async
        else:
            cm.save = self.save_sync
        self._wrap_checkpoints()
        self._wrap_reads()
        # No upload survives a restart (its key lived in the old process): remove them all.
        self.cleanup_staging(everything=True)
        self._cleanup_timer = PeriodicCallback(self._cleanup_tick, STAGING_CLEANUP_SECONDS * 1000)
        self._cleanup_timer.start()

    def stop(self) -> None:
        if self._cleanup_timer is not None:
            self._cleanup_timer.stop()
            self._cleanup_timer = None

    def _cleanup_tick(self) -> None:
        self.cleanup_staging()

    def cleanup_staging(self, now: float | None = None, *, everything: bool = False) -> int:
        """Remove abandoned chunked uploads (see :meth:`ChunkStaging.cleanup`); never raises."""
        try:
            removed = self.staging.cleanup(now, everything=everything)
        except OSError as exc:
            self.log.error("jupyter-qsecure: cleaning the upload staging folder failed: %s", exc)
            return 0
        if removed:
            self.log.info("jupyter-qsecure: removed %d abandoned chunked upload(s)", removed)
        return removed

    # ---- reading --------------------------------------------------------------------------
    def _wrap_reads(self) -> None:
        """Errors about unreadable notebooks name the problem, never the file's content.

        Every read of the manager (contents GET, copy, trust, nbconvert, downloads) goes
        through ``get``; see :func:`unreadable_notebook_error`.
        """
        cm = self.cm
        get = cm.get
        if inspect.iscoroutinefunction(get):

            async def get_async(path: str, *args: Any, **kwargs: Any) -> Any:
                try:
                    return await get(path, *args, **kwargs)
                except web.HTTPError as exc:
                    raise unreadable_notebook_error(exc, path) from None

            cm.get = get_async
        else:

            def get_sync(path: str, *args: Any, **kwargs: Any) -> Any:
                try:
                    return get(path, *args, **kwargs)
                except web.HTTPError as exc:
                    raise unreadable_notebook_error(exc, path) from None

            cm.get = get_sync

    # ---- saving -------------------------------------------------------------------------
    def _check(self, model: dict[str, Any], path: str) -> GateOutcome:
        """Run the gate on a model; raises an HTTPError unless the save may go ahead."""
        try:
            outcome = self.gate.check_model(model, path.strip("/"), current_user.get(), saving=True)
        except Exception as exc:
            raise _fail_closed(exc, path) from None
        if outcome.action == "block":
            self.log.warning("jupyter-qsecure: %s", outcome.message)
            raise SaveRefused(outcome, override_allowed=self.override_allowed)
        if outcome.action in ("redact", "warn"):
            self.log.warning("jupyter-qsecure: %s", outcome.message)
        return outcome

    @staticmethod
    def _report(result: Any, outcome: GateOutcome) -> Any:
        """Tell the client what a warn/redact save did, in the returned model."""
        if outcome.action in ("redact", "warn") and isinstance(result, dict):
            result = dict(result)
            result["qsecure"] = {
                "mode": outcome.action,
                "message": outcome.message,
                "findings": outcome.findings_json(),
                "recovery_id": outcome.recovery_id,
            }
        return result

    async def save_async(self, model: dict[str, Any], path: str = "") -> Any:
        if model.get("chunk") is not None:
            return await self._save_chunk(model, path)
        outcome = await asyncio.to_thread(self._check, model, path)
        marker = _in_gated_save.set(True)
        try:
            result = await self._save(outcome.model if outcome.model is not None else model, path)
        finally:
            _in_gated_save.reset(marker)
        return self._report(result, outcome)

    def save_sync(self, model: dict[str, Any], path: str = "") -> Any:
        if model.get("chunk") is not None:
            raise web.HTTPError(
                400,
                "chunked uploads need an async contents manager when jupyter-qsecure is enabled",
            )
        outcome = self._check(model, path)
        marker = _in_gated_save.set(True)
        try:
            result = self._save(outcome.model if outcome.model is not None else model, path)
        finally:
            _in_gated_save.reset(marker)
        return self._report(result, outcome)

    async def save_override(
        self, model: dict[str, Any], path: str, user: str, reason: str
    ) -> dict[str, Any]:
        """Save ``model`` at ``path`` although it holds secrets ("save anyway"): the
        caller checked that policy allows it and validated ``reason``. Recorded first
        (``save.overridden``, fail closed), then written by the manager's own save."""
        try:
            outcome = await asyncio.to_thread(
                self.gate.check_override, model, path.strip("/"), user, reason
            )
        except Exception as exc:
            raise _fail_closed(exc, path) from None
        self.log.warning("jupyter-qsecure: %s (by %s)", outcome.message, user)
        marker = _in_gated_save.set(True)
        try:
            result = self._save(model, path)
            if inspect.isawaitable(result):
                result = await result
        finally:
            _in_gated_save.reset(marker)
        saved = {k: v for k, v in dict(result).items() if k != "content"}
        saved["qsecure"] = {
            "mode": "override",
            "message": outcome.message,
            "findings": outcome.findings_json(),
            "ledger_index": outcome.ledger_index,
        }
        return saved

    # ---- chunked uploads ------------------------------------------------------------------
    async def _save_chunk(self, model: dict[str, Any], path: str) -> Any:
        chunk = int(model["chunk"])
        try:
            data = _chunk_bytes(model)
            size = self.staging.add(path, chunk, data)
            if chunk != -1:
                return _staged_model(path, size)
            raw = self.staging.take(path)
            outcome = await asyncio.to_thread(
                self.gate.check_bytes, raw, path.strip("/"), current_user.get(), saving=True
            )
        except StagingError as exc:
            self.staging.discard(path)
            raise web.HTTPError(400, _log_safe(str(exc)), reason="Upload failed") from None
        except web.HTTPError:
            self.staging.discard(path)
            raise
        except Exception as exc:
            self.staging.discard(path)
            raise _fail_closed(exc, path) from None
        if outcome.action == "block":
            self.log.warning("jupyter-qsecure: %s", outcome.message)
            raise SaveRefused(outcome, override_allowed=self.override_allowed)
        content = outcome.content if outcome.content is not None else raw
        whole = {
            "type": "file",
            "format": "base64",
            "content": base64.b64encode(content).decode("ascii"),
        }
        return self._report(await self._save(whole, path), outcome)

    # ---- checkpoints ----------------------------------------------------------------------
    def _wrap_checkpoints(self) -> None:
        """Refuse to checkpoint, or restore, a file holding a secret (block mode only).

        A checkpoint taken by the manager inside a save this gate already checked (the
        first save of a notebook) is not read and scanned again.
        """
        cm = self.cm
        create, restore = cm.create_checkpoint, cm.restore_checkpoint

        def checkpoint_source(checkpoint_id: str, path: str) -> bytes | None:
            locate = getattr(getattr(cm, "checkpoints", None), "checkpoint_path", None)
            source = Path(locate(checkpoint_id, path)) if locate is not None else None
            return source.read_bytes() if source is not None and source.is_file() else None

        def guard_model(model: Any, path: str) -> None:
            if model is not None and model.get("type") != "directory":
                self._refuse_if_secret(self.gate.check_model, model, path, "create a checkpoint of")

        def guard_raw(raw: bytes | None, path: str) -> None:
            if raw is not None:
                self._refuse_if_secret(self.gate.check_bytes, raw, path, "restore a checkpoint of")

        if inspect.iscoroutinefunction(create):

            async def create_checkpoint(path: str) -> Any:
                if self._guarding() and not _in_gated_save.get():
                    model = await self._disk_model_async(path)
                    await asyncio.to_thread(guard_model, model, path)
                return await create(path)

            async def restore_checkpoint(checkpoint_id: str, path: str) -> Any:
                if self._guarding():
                    await asyncio.to_thread(guard_raw, checkpoint_source(checkpoint_id, path), path)
                try:
                    return await restore(checkpoint_id, path)
                except web.HTTPError as exc:
                    raise unreadable_notebook_error(exc, path) from None

        else:

            def create_checkpoint(path: str) -> Any:  # type: ignore[misc]
                if self._guarding() and not _in_gated_save.get():
                    guard_model(self._disk_model_sync(path), path)
                return create(path)

            def restore_checkpoint(checkpoint_id: str, path: str) -> Any:  # type: ignore[misc]
                if self._guarding():
                    guard_raw(checkpoint_source(checkpoint_id, path), path)
                try:
                    return restore(checkpoint_id, path)
                except web.HTTPError as exc:
                    raise unreadable_notebook_error(exc, path) from None

        cm.create_checkpoint = create_checkpoint
        cm.restore_checkpoint = restore_checkpoint

    def _guarding(self) -> bool:
        # Only block mode refuses: warn keeps secrets on purpose, and in redact mode what
        # Jupyter saved is already redacted.
        return bool(self.gate.mode == "block")

    async def _disk_model_async(self, path: str) -> Any:
        try:
            return await self.cm.get(path, content=True)
        except web.HTTPError:
            return None  # nothing to checkpoint; the manager reports it

    def _disk_model_sync(self, path: str) -> Any:
        try:
            return self.cm.get(path, content=True)
        except web.HTTPError:
            return None

    def _refuse_if_secret(self, check: Any, subject: Any, path: str, doing: str) -> None:
        try:
            outcome = check(subject, path.strip("/"), current_user.get())
        except Exception as exc:
            raise _fail_closed(exc, path) from None
        if outcome.action == "block":
            outcome.message = f"Refused to {doing} {path}: " + outcome.message
            raise SaveRefused(outcome, override_allowed=self.override_allowed)


#: The notebook reader's errors (nbformat's, through jupyter_server) that are safe to name.
_NOTEBOOK_ERRORS = {
    "NotJSONError": "it is not JSON",
    "JSONDecodeError": "it is not JSON",
    "UnicodeDecodeError": "it is not UTF-8 text",
    "ValidationError": "it does not follow the notebook format",
    "NBFormatError": "its notebook format version is not supported",
}
_EXCEPTION_REPR = re.compile(r" ([A-Za-z_][\w.]*)\(")


def unreadable_notebook_error(exc: web.HTTPError, path: str) -> web.HTTPError:
    """``exc``, or a clean 400 if it is jupyter_server's "Unreadable Notebook" error.

    jupyter_server reports a notebook it cannot parse as ``Unreadable Notebook: OS_PATH
    repr(error)``, and nbformat's ``NotJSONError`` repeats the first bytes of the file,
    a validation error the offending values: the response and the server log would show
    content the save gate never let through (e.g. a key in a file named ``.ipynb``). The
    replacement names the file by its API path and the kind of problem only.
    """
    message = exc.log_message or ""
    if not message.startswith("Unreadable Notebook"):
        return exc
    found = _EXCEPTION_REPR.search(message)
    kind = found.group(1).rsplit(".", 1)[-1] if found else ""
    problem = _NOTEBOOK_ERRORS.get(kind, f"the notebook reader failed ({kind or 'error'})")
    return web.HTTPError(
        400,
        _log_safe(
            f"{path.strip('/')} is not a readable notebook: {problem}. Open it with the text "
            "editor (Open With > Editor) to repair it, or rename it to drop the .ipynb suffix"
        ),
        reason="Unreadable notebook",
    )


def _chunk_bytes(model: dict[str, Any]) -> bytes:
    content = model.get("content")
    if content is None:
        return b""
    if model.get("format") == "base64":
        return base64.b64decode(content)
    if isinstance(content, dict):
        return json.dumps(content).encode()
    return str(content).encode("utf-8")


def _staged_model(path: str, size: int) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "name": os.path.basename(path),
        "path": path,
        "type": "file",
        "writable": True,
        "created": now,
        "last_modified": now,
        "mimetype": None,
        "content": None,
        "format": None,
        "size": size,
        "hash": None,
        "hash_algorithm": None,
    }


def contents_routes(base_url: str) -> list[tuple[str, type[Any]]]:
    """The server's contents routes, in its own order, with gate-aware handlers."""
    from jupyter_server.base.handlers import path_regex
    from jupyter_server.services.contents.handlers import _checkpoint_id_regex

    def api(pattern: str) -> str:
        return url_path_join(base_url, pattern)

    return [
        (api(rf"/api/contents{path_regex}/checkpoints"), GateAwareCheckpointsHandler),
        (
            api(rf"/api/contents{path_regex}/checkpoints/{_checkpoint_id_regex}"),
            GateAwareModifyCheckpointsHandler,
        ),
        (api(rf"/api/contents{path_regex}/trust"), _trust_handler()),
        (api(rf"/api/contents{path_regex}"), GateAwareContentsHandler),
    ]


def _trust_handler() -> type[Any]:
    from jupyter_server.services.contents.handlers import TrustNotebooksHandler

    return TrustNotebooksHandler
