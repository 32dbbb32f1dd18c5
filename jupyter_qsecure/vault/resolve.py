"""Which OpenBao a command talks to, found as the server finds it.

``jupyter qsecure lab`` gives the Jupyter server the embedded OpenBao's address and its
server token; a command run later in a plain terminal has neither in its environment.
So, for the command line:

- ``vault_addr`` (``BAO_ADDR``/``VAULT_ADDR``, ``c.QSecure.vault_addr``) naming another
  server: that server, authenticated as configured (``BAO_TOKEN``, AppRole, JWT);
- otherwise the embedded OpenBao under ``<data_dir>/openbao``, started and unsealed if
  needed (``vault up``), with its admin token, read from its 0600 file and never shown.

The tokens never reach an output, an argument list or an environment variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .embedded import EmbeddedOpenBao

if TYPE_CHECKING:
    from ..config import QSecure

__all__ = ["OpenBaoTarget", "cli_openbao", "embedded_from_settings", "external_vault_addr"]

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def embedded_from_settings(settings: QSecure) -> EmbeddedOpenBao:
    return EmbeddedOpenBao(settings.data_path)


def _host_port(addr: str) -> tuple[str, int | None]:
    parts = urlsplit(addr if "://" in addr else f"http://{addr}")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return ("127.0.0.1" if host in _LOCAL_HOSTS else host), port


def external_vault_addr(settings: QSecure, bao: EmbeddedOpenBao) -> str | None:
    """``vault_addr`` when it names a server other than the embedded one, else None.

    ``BAO_ADDR`` set to the embedded server's own address (as ``vault up``
    suggests) still counts as the embedded server.
    """
    configured = str(settings.vault_addr or "").strip()
    if not configured:
        return None
    embedded = bao.addr
    if embedded and _host_port(configured) == _host_port(embedded):
        return None
    return configured


@dataclass(frozen=True)
class OpenBaoTarget:
    """An authenticated client and where it points (no token in ``repr``)."""

    client: Any
    addr: str
    embedded: bool
    #: The embedded OpenBao was not running and this call started it.
    started: bool = False

    def describe(self) -> str:
        return (
            f"the embedded OpenBao at {self.addr}" if self.embedded else f"OpenBao at {self.addr}"
        )

    def started_note(self) -> str | None:
        """What to tell the user when this command started the embedded OpenBao."""
        if not self.started:
            return None
        return (
            f"note: started the embedded OpenBao at {self.addr} (it keeps running; "
            "`jupyter qsecure vault down` stops it)"
        )


def cli_openbao(settings: QSecure) -> OpenBaoTarget:
    """The OpenBao a command run from a terminal should use (see the module docstring).

    Raises :class:`~jupyter_qsecure.errors.QSecureError` with a fix when there is none
    (no ``bao`` binary for the embedded one, a configured server that refuses the login).
    """
    from .client import client_from_settings

    bao = embedded_from_settings(settings)
    external = external_vault_addr(settings, bao)
    if external:
        return OpenBaoTarget(client_from_settings(settings), external, embedded=False)
    if settings.vault_addr and (settings.vault_token or settings.vault_token_file):
        # BAO_ADDR names the embedded server and a token was given: use that token.
        return OpenBaoTarget(client_from_settings(settings), str(settings.vault_addr), True)
    was_running = bao.status().running
    status = bao.up(settings.environment)
    assert status.addr is not None
    return OpenBaoTarget(bao.admin_client(), status.addr, embedded=True, started=not was_running)
