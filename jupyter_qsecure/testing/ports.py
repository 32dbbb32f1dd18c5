"""Free TCP ports on the loopback interface, for throwaway test servers.

The implementation is shared with the embedded OpenBao
(:mod:`jupyter_qsecure.vault.process`). A port reported free can still be taken by
someone else before the server binds it; callers that start a server on it should
retry with another port when the server reports "address already in use".
"""

from __future__ import annotations

from ..vault.process import LOOPBACK, free_loopback_port, port_is_free

__all__ = ["LOOPBACK", "free_loopback_port", "port_is_free"]
