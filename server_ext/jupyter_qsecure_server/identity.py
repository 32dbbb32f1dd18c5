"""Who a request comes from, as a name that stays the same across sessions.

Rate limits, quotas, the fair job queue, the ledger's actors and recovery copies are
all keyed by this name. Jupyter Server's own ``current_user.username`` is not always
usable for that: with token or password login (a single-user server) the stock
identity providers make up an *anonymous* user per browser session, a random
``uuid4().hex`` kept only in a cookie, so a new session (a private window, a script
that calls the REST API with the token, a cleared cookie) would start with fresh
quotas. Such a server has one user, the one who holds its token: the operating-system
account that runs it. So:

- a named user (a custom ``IdentityProvider``, or JupyterHub's, which names the Hub
  user) is that user's ``username``;
- an anonymous user of the stock providers is the OS user running the server;
- no user at all (should not reach us: every route is authenticated) is the OS user too.
"""

from __future__ import annotations

import getpass
import os
import re
from typing import Any

from jupyter_server.auth.identity import IdentityProvider

__all__ = ["is_anonymous", "os_user", "stable_user"]

#: What ``IdentityProvider.generate_anonymous_user`` uses as the username.
_ANONYMOUS_ID = re.compile(r"[0-9a-f]{32}")


def os_user() -> str:
    """The account running this server (``getpass.getuser``; the uid if it has no name)."""
    try:
        name = getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        name = ""
    if name:
        return name
    return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def is_anonymous(user: Any, provider: Any) -> bool:
    """True for a user made up by the stock providers for one session.

    Only a provider that still uses Jupyter Server's ``generate_anonymous_user`` makes
    such users, and their usernames are 32 hex digits. A custom provider that overrides
    it, or names its users (JupyterHub's), is taken at its word.
    """
    username = getattr(user, "username", None)
    if not isinstance(username, str) or not username:
        return True
    generates = getattr(type(provider), "generate_anonymous_user", None)
    stock = provider is None or generates is IdentityProvider.generate_anonymous_user
    return stock and _ANONYMOUS_ID.fullmatch(username) is not None


def stable_user(handler: Any) -> str:
    """The stable name of the user making ``handler``'s request (see the module docstring)."""
    user = getattr(handler, "current_user", None)
    provider = getattr(handler, "identity_provider", None)
    if user is None or is_anonymous(user, provider):
        return os_user()
    return str(user.username)
