"""Read the short-lived credentials of the current cell execution.

In the "Python 3 (qsecure)" kernel::

    from jupyter_qsecure import secrets

    key = secrets.get("openai")  # a KV value: str
    db = secrets.get("warehouse")  # dynamic database credentials: {"username", "password"}
    secrets.names()  # the names configured for this kernel
    secrets.identity()  # who the credentials belong to (user, accessor, policies, ...)
    secrets.token()  # this kernel's own short-lived OpenBao token, for the job broker

Where the values come from: the jupyter-qsecure server extension attaches them to each
execute_request it forwards to the kernel (see :mod:`jupyter_qsecure.kernel.context`),
so every call reads the credentials of the execution it runs in. Nothing is cached:
a value read in one cell is never returned by a later cell's call, and a cell whose
request carried no credentials gets :class:`NoCredentials`. Nothing is written to the
kernel's environment, to disk, or to the user's namespace; what you assign to a
variable stays there, so prefer calling ``secrets.get`` where the value is used.

Errors (all :class:`CredentialsError`, a :class:`jupyter_qsecure.errors.QSecureError`)
say what is wrong and what to do, name secrets but never show a value, and are raised
at once (nothing here waits on the network): the kernel stays usable after them.

Deliberately not supported: reading credentials outside an execution's context
(e.g. from a thread that outlives its cell; see the context module for the rules),
and setting or overriding values from the kernel. Promoted scripts, which run outside
Jupyter, use :mod:`jupyter_qsecure.runtime.secrets` (``jupyter qsecure promote``
rewrites the import): the same ``get``, ``names`` and ``identity`` with the script's
production identity, read from OpenBao when called; no ``token`` (a script's jobs go
through :func:`jupyter_qsecure.runtime.submit`, not the server's broker).
"""

from __future__ import annotations

from typing import Any

from .errors import QSecureError
from .kernel.context import Credentials, Found, Identity, MalformedMetadata, Where
from .kernel.context import current_metadata as _current_metadata
from .kernel.context import parse as _parse

__all__ = [
    "CredentialsError",
    "Identity",
    "MalformedCredentials",
    "NoCredentials",
    "SecretUnavailable",
    "SecretsUnavailable",
    "UnknownSecret",
    "get",
    "identity",
    "names",
    "token",
]

KERNEL_DISPLAY_NAME = "Python 3 (qsecure)"


class CredentialsError(QSecureError):
    """Base class of the errors of :mod:`jupyter_qsecure.secrets`."""


class NoCredentials(CredentialsError):
    """This execution carries no jupyter-qsecure credentials."""


class SecretsUnavailable(CredentialsError):
    """The server could not issue credentials for this execution (e.g. OpenBao unreachable)."""


class SecretUnavailable(CredentialsError):
    """One named secret could not be obtained for this execution."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(
            f"secret {name!r} is unavailable for this execution: {message}",
            hint="run the cell again; if it keeps failing, `%qsecure status` shows the "
            "state of every lease and your administrator can check the server log",
        )


class UnknownSecret(CredentialsError, LookupError):
    """The name is not among the secrets configured for this kernel."""

    def __init__(self, name: str, names: list[str]) -> None:
        self.name = name
        self.names = names
        configured = ", ".join(repr(n) for n in names) if names else "none"
        super().__init__(
            f"no secret named {name!r}; names this kernel has: {configured}",
            hint=f"store it (the Secrets panel, or `jupyter qsecure secret put {name}` in a "
            "terminal), then run the cell again; or map the name in c.QSecure.secrets",
        )


class MalformedCredentials(CredentialsError):
    """The credentials attached to the execution do not follow the contract."""


_NO_CREDENTIALS = (
    f"this kernel got no credentials from a jupyter-qsecure server: use the "
    f"{KERNEL_DISPLAY_NAME!r} kernel on a server with jupyter-qsecure enabled"
)


def _no_credentials(found: Found) -> NoCredentials:
    if found.where is Where.NO_IPYTHON:
        return NoCredentials(
            "no credentials outside a Jupyter kernel: jupyter_qsecure.secrets reads the "
            "credentials a jupyter-qsecure server attaches to each cell execution",
            hint="in a promoted script use `from jupyter_qsecure.runtime import secrets` "
            "(same API, credentials of the production identity); in Jupyter, use the "
            f"{KERNEL_DISPLAY_NAME!r} kernel",
        )
    return NoCredentials(
        _NO_CREDENTIALS,
        hint="check that the jupyter_qsecure_server extension is enabled "
        "(`jupyter server extension list`); code outside a cell, such as a thread started "
        "by an earlier cell, has no credentials"
        if found.where is Where.KERNEL
        else None,
    )


def _credentials(shell: Any = None) -> Credentials | CredentialsError:
    """The parsed credentials of the current execution, or the error to raise.

    Returns the error instead of raising it so that callers raise from a frame that
    holds no value (a verbose traceback shows the locals of the frames it lists).
    """
    found = _current_metadata(shell)
    if found.raw is None:
        return _no_credentials(found)
    try:
        return _parse(found.raw)
    except MalformedMetadata as exc:
        return MalformedCredentials(
            f"the credentials attached to this execution are malformed: {exc}",
            hint="the server's and the kernel's jupyter-qsecure versions probably differ: "
            "install the same version in both environments",
        )


def _unavailable(message: str) -> SecretsUnavailable:
    return SecretsUnavailable(
        f"credentials are unavailable for this execution: {message}",
        hint="this is not a problem with your code: run the cell again once the server "
        "can reach OpenBao/Vault (`%qsecure status` shows the state); everything that does "
        "not need credentials keeps working",
    )


def _lookup(name: str) -> Any:
    creds = _credentials()
    if isinstance(creds, CredentialsError):
        return creds
    if creds.error:
        return _unavailable(creds.error)
    if name in creds.secrets:
        value = creds.secrets[name]
        return value if isinstance(value, str) else dict(value)
    if name in creds.errors:
        return SecretUnavailable(name, creds.errors[name])
    return UnknownSecret(name, creds.names())


def get(name: str) -> Any:
    """The value of secret ``name`` for the current execution.

    Returns a ``str`` for KV secrets and a new ``{"username": ..., "password": ...}``
    dict for dynamic database credentials. Raises :class:`NoCredentials`,
    :class:`SecretsUnavailable`, :class:`SecretUnavailable`, :class:`UnknownSecret` or
    :class:`MalformedCredentials`.
    """
    if not isinstance(name, str):
        raise TypeError(f"secret names are strings, not {type(name).__name__}")
    outcome = _lookup(name)
    if isinstance(outcome, CredentialsError):
        raise outcome
    return outcome


def names() -> list[str]:
    """The secret names configured for this kernel (sorted), including unavailable ones."""
    creds = _credentials()
    if isinstance(creds, CredentialsError):
        raise creds
    return creds.names()


def token() -> str:
    """This kernel's own short-lived OpenBao token (for the job broker). Never print it."""
    outcome: Any = _credentials()
    if not isinstance(outcome, CredentialsError):
        if outcome.error:
            outcome = _unavailable(outcome.error)
        elif not outcome.token:
            outcome = _unavailable("the server attached no kernel token")
        else:
            return str(outcome.token)
    raise outcome


def identity() -> Identity:
    """Who this execution's credentials belong to: user, token accessor, policies,
    environment and kernel id. Contains no secret."""
    creds = _credentials()
    if isinstance(creds, CredentialsError):
        raise creds
    if creds.identity is None:
        raise _unavailable(creds.error or "the server attached no identity")
    return creds.identity
