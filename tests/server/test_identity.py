"""The stable user name quotas, the job queue and the ledger use (not Jupyter's
per-session anonymous id)."""

from __future__ import annotations

import getpass
import uuid
from types import SimpleNamespace
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider, User

from jupyter_qsecure_server.identity import stable_user


class HubLike(IdentityProvider):
    """Names its users (as JupyterHub's provider does) and makes none up."""

    def generate_anonymous_user(self, handler: Any) -> User:  # pragma: no cover - not called
        raise AssertionError


def request_by(user: User | None, provider: IdentityProvider) -> Any:
    return SimpleNamespace(current_user=user, identity_provider=provider)


def test_anonymous_session_users_are_the_os_user() -> None:
    for provider in (IdentityProvider(), PasswordIdentityProvider()):
        one = User(uuid.uuid4().hex, name="Anonymous Io")
        other = User(uuid.uuid4().hex, name="Renamed By The User")  # PATCH /api/me
        assert stable_user(request_by(one, provider)) == getpass.getuser()
        assert stable_user(request_by(other, provider)) == getpass.getuser()
    assert stable_user(request_by(None, IdentityProvider())) == getpass.getuser()


def test_named_users_keep_their_name() -> None:
    assert stable_user(request_by(User("alice"), IdentityProvider())) == "alice"
    hub_user = User(uuid.uuid4().hex)  # a Hub user whose name happens to look like an id
    assert stable_user(request_by(hub_user, HubLike())) == hub_user.username
