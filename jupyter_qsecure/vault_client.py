"""Build an authenticated hvac client from :class:`QSecure` settings.

Token, AppRole and JWT auth are supported; secrets read from files are never
logged or put in error messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import hvac
import requests

from .errors import ConfigError, QSecureError

if TYPE_CHECKING:
    from .config import QSecure


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


def session_for(url: str) -> requests.Session:
    """A requests session that takes proxy settings from the environment once, here.

    With ``trust_env`` on, requests re-reads proxies (a walk over ``os.environ``) and
    ``.netrc`` on every request: about 0.2 ms on each call to OpenBao, which the job
    broker makes for every signature. Proxies (honouring ``NO_PROXY``) are resolved for
    ``url`` now; the CA bundle from ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` is kept by
    :func:`verify_from_environment`.
    """
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(url))
    return session


def verify_from_environment() -> bool | str | None:
    """TLS verification as hvac and requests would pick it from the environment.

    ``None`` lets hvac apply ``VAULT_CACERT`` / ``VAULT_CAPATH``; otherwise the CA bundle
    requests would have read (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) is returned.
    """
    if os.environ.get("VAULT_CACERT") or os.environ.get("VAULT_CAPATH"):
        return None
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def client_from_settings(settings: QSecure, *, timeout: float = 10.0) -> hvac.Client:
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


def new_client(settings: QSecure, *, timeout: float = 10.0) -> hvac.Client:
    """An hvac client for ``settings.vault_addr``, not logged in yet (proxies and TLS
    verification from the environment, see :func:`session_for`)."""
    return hvac.Client(
        url=settings.vault_addr,
        namespace=settings.vault_namespace or None,
        timeout=timeout,
        session=session_for(settings.vault_addr),
        verify=verify_from_environment(),
    )


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
