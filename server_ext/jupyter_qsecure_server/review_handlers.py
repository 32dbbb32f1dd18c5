"""REST routes of review and promotion (the JupyterLab review panel).

``GET review/status?path=``, ``POST review/approve``, ``POST promote``: a thin layer over
the functions ``jupyter qsecure review status|approve`` and ``promote`` call
(:func:`jupyter_qsecure.promote.review.valid_approvals`,
:func:`jupyter_qsecure.promote.approve.approve_notebook`,
:func:`jupyter_qsecure.promote.promote.promote`), with the server's settings, for files
under the contents root. The contract is ``docs/rest-api.md``.

Who approves: the Jupyter user (:func:`~.identity.stable_user`, as every user route
names people). On the embedded default (no OpenBao, or the embedded OpenBao of
``jupyter qsecure lab``) the approval is signed with the local reviewer key, as
``review approve`` run from a terminal there; with an external OpenBao it needs an
approver's own token, which the server does not hold (design: the server's token may
verify approvals, never sign them), so the route refuses and says to approve from a
terminal. Promotion is slow (``uv`` locks the dependencies): it runs in a worker thread,
one at a time per server.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path, PurePosixPath
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from jupyter_qsecure.errors import LedgerError, QSecureError
from jupyter_qsecure.promote.errors import NotebookRefused, SecretInNotebook
from jupyter_qsecure.promote.lock import LockError
from jupyter_qsecure.promote.pins import PinsError
from jupyter_qsecure.promote.promote import (
    ENVELOPE_NAME,
    NotApproved,
    NotPython,
    PromotionRefused,
    SecretFound,
)
from jupyter_qsecure.promote.review import ReviewError, SelfApprovalRefused
from jupyter_qsecure.promote.translate import CellRefused
from jupyter_qsecure.vault.resolve import embedded_from_settings, external_vault_addr

from .routes import ApiError, QSecureHandler

__all__ = ["review_routes"]

#: Default output folder of a promotion, beside the notebook: ``promoted/STEM``.
PROMOTED_DIR = "promoted"
#: How many numbered alternatives (``STEM-2``…) the default output folder may take.
MAX_DEFAULT_DIRS = 1000


class RefusalError(ApiError):
    """An :class:`ApiError` with fields beyond ``error``/``message``/``hint`` (``cell``…)."""

    def __init__(
        self, status: int, code: str, message: str, hint: str | None, **extra: Any
    ) -> None:
        super().__init__(status, code, message, hint)
        self.extra = extra


class ReviewHandler(QSecureHandler):
    """Base of the review routes: contents paths and errors of the core."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, RefusalError):
            body: dict[str, Any] = {"error": exc.code, "message": exc.message}
            if exc.hint:
                body["hint"] = exc.hint
            body.update(exc.extra)
            self.send(body, status=status_code)
            return
        super().write_error(status_code, **kwargs)

    @property
    def root(self) -> Path:
        root = getattr(self.contents_manager, "root_dir", None)
        if not isinstance(root, str) or not root:
            raise ApiError(
                501,
                "not_supported",
                "review and promotion need a contents manager with files on disk "
                "(ContentsManager.root_dir)",
            )
        return Path(root).resolve()

    def local_path(self, api_path: Any, field: str) -> tuple[str, Path]:
        """``api_path`` (relative to the contents root) as ``(clean api path, OS path)``.

        422 for a path that is not relative or climbs with ``..``; 404 for one that leads
        outside the root (a symbolic link) or to a hidden file the server does not serve.
        """
        if not isinstance(api_path, str) or not api_path.strip("/ "):
            raise ApiError(
                422, "invalid", f'"{field}" must be a path relative to the server\'s root'
            )
        if "\\" in api_path or "\0" in api_path:
            raise ApiError(422, "invalid", f'"{field}" may not hold a backslash or a NUL')
        parts = PurePosixPath(api_path.strip("/")).parts
        if any(part in ("..", ".") for part in parts):
            raise ApiError(
                422,
                "invalid",
                f'"{field}" must be relative to the server\'s root, without "." or ".."',
            )
        clean = "/".join(parts)
        root = self.root
        target = root.joinpath(*parts).resolve()
        if target != root and root not in target.parents:
            raise ApiError(404, "not_found", f"{clean} is not under the server's root")
        manager = self.contents_manager
        if not getattr(manager, "allow_hidden", True) and any(p.startswith(".") for p in parts):
            raise ApiError(404, "not_found", f"{clean} is hidden (ContentsManager.allow_hidden)")
        return clean, target

    def notebook(self, api_path: Any) -> tuple[str, Path]:
        clean, path = self.local_path(api_path, "path")
        if not clean.endswith(".ipynb"):
            raise ApiError(422, "invalid", f"{clean} is not a notebook (.ipynb)")
        if not path.is_file():
            raise ApiError(404, "not_found", f"no notebook {clean}")
        return clean, path

    def api_path_of(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def refused(self, exc: QSecureError, notebook: Path, api_path: str) -> ApiError:
        """The core's refusal as an answer of the contract (the same words as the CLI,
        with the server's folders replaced by contents paths)."""
        message = exc.message.replace(str(notebook), api_path).replace(str(self.root) + "/", "")
        hint = exc.hint
        if isinstance(exc, CellRefused):
            return RefusalError(422, "untranslatable", message, hint, cell=exc.cell, line=exc.line)
        if isinstance(exc, NotApproved):
            return RefusalError(409, "not_approved", message, hint, cells=list(exc.cells))
        if isinstance(exc, SecretFound):
            return RefusalError(409, "secret_found", message, hint, cell=exc.cell, line=exc.line)
        if isinstance(exc, SecretInNotebook):
            return ApiError(409, "secret_found", message, hint)
        if isinstance(exc, SelfApprovalRefused):
            return ApiError(403, "self_approval", message, hint)
        if isinstance(exc, ReviewError):
            return ApiError(403, "forbidden", message, hint)
        if isinstance(exc, NotPython | NotebookRefused):
            return ApiError(422, "invalid_notebook", message, hint)
        if isinstance(exc, PinsError | LockError):
            return ApiError(422, "cannot_lock", message, hint)
        if isinstance(exc, PromotionRefused):
            return ApiError(409, "conflict", message, hint)
        if isinstance(exc, LedgerError):
            return ApiError(
                503,
                "ledger_unavailable",
                message,
                "check the ledger (`jupyter qsecure audit verify`) and the server log",
            )
        self.log.error("jupyter-qsecure: review/promotion failed: %s", type(exc).__name__)
        return ApiError(500, "error", message, hint)


def review_status(check: Any, api_path: str) -> dict[str, Any]:
    """``ApprovalCheck.to_json`` (``review status --json``) with the contents path."""
    data: dict[str, Any] = check.to_json()
    data["notebook"] = api_path
    return data


class ReviewStatusHandler(ReviewHandler):
    """GET /qsecure/api/review/status?path=NOTEBOOK: approved, unapproved or changed."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        from jupyter_qsecure.promote.review import valid_approvals

        api_path, path = self.notebook(self.get_argument("path", ""))
        settings = self.qsecure
        try:
            check = await asyncio.to_thread(
                valid_approvals, path, settings.environment, settings=settings
            )
        except QSecureError as exc:
            raise self.refused(exc, path, api_path) from None
        self.send(review_status(check, api_path))


class ReviewApproveHandler(ReviewHandler):
    """POST /qsecure/api/review/approve {path, note?}: sign an approval as the Jupyter user."""

    def identity(self) -> Any:
        """(signer, reviewer) as ``review approve`` has them (see the module docstring)."""
        from jupyter_qsecure.promote.approve import (
            check_reviewer_name,
            local_reviewer_key_file,
            reviewer_identity,
        )
        from jupyter_qsecure.promote.review import Reviewer
        from jupyter_qsecure.signing.signers import Ed25519FileSigner

        settings = self.qsecure
        if settings.vault_addr and external_vault_addr(settings, embedded_from_settings(settings)):
            # An approver's own token signs there; the server's token may not (fails closed).
            try:
                return reviewer_identity(settings, settings.environment)
            except ReviewError as exc:
                raise ReviewError(
                    f"this server cannot sign approvals with OpenBao at {settings.vault_addr} "
                    f"({exc.message})",
                    hint="approve from your own terminal, logged in to OpenBao as an "
                    "approver: `jupyter qsecure review approve NOTEBOOK`",
                ) from None
        signer = Ed25519FileSigner(local_reviewer_key_file(settings))
        return signer, Reviewer(name=check_reviewer_name(self.user), source="local")

    def approve(self, path: Path, note: str) -> Any:
        from jupyter_qsecure.promote.approve import approve_notebook

        return approve_notebook(path, settings=self.qsecure, note=note, identity=self.identity())

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        api_path, path = self.notebook(body.get("path"))
        note = body.get("note", "")
        if not isinstance(note, str) or len(note) > 2000:
            raise ApiError(422, "invalid", '"note" must be a string of at most 2000 characters')
        try:
            result = await asyncio.to_thread(self.approve, path, note)
        except QSecureError as exc:
            raise self.refused(exc, path, api_path) from None
        approval = result.approval
        self.send(
            {
                "notebook": api_path,
                "digest": approval.digest,
                "environment": approval.environment,
                "reviewer": approval.reviewer.name,
                "source": approval.reviewer.source,
                "key_id": approval.keyid,
                "note": approval.note,
                "approved_at": approval.approved_at,
                "position": result.position,
                "ledger_index": result.ledger_index,
                "warnings": list(result.warnings),
                "review": review_status(result.check, api_path),
            }
        )


class PromoteHandler(ReviewHandler):
    """POST /qsecure/api/promote {path, out_dir?}: the approved notebook as a signed script."""

    def out_dir(self, requested: Any, notebook_api_path: str) -> tuple[str, Path]:
        if requested is not None:
            clean, out = self.local_path(requested, "out_dir")
            if out == self.root:
                raise ApiError(422, "invalid", '"out_dir" must be a folder under the root')
            return clean, out
        parent = PurePosixPath(notebook_api_path).parent
        stem = PurePosixPath(notebook_api_path).stem
        for n in range(1, MAX_DEFAULT_DIRS + 1):
            name = stem if n == 1 else f"{stem}-{n}"
            candidate = (parent / PROMOTED_DIR / name).as_posix().removeprefix("./")
            clean, out = self.local_path(candidate, "out_dir")
            if not out.exists() or (out.is_dir() and not any(out.iterdir())):
                return clean, out
        raise ApiError(
            409,
            "conflict",
            f"{PROMOTED_DIR}/{stem} and {MAX_DEFAULT_DIRS - 1} numbered folders beside it exist",
            hint='name a new folder in "out_dir"',
        )

    def promote(self, path: Path, out: Path) -> Any:
        from jupyter_qsecure.promote.promote import promote

        return promote(
            path,
            out,
            settings=self.qsecure,
            ledger=self.ledger,
            promoter_name=self.user,
        )

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        api_path, path = self.notebook(body.get("path"))
        out_api, out = self.out_dir(body.get("out_dir"), api_path)
        lock = self.services.promote_lock
        async with lock:  # one at a time: locking runs a resolver (two cores, many users)
            try:
                result = await asyncio.to_thread(self.promote, path, out)
            except QSecureError as exc:
                raise self.refused(exc, path, api_path) from None
        digests = {
            subject["name"]: subject["digest"]["sha256"] for subject in result.statement["subject"]
        }
        envelope = result.envelope.read_bytes()
        names = sorted(p.name for p in result.out_dir.iterdir())
        build = result.statement["predicate"]["buildDefinition"]["externalParameters"]
        self.send(
            {
                "notebook": api_path,
                "out_dir": out_api,
                "files": [f"{out_api}/{name}" for name in names],
                "script": f"{out_api}/{result.script.name}",
                "digests": digests,
                "manifest": {
                    "path": f"{out_api}/{ENVELOPE_NAME}",
                    "sha256": hashlib.sha256(envelope).hexdigest(),
                },
                "environment": build["environment"],
                "approvers": [a["approver"] for a in build["approvals"]],
                "promoter": self.user,
                "ledger_index": result.ledger_index,
            }
        )


def review_routes(api: str) -> list[tuple[str, type[ReviewHandler]]]:
    """The routes, under ``api`` (``{base_url}qsecure/api``)."""
    return [
        (url_path_join(api, "review", "status"), ReviewStatusHandler),
        (url_path_join(api, "review", "approve"), ReviewApproveHandler),
        (url_path_join(api, "promote"), PromoteHandler),
    ]
