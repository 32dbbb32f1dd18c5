"""Fakes shared by the kernel tests."""

from __future__ import annotations

from typing import Any


class FakeKernel:
    """What ``jupyter_qsecure.kernel.context`` reads from ipykernel: the parent request
    of the shell channel (an execute_request without credentials unless given one)."""

    def __init__(self, parent: dict[str, Any] | None = None) -> None:
        self.parent: dict[str, Any] = (
            parent
            if parent is not None
            else {"header": {"msg_type": "execute_request"}, "metadata": {}}
        )

    def get_parent(self, channel: str | None = None) -> dict[str, Any]:
        assert channel == "shell"
        return self.parent
