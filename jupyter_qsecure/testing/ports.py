"""Free TCP ports on the loopback interface, for throwaway test servers.

A port reported free can still be taken by someone else before the server
binds it; callers that start a server on it should retry with another port
when the server reports "address already in use" (the OpenBao helper does).
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_loopback_port(*, consecutive: int = 1) -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    With ``consecutive=n`` the ports ``p .. p+n-1`` are all free (OpenBao's dev
    server, for instance, also binds ``p+1`` for its cluster listener).
    """
    if consecutive < 1:
        raise ValueError("consecutive must be at least 1")
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((LOOPBACK, 0))
            port = int(probe.getsockname()[1])
        if port + consecutive - 1 > 65535:
            continue
        if all(port_is_free(port + i) for i in range(consecutive)):
            return port
    raise RuntimeError(f"could not find {consecutive} consecutive free loopback ports")


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on ``host:port`` and it can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
