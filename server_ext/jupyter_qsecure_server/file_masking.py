"""Every way the server sends file or terminal content to the browser, masked.

A kernel writes injected values to disk (logs, CSVs, JSON, notebooks); these
routes are how they would come back to the browser, and each masks them with the
credential service's masker (the engine: :mod:`jupyter_qsecure.vault.exposure`):

``GET /api/contents/PATH``
    the model, any type and format (:func:`mask_model`); other methods unchanged.
``GET|HEAD /files/PATH`` (also ``?download=1``)
    streamed from disk through a :class:`FileMasker` in chunks, so a large file is
    never read whole. The body's length changes (placeholders), so a masked
    response has no ``Content-Length``, ``Accept-Ranges`` or ``Last-Modified``,
    ignores ``Range`` and conditional headers (a full 200) and is ``no-store``.
``GET /nbconvert/FORMAT/PATH``
    the notebook is masked before export and the exported text again after.
``/terminals/websocket/NAME``
    the terminal's output through :class:`TerminalMasking` (a split value is
    held back until the next output or the user's next message; never a timer).

A file whose content held a value is recorded in the ledger once per version
(:class:`ExposureLog`). Without any injected value every route behaves exactly as
the server's own. The routes are registered ahead of the server's (see
:func:`file_routes` and :func:`check_routes`); a configuration in which another
handler would serve one of them stops the extension (fail closed).
"""

from __future__ import annotations

import asyncio
import functools
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import path_regex
from jupyter_server.nbconvert.handlers import NbconvertFileHandler
from jupyter_server.services.contents.handlers import ContentsHandler
from jupyter_server.utils import url_path_join
from tornado import httputil, iostream, web

from jupyter_qsecure.vault.exposure import (
    CHUNK_SIZE,
    ExposureLog,
    FileMasker,
    TerminalMasking,
    mask_model,
)
from jupyter_qsecure.vault.masking import Masker

from .credentials import CredentialService
from .identity import stable_user

TERMINAL_ROUTE = r"/terminals/websocket/(\w+)"
FILES_ROUTE = r"/files/(.*)"
NBCONVERT_ROUTE = rf"/nbconvert/(?P<format>\w+){path_regex}"


# ---- shared by the handlers ---------------------------------------------------------------
@dataclass(frozen=True)
class Masking:
    """What the masked handlers work with, handed to them as the route kwarg ``masking``."""

    #: The credential service (its current masker); None without injected credentials.
    credentials: CredentialService | None
    #: Where a file that held a value is recorded.
    exposures: ExposureLog | None

    def masker(self) -> Masker | None:
        return self.credentials.masker() if self.credentials is not None else None


class _Masking:
    """Mixin: the server's current masker, and recording what a file held.

    Its ``initialize`` takes the ``masking`` route kwarg and hands the others to the
    wrapped Jupyter handler's ``initialize``.
    """

    via = "files"
    _masking: Masking

    def initialize(self, *, masking: Masking, **kwargs: Any) -> None:
        self._masking = masking
        super().initialize(**kwargs)  # type: ignore[misc]

    def _masker(self) -> Masker | None:
        return self._masking.masker()

    def _user(self) -> str:
        return stable_user(self)

    async def _note(
        self, path: str, modified: Any, size: int | None, names: set[str], masker: Masker
    ) -> None:
        """Record that ``path`` held ``names``; a ledger failure is logged, not raised."""
        log = self._masking.exposures
        if log is None or not names:
            return
        try:
            await asyncio.to_thread(
                log.record,
                path,
                modified,
                size,
                names,
                via=self.via,
                user=self._user(),
                masker=masker,
            )
        except Exception as exc:  # the body is masked already; the audit note is what failed
            self.log.error(  # type: ignore[attr-defined]
                "jupyter-qsecure: could not record that a file held an injected value: %s",
                type(exc).__name__,
            )


class _MaskedReads:
    """The contents manager as one GET request sees it: ``get`` returns masked models."""

    def __init__(self, manager: Any, masker: Masker, handler: _Masking) -> None:
        self._manager = manager
        self._masker = masker
        self._handler = handler

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    async def get(self, path: str, *args: Any, **kwargs: Any) -> Any:
        model = await ensure_async(self._manager.get(path, *args, **kwargs))
        if not isinstance(model, dict):
            return model
        masked, names = await asyncio.to_thread(mask_model, model, self._masker)
        if names:
            await self._handler._note(
                str(model.get("path", path)),
                model.get("last_modified"),
                model.get("size"),
                names,
                self._masker,
            )
        return masked


class _MaskedContentsManager(_Masking):
    """Mixin for handlers that read through ``self.contents_manager``: reads are masked."""

    @property
    def contents_manager(self) -> Any:
        manager = self.settings["contents_manager"]  # type: ignore[attr-defined]
        if self.request.method not in ("GET", "HEAD"):  # type: ignore[attr-defined]
            return manager
        masker = self._masker()
        return manager if masker is None else _MaskedReads(manager, masker, self)


# ---- /api/contents ------------------------------------------------------------------------
def masked_contents_routes(
    routes: list[tuple[Any, ...]], masking: Masking
) -> list[tuple[Any, ...]]:
    """The contents routes with each ``ContentsHandler`` class given masked reads."""
    out = []
    for pattern, handler, *rest in routes:
        if isinstance(handler, type) and issubclass(handler, ContentsHandler):
            handler = type(
                "Masked" + handler.__name__,
                (_MaskedContentsManager, handler),
                {"via": "contents", "__doc__": handler.__doc__},
            )
            kwargs = rest[0] if rest else {}
            rest = [{**kwargs, "masking": masking}, *rest[1:]]
        out.append((pattern, handler, *rest))
    return out


# ---- /files -------------------------------------------------------------------------------
class _MaskedStaticFiles(_Masking):
    """Mixin for a ``StaticFileHandler`` serving /files: the file streamed, masked."""

    _masked_response = False

    @web.authenticated
    @authorized
    async def head(self, path: str) -> None:
        # Once, awaited: jupyter_server's FilesHandler.head calls get() twice and awaits
        # only the second (the first coroutine never runs and is collected unawaited).
        pending = self.get(path, include_body=False)
        if pending is not None:
            await pending

    def compute_etag(self) -> str | None:
        # A masked body is not the file on disk, so the file's hash does not tag it; and
        # FilesHandler (it reads through the contents manager) has no file to hash:
        # tornado's StaticFileHandler.compute_etag would fail on a HEAD there.
        if self._masked_response or getattr(self, "absolute_path", None) is None:
            return None
        return super().compute_etag()  # type: ignore[misc,no-any-return]

    @web.authenticated
    @authorized
    async def get(self, path: str, include_body: bool = True) -> None:
        masker = self._masker()
        if masker is None:
            await super().get(path, include_body=include_body)  # type: ignore[misc]
            return
        self._masked_response = True
        handler: Any = self
        handler.check_xsrf_cookie()
        # As the server's AuthenticatedFileHandler: notebooks and ?download=1 as attachments.
        if os.path.splitext(path)[1] == ".ipynb" or handler.get_argument("download", None):
            handler.set_attachment_header(path.rsplit("/", 1)[-1])
        handler.path = handler.parse_url_path(path)
        absolute = handler.get_absolute_path(handler.root, handler.path)
        handler.absolute_path = handler.validate_absolute_path(handler.root, absolute)
        if handler.absolute_path is None:
            return
        handler.modified = handler.get_modified_time()
        handler.set_headers()
        for name in ("Accept-Ranges", "Last-Modified", "Etag", "Expires", "Content-Length"):
            handler.clear_header(name)
        handler.set_header("Cache-Control", "no-store")
        if not include_body:
            return
        stat = os.stat(handler.absolute_path)
        files = FileMasker(masker)
        with open(handler.absolute_path, "rb") as source:
            while chunk := source.read(CHUNK_SIZE):
                out = files.feed(chunk)
                if out:
                    try:
                        handler.write(out)
                        await handler.flush()
                    except iostream.StreamClosedError:
                        return
        handler.write(files.finish())
        await self._note(
            path.strip("/"),
            datetime.fromtimestamp(stat.st_mtime, timezone.utc),
            stat.st_size,
            files.names,
            masker,
        )


def _files_handler(contents_manager: Any) -> type[Any]:
    """The server's /files handler class for this contents manager, masked."""
    base = contents_manager.files_handler_class
    if issubclass(base, web.StaticFileHandler):
        mixin: type[_Masking] = _MaskedStaticFiles
    else:  # e.g. jupyter_server's FilesHandler: it reads through the contents manager
        mixin = _MaskedContentsManager
    return type("Masked" + base.__name__, (mixin, base), {"via": "files"})


# ---- /nbconvert ---------------------------------------------------------------------------
class MaskedNbconvertFileHandler(_MaskedContentsManager, NbconvertFileHandler):
    """nbconvert of a notebook on disk: masked before export, and the output after."""

    via = "nbconvert"

    def finish(self, chunk: Any = None) -> Any:
        if isinstance(chunk, str):
            masker = self._masker()
            if masker is not None:
                chunk = masker.mask(chunk)
        return super().finish(chunk)


# ---- terminals ----------------------------------------------------------------------------
@functools.cache
def masked_term_socket() -> type[Any] | None:
    """The terminals websocket handler with masked output (None: terminals not installed)."""
    try:  # a dependency of jupyter_server 2, but an installation may lack it
        from jupyter_server_terminals.handlers import TermSocket
    except ImportError:  # pragma: no cover - depends on the installation
        return None

    class MaskedTermSocket(TermSocket):
        """A terminal websocket whose output is masked (a split value is held back)."""

        def initialize(  # type: ignore[override]
            self, name: str, term_manager: Any = None, *, masking: Masking, **kwargs: Any
        ) -> None:
            # The terminals extension loads after this one: find its manager per request.
            manager: Any = term_manager or self.settings.get("terminal_manager")
            self._available = manager is not None
            if self._available:
                super().initialize(name, manager, **kwargs)
            self._masking = TerminalMasking(masking.masker)

        @ws_authenticated
        async def get(self, *args: Any, **kwargs: Any) -> None:
            if not self._available:
                raise web.HTTPError(404, "terminals are not available")
            await super().get(*args, **kwargs)

        def on_pty_read(self, text: str) -> None:
            shown = self._masking.output(text)
            if shown:
                super().on_pty_read(shown)

        async def on_message(self, message: Any) -> None:  # type: ignore[override]
            self._release()  # the user acts on what is on screen: show all of it first
            await super().on_message(message)

        def on_pty_died(self) -> None:
            self._release()
            super().on_pty_died()

        def _release(self) -> None:
            held = self._masking.release()
            if held:
                super().on_pty_read(held)

    return MaskedTermSocket


def _terminals(server: Any) -> type[Any] | None:
    """The masked terminal handler if this server serves terminals."""
    return masked_term_socket() if getattr(server, "terminals_enabled", False) else None


# ---- routes -------------------------------------------------------------------------------
def file_routes(web_app: Any, server: Any, masking: Masking) -> list[tuple[Any, ...]]:
    """Masked /files, /nbconvert and terminal websocket routes for ``web_app``."""
    base_url = web_app.settings["base_url"]
    manager = web_app.settings["contents_manager"]
    routes: list[tuple[Any, ...]] = [
        (
            url_path_join(base_url, FILES_ROUTE),
            _files_handler(manager),
            {**manager.files_handler_params, "masking": masking},
        ),
        (
            url_path_join(base_url, NBCONVERT_ROUTE),
            MaskedNbconvertFileHandler,
            {"masking": masking},
        ),
    ]
    terminals = _terminals(server)
    if terminals is not None:
        routes.append(
            (
                url_path_join(base_url, TERMINAL_ROUTE),
                terminals,
                # name: the extension whose settings it reads
                {"name": "jupyter_server_terminals", "masking": masking},
            )
        )
    return routes


def check_routes(web_app: Any, server: Any) -> None:
    """Fail closed unless the masked handlers serve every route that sends file content."""
    base_url = web_app.settings["base_url"]
    probes: list[tuple[str, type[Any]]] = [
        ("api/contents/probe.txt", _MaskedContentsManager),
        ("files/probe.txt", _Masking),
        ("nbconvert/html/probe.ipynb", MaskedNbconvertFileHandler),
    ]
    terminals = _terminals(server)
    if terminals is not None:
        probes.append(("terminals/websocket/1", terminals))
    for probe, expected in probes:
        request = httputil.HTTPServerRequest(
            start_line=httputil.RequestStartLine("GET", url_path_join(base_url, probe), "HTTP/1.1"),
            headers=httputil.HTTPHeaders({"Host": "localhost"}),
        )
        found = getattr(web_app.find_handler(request), "handler_class", None)
        if found is None or not issubclass(found, expected):
            raise RuntimeError(
                f"jupyter-qsecure masks injected values in what /{probe.split('/')[0]}/ "
                f"sends, but {getattr(found, '__name__', found)} serves that route; "
                "disable the extension that registers it or disable jupyter_qsecure_server"
            )
