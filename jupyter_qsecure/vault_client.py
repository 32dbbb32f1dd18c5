"""Build an authenticated hvac client from :class:`QSecure` settings.

Token, AppRole and JWT auth are supported; secrets read from files are never
logged or put in error messages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import hvac
import requests

from .errors import ConfigError, QSecureError

if TYPE_CHECKING:
    from .config import QSecure


def _read_secret_file(path: str, what: str) -> str:
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
    client = hvac.Client(
        url=settings.vault_addr,
        namespace=settings.vault_namespace or None,
        timeout=timeout,
        session=session_for(settings.vault_addr),
        verify=verify_from_environment(),
    )
    method = settings.vault_auth_method
    try:
        if method == "token":
            if not settings.vault_token and settings.vault_token_file:
                settings.vault_token = _read_secret_file(settings.vault_token_file, "token")
            if not settings.vault_token:
                raise ConfigError(
                    "vault_auth_method is 'token' but no token is configured",
                    hint="set BAO_TOKEN or VAULT_TOKEN, or use AppRole/JWT auth",
                )
            client.token = settings.vault_token
        elif method == "approle":
            secret_id = _read_secret_file(
                settings.vault_approle_secret_id_file, "AppRole secret_id"
            )
            client.auth.approle.login(role_id=settings.vault_approle_role_id, secret_id=secret_id)
        elif method == "jwt":
            jwt = _read_secret_file(settings.vault_jwt_file, "JWT")
            client.auth.jwt.jwt_login(role=settings.vault_jwt_role, jwt=jwt)
    except requests.exceptions.RequestException as exc:
        raise QSecureError(
            f"cannot reach OpenBao/Vault at {settings.vault_addr} ({type(exc).__name__})",
            hint="start it (`jupyter qsecure vault up`) or fix BAO_ADDR/VAULT_ADDR",
        ) from None
    except hvac.exceptions.VaultError as exc:
        raise QSecureError(
            f"OpenBao/Vault refused {method} login at {settings.vault_addr} ({type(exc).__name__})",
            hint="check the role and credentials configured for the server",
        ) from None
    return client
