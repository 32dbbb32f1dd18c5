"""How jupyter-qsecure reaches OpenBao/Vault: connection settings and hvac clients.

:class:`VaultConnection` holds everything about *where* and *how* to connect (address,
namespace, TLS verification, client certificate, proxies, timeout), resolved once from
our settings and the environment. Every hvac client is built from one
(:meth:`VaultConnection.client`) and keeps it (:class:`VaultClient`), so code that needs
the TLS settings again (the credential broker's per-kernel clients, the pooled transport
of :mod:`jupyter_qsecure.vault.transport`) reads them from here, never back out of hvac's
private adapter state.

Token, AppRole and JWT auth are supported (:func:`client_from_settings`); secrets read
from files are never logged or put in error messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hvac
import requests
import urllib3

from ..errors import ConfigError, QSecureError

if TYPE_CHECKING:
    from ..config import QSecure

__all__ = [
    "VaultClient",
    "VaultConnection",
    "client_from_settings",
    "connection_from_settings",
    "connection_of",
    "login_errors",
    "new_client",
    "read_secret_file",
    "verify_from_environment",
]

#: ``verify`` as requests takes it: True, False, or the path of a CA bundle or folder.
Verify = bool | str
#: A client certificate as requests takes it: one file, or (certificate, key) files.
ClientCert = str | tuple[str, str]


def verify_from_environment() -> Verify:
    """TLS verification as the OpenBao/Vault CLI and requests would pick it.

    ``VAULT_CACERT`` wins over ``VAULT_CAPATH`` (as in the Vault CLI), then the bundle
    requests reads (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``); otherwise True.
    """
    for name in ("VAULT_CACERT", "VAULT_CAPATH", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        value = os.environ.get(name)
        if value:
            return value
    return True


def _cert_from_environment() -> ClientCert | None:
    cert = os.environ.get("VAULT_CLIENT_CERT")
    key = os.environ.get("VAULT_CLIENT_KEY")
    if not cert:
        return None
    return (cert, key) if key else cert


@dataclass(frozen=True)
class VaultConnection:
    """Where and how to reach OpenBao/Vault. Holds no token.

    ``proxies`` are resolved for ``addr`` when the connection is made (honouring
    ``NO_PROXY``), so no request walks the environment again; an empty tuple means a
    direct connection.
    """

    addr: str
    namespace: str | None = None
    verify: Verify = True
    cert: ClientCert | None = None
    proxies: tuple[tuple[str, str], ...] = ()
    timeout: float | tuple[float, float] = 10.0
    #: One requests session per connection (and its copies with another timeout):
    #: hvac clients built from it share its connection pool.
    _session: requests.Session = field(
        default_factory=requests.Session, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        session = self._session
        session.trust_env = False  # proxies are resolved once, below; no ~/.netrc
        session.proxies.clear()
        session.proxies.update(dict(self.proxies))

    @classmethod
    def from_environment(
        cls,
        addr: str,
        *,
        namespace: str | None = None,
        timeout: float | tuple[float, float] = 10.0,
    ) -> VaultConnection:
        """A connection to ``addr`` with TLS and proxy settings from the environment."""
        proxies = requests.utils.get_environ_proxies(addr)
        return cls(
            addr=addr,
            namespace=namespace or None,
            verify=verify_from_environment(),
            cert=_cert_from_environment(),
            proxies=tuple(sorted((str(k), str(v)) for k, v in proxies.items() if v)),
            timeout=timeout,
        )

    @classmethod
    def local(cls, addr: str, *, timeout: float = 30.0) -> VaultConnection:
        """A direct connection to a loopback OpenBao (no proxy, no TLS settings)."""
        return cls(addr=addr, timeout=timeout)

    @property
    def session(self) -> requests.Session:
        """The requests session hvac clients of this connection share."""
        return self._session

    @property
    def direct(self) -> bool:
        """True when requests go straight to ``addr`` (no proxy) over http(s)."""
        return not self.proxies and urllib3.util.parse_url(self.addr).scheme in (
            "http",
            "https",
        )

    def with_timeout(self, timeout: float | tuple[float, float]) -> VaultConnection:
        """This connection with another timeout (sharing the session)."""
        return replace(self, timeout=timeout, _session=self._session)

    def client(
        self, token: str | None = None, *, timeout: float | tuple[float, float] | None = None
    ) -> VaultClient:
        """An hvac client on this connection, logged in with ``token`` if given.

        ``token=None`` leaves the client without a token (hvac's fallback to
        ``VAULT_TOKEN`` / ``~/.vault-token`` is not used).
        """
        connection = self if timeout is None else self.with_timeout(timeout)
        return VaultClient(connection, token)


class VaultClient(hvac.Client):  # type: ignore[misc]  # hvac is untyped
    """An ``hvac.Client`` that remembers the :class:`VaultConnection` it was built from."""

    def __init__(self, connection: VaultConnection, token: str | None = None) -> None:
        super().__init__(
            url=connection.addr,
            token=token or "",  # "" rather than None: no fallback to VAULT_TOKEN
            namespace=connection.namespace,
            timeout=connection.timeout,
            session=connection.session,
            verify=connection.verify,
            cert=connection.cert,
        )
        self.connection = connection


def connection_of(client: Any) -> VaultConnection:
    """The connection ``client`` was built with.

    A plain ``hvac.Client`` (not built here) gets a connection to its public ``url`` and
    namespace with default TLS verification: its private settings are not read back, so
    a custom ``verify``/``cert`` is not carried over (verification can only get stricter).
    """
    if isinstance(client, VaultClient):
        return client.connection
    adapter = getattr(client, "adapter", None)
    namespace = getattr(adapter, "namespace", None)
    return VaultConnection(
        addr=str(client.url), namespace=namespace if isinstance(namespace, str) else None
    )


def read_secret_file(path: str, what: str) -> str:
    """The stripped text of a file holding a credential (a token, a secret_id, a JWT);
    an error names the file and what it is for, never its content."""
    try:
        return Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the {what} file {path}: {exc.strerror}",
            hint=f"check the path and permissions of the {what} file",
        ) from exc


def connection_from_settings(settings: QSecure, *, timeout: float = 10.0) -> VaultConnection:
    """The connection to ``settings.vault_addr`` (TLS and proxies from the environment)."""
    return VaultConnection.from_environment(
        settings.vault_addr, namespace=settings.vault_namespace or None, timeout=timeout
    )


def client_from_settings(settings: QSecure, *, timeout: float = 10.0) -> VaultClient:
    """An hvac client authenticated as configured; raises QSecureError with a fix on failure."""
    if not settings.vault_addr:
        raise ConfigError(
            "no OpenBao/Vault address configured",
            hint="set BAO_ADDR or VAULT_ADDR, or c.QSecure.vault_addr",
        )
    client = new_client(settings, timeout=timeout)
    method = settings.vault_auth_method
    with login_errors(
        settings.vault_addr,
        method,
        unreachable_hint="start it (`jupyter qsecure vault up`) or fix BAO_ADDR/VAULT_ADDR",
        refused_hint="check the role and credentials configured for the server",
    ):
        if method == "token":
            if not settings.vault_token and settings.vault_token_file:
                settings.vault_token = read_secret_file(settings.vault_token_file, "token")
            if not settings.vault_token:
                raise ConfigError(
                    "vault_auth_method is 'token' but no token is configured",
                    hint="set BAO_TOKEN or VAULT_TOKEN, or use AppRole/JWT auth",
                )
            client.token = settings.vault_token
        elif method == "approle":
            secret_id = read_secret_file(settings.vault_approle_secret_id_file, "AppRole secret_id")
            client.auth.approle.login(role_id=settings.vault_approle_role_id, secret_id=secret_id)
        elif method == "jwt":
            jwt = read_secret_file(settings.vault_jwt_file, "JWT")
            client.auth.jwt.jwt_login(role=settings.vault_jwt_role, jwt=jwt)
    return client


def new_client(settings: QSecure, *, timeout: float = 10.0) -> VaultClient:
    """An hvac client for ``settings.vault_addr``, not logged in yet."""
    return connection_from_settings(settings, timeout=timeout).client()


@contextmanager
def login_errors(
    addr: str, method: str, *, unreachable_hint: str, refused_hint: str
) -> Iterator[None]:
    """Around a login: transport and OpenBao errors become a :class:`QSecureError` that
    names the address and the auth method, never a credential."""
    try:
        yield
    except requests.exceptions.RequestException as exc:
        raise QSecureError(
            f"cannot reach OpenBao/Vault at {addr} ({type(exc).__name__})",
            hint=unreachable_hint,
        ) from None
    except hvac.exceptions.VaultError as exc:
        raise QSecureError(
            f"OpenBao/Vault refused {method} login at {addr} ({type(exc).__name__})",
            hint=refused_hint,
        ) from None
