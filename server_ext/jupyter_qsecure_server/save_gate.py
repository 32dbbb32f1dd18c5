"""Wire the save gate into Jupyter Server: every write of the contents manager.

The gate wraps the contents manager's ``save`` (so saves from the REST API, from
collaboration back ends and from ``copy``/``new`` all pass through it), its
``create_checkpoint`` and ``restore_checkpoint``, and handles chunked uploads
itself: chunks are staged outside the contents root and the assembled file is
scanned before anything reaches the destination. A ``pre_save_hook`` is not
used on purpose: it runs only on the first chunk, and a non-HTTP exception in
it lets the save through.

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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jupyter_server.services.contents.handlers import (
    CheckpointsHandler,
    ContentsHandler,
    ModifyCheckpointsHandler,
)
from jupyter_server.utils import url_path_join
from tornado import web

from jupyter_qsecure.errors import QSecureError
from jupyter_qsecure.gate import GateOutcome, SaveGate

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

    async def prepare(self) -> None:
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


class ContentsGate:
    """Installs the gate on one contents manager."""

    def __init__(
        self,
        contents_manager: Any,
        gate: SaveGate,
        staging_dir: Path,
        log: Any,
        *,
        override_allowed: bool = False,
    ) -> None:
        self.cm = contents_manager
        self.gate = gate
        self.staging_dir = staging_dir
        self.log = log
        self.override_allowed = override_allowed
        self._save = contents_manager.save
        self._is_async = inspect.iscoroutinefunction(self._save)

    def install(self) -> None:
        cm = self.cm
        if self._is_async:
            cm.save = self.save_async
        else:
            cm.save = self.save_sync
        self._wrap_checkpoints()

    # ---- saving -------------------------------------------------------------------------
    def _check(self, model: dict[str, Any], path: str) -> GateOutcome:
        """Run the gate on a model; raises an HTTPError unless the save may go ahead."""
        try:
            outcome = self.gate.check_model(model, path.strip("/"), current_user.get())
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
    def _staging_file(self, path: str) -> Path:
        # Keyed by path, as Jupyter's own chunk handling is (one upload per path at a time).
        key = hashlib.sha256(path.strip("/").encode()).hexdigest()[:32]
        return self.staging_dir / f"{key}.part"

    async def _save_chunk(self, model: dict[str, Any], path: str) -> Any:
        chunk = int(model["chunk"])
        staging = self._staging_file(path)
        try:
            data = _chunk_bytes(model)
            self.staging_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            mode = "wb" if chunk == 1 else "ab"
            if chunk != 1 and not staging.exists():
                raise web.HTTPError(400, "chunk %s of %s arrived without chunk 1", chunk, path)
            with open(staging, mode) as handle:
                handle.write(data)
            if chunk != -1:
                return _staged_model(path, staging.stat().st_size)
            raw = staging.read_bytes()
            outcome = await asyncio.to_thread(
                self.gate.check_bytes, raw, path.strip("/"), current_user.get()
            )
        except web.HTTPError:
            staging.unlink(missing_ok=True)
            raise
        except Exception as exc:
            staging.unlink(missing_ok=True)
            raise _fail_closed(exc, path) from None
        staging.unlink(missing_ok=True)
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
                return await restore(checkpoint_id, path)

        else:

            def create_checkpoint(path: str) -> Any:  # type: ignore[misc]
                if self._guarding() and not _in_gated_save.get():
                    guard_model(self._disk_model_sync(path), path)
                return create(path)

            def restore_checkpoint(checkpoint_id: str, path: str) -> Any:  # type: ignore[misc]
                if self._guarding():
                    guard_raw(checkpoint_source(checkpoint_id, path), path)
                return restore(checkpoint_id, path)

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
