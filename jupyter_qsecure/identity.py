"""One written form for the people in the audit ledger.

A Jupyter user is recorded as the actor ``user:NAME`` of every entry they cause (saves,
credentials, jobs, files), and as ``NAME`` in body fields called ``user``. ``NAME`` is
the readable, stable name the server extension gives a request
(``jupyter_qsecure_server.identity.stable_user``: the Hub or identity provider's user
name, or the OS account running a single-user server). Other actors keep their own
prefixes: ``approver:NAME``, ``local:NAME`` (the command line), ``qsecure:broker``.
"""

from __future__ import annotations

__all__ = ["USER_PREFIX", "display_user", "user_actor", "user_matches"]

USER_PREFIX = "user:"


def user_actor(user: str) -> str:
    """``user:NAME`` for a user name (unchanged if it already has the prefix)."""
    return user if user.startswith(USER_PREFIX) else f"{USER_PREFIX}{user}"


def display_user(actor: str) -> str:
    """The user name of a ``user:NAME`` actor; other actors as they are."""
    return actor.removeprefix(USER_PREFIX)


def user_matches(actor: str, user: str) -> bool:
    """``actor`` (``user:alice``) is ``user`` (``alice`` or ``user:alice``)."""
    return actor == user_actor(user)
