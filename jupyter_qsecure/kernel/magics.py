"""``%qsecure status`` and ``%qsecure help``.

``status`` shows who the credentials of this execution belong to (user, the first
characters of the token accessor, policies), the environment, and for each lease its
name, kind, time left and whether it can be renewed. It never shows a value or the
token, and it never contacts OpenBao: everything comes from the execution's metadata.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from .. import secrets as _secrets
from .context import Credentials, forget_current

HELP = f"""\
%qsecure status   identity, environment and time left on each lease (never values)
%qsecure help     this help

In Python:
  from jupyter_qsecure import secrets
  secrets.get("name")   the value for this cell execution (str, or a dict with
                        username and password for database credentials)
  secrets.names()       the configured names
  secrets.identity()    user, accessor, policies, environment, kernel id
  secrets.token()       this kernel's short-lived OpenBao token (for the job broker)

Credentials arrive with each cell execution from the jupyter-qsecure server and are
never cached: use the {_secrets.KERNEL_DISPLAY_NAME!r} kernel on a server with
jupyter-qsecure enabled."""


def render_status(creds: Credentials, now: datetime | None = None) -> str:
    """The text of ``%qsecure status`` for parsed credentials. Holds no value or token."""
    now = now or datetime.now(timezone.utc)
    lines = ["jupyter-qsecure credentials of this execution"]
    ident = creds.identity
    if ident is not None:
        lines.append(f"  user:        {ident.user or '(unknown)'}")
        lines.append(f"  accessor:    {ident.accessor_prefix or '(none)'}")
        lines.append(f"  policies:    {', '.join(ident.policies) or '(none)'}")
    lines.append(f"  environment: {creds.environment}")
    if creds.kernel_id:
        lines.append(f"  kernel:      {creds.kernel_id}")
    if creds.error:
        lines.append(f"  ERROR:       {creds.error}")
        lines.append("               (secrets.get raises SecretsUnavailable until this clears)")
    if creds.leases:
        rows = [("NAME", "KIND", "TIME LEFT", "RENEWABLE")]
        for name in sorted(creds.leases):
            lease = creds.leases[name]
            rows.append(
                (name, lease.kind, lease.time_left(now), "yes" if lease.renewable else "no")
            )
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines.append("  leases:")
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(3)]
            lines.append("    " + "  ".join([*cells, row[3]]))
    else:
        lines.append("  leases:      (none)")
    without_lease = [n for n in creds.names() if n not in creds.leases and n not in creds.errors]
    if without_lease:
        lines.append(f"  no lease:    {', '.join(without_lease)}")
    if creds.errors:
        lines.append("  unavailable:")
        for name in sorted(creds.errors):
            lines.append(f"    {name}: {creds.errors[name]}")
    return "\n".join(lines)


@magics_class
class QSecureMagics(Magics):
    """The ``%qsecure`` line magic."""

    @line_magic
    def qsecure(self, line: str = "") -> None:
        """Show jupyter-qsecure credential status: %qsecure status | %qsecure help"""
        command = line.strip() or "status"
        if command in ("help", "-h", "--help"):
            print(HELP)
            return
        if command != "status":
            raise UsageError(f"unknown %qsecure command {command!r}; try: %qsecure help")
        print(self._status())

    _depth = 0  # nesting of run_cell (%%capture and friends run cells inside a cell)

    def enter_execution(self) -> None:
        """``pre_execute`` hook."""
        self._depth += 1

    def forget_credentials(self) -> None:
        """``post_execute`` hook: when the outermost execution ends, drop its credentials
        from the request ipykernel keeps in memory."""
        self._depth = max(self._depth - 1, 0)
        if self._depth:
            return
        try:
            forget_current(self.shell)
        except Exception:  # noqa: S110 - a hook must never break the kernel
            pass

    def _status(self) -> str:
        outcome: Any = _secrets._credentials(self.shell)
        if isinstance(outcome, _secrets.CredentialsError):
            text = f"jupyter-qsecure: {outcome.message}"
            if outcome.hint:
                text += f"\n  hint: {outcome.hint}"
            return text
        return render_status(outcome)
