"""The typed seams: every implementation has each protocol member, with its parameters.

mypy checks the same structurally (the ``TYPE_CHECKING`` blocks of
``jupyter_qsecure.vault.source`` and ``jupyter_qsecure.jobs.protocols``); this test keeps
the check in the suite, where a renamed method or parameter fails it too.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from jupyter_qsecure.jobs.dask_executor import DaskExecutor
from jupyter_qsecure.jobs.inline_executor import InlineExecutor
from jupyter_qsecure.jobs.local_executor import LocalExecutor
from jupyter_qsecure.jobs.parse_pool import InlineParser, ParsePool
from jupyter_qsecure.jobs.protocols import CircuitParser, Executor, JobLedger
from jupyter_qsecure.ledger import Ledger
from jupyter_qsecure.vault.broker import CredentialBroker
from jupyter_qsecure.vault.local_tokens import LocalKernelTokens
from jupyter_qsecure.vault.source import CredentialSource


def _members(protocol: type) -> list[str]:
    return [
        name
        for name, value in vars(protocol).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    ]


def _parameters(member: Any) -> list[tuple[str, Any, bool]]:
    """Names, kinds and whether a default exists (annotations are strings here)."""
    signature = inspect.signature(member)
    return [
        (p.name, p.kind, p.default is not inspect.Parameter.empty)
        for p in signature.parameters.values()
    ]


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)

CASES = [
    (CredentialSource, CredentialBroker),
    (CredentialSource, LocalKernelTokens),
    (JobLedger, Ledger),
    (Executor, LocalExecutor),
    (Executor, DaskExecutor),
    (Executor, InlineExecutor),
    (CircuitParser, ParsePool),
    (CircuitParser, InlineParser),
]


@pytest.mark.parametrize(
    ("protocol", "implementation"), CASES, ids=[f"{p.__name__}-{i.__name__}" for p, i in CASES]
)
def test_the_implementation_has_every_member_of_the_protocol(
    protocol: type, implementation: type
) -> None:
    members = _members(protocol)
    assert members, f"{protocol.__name__} declares no members"
    for name in members:
        wanted = vars(protocol)[name]
        found = inspect.getattr_static(implementation, name, None)
        assert found is not None, f"{implementation.__name__} has no {name}"
        if isinstance(wanted, property):
            assert isinstance(found, property), f"{implementation.__name__}.{name}: not a property"
            continue
        have, need = _parameters(found), _parameters(wanted)
        where = f"{implementation.__name__}.{name} against {protocol.__name__}.{name}"
        for parameter in need:  # each one taken the same way (a default where one is)
            match = [p for p in have if p[0] == parameter[0]]
            assert match, f"{where}: no parameter {parameter[0]}"
            assert match[0][1] == parameter[1], f"{where}: {parameter[0]} is passed otherwise"
            assert match[0][2] or not parameter[2], f"{where}: {parameter[0]} has no default"
        names = [p[0] for p in need]
        extra = [p for p in have if p[0] not in names]
        assert all(p[2] for p in extra), f"{where}: extra parameters without a default"
        positional = [p[0] for p in have if p[1] in _POSITIONAL]
        assert positional[: len(names)] == [p[0] for p in need if p[1] in _POSITIONAL]


def test_the_check_sees_a_missing_member() -> None:
    class Partial:
        def cached(self, kernel_id: str) -> None:
            return None

    assert inspect.getattr_static(Partial, "revoke", None) is None
    assert "revoke" in _members(CredentialSource)
