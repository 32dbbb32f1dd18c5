"""JobService.cached_identity: the REST layer's event-loop check before a thread hop."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from jupyter_qsecure.jobs.service import JobService, Unauthorized


def _service(token: str, ttl: float, calls: list[str]) -> JobService:
    def identify(candidate: str) -> dict[str, Any] | None:
        calls.append(candidate)
        return {"user": "alice", "kernel_id": "k1"} if candidate == token else None

    return JobService(
        identify=identify,
        engine=None,  # type: ignore[arg-type]
        signer=SimpleNamespace(public_keys=lambda: []),
        ledger=None,
        executor=lambda: None,  # a factory: never called here
        environment="dev",
        identity_cache_seconds=ttl,
    )


@pytest.fixture
def token() -> str:
    return secrets.token_urlsafe(16)


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def service(token: str, calls: list[str]) -> Iterator[JobService]:
    svc = _service(token, 60.0, calls)
    yield svc
    svc.close()


def test_cached_identity_is_what_authenticate_returned_without_asking_again(
    service: JobService, token: str, calls: list[str]
) -> None:
    assert service.cached_identity(token) is None  # never checked: the caller must ask
    assert service.cached_identity(None) is None and service.cached_identity("") is None
    identity = service.authenticate(token)
    assert service.cached_identity(token) == identity and calls == [token]


def test_cached_identity_never_knows_a_refused_or_forgotten_token(
    service: JobService, token: str
) -> None:
    other = secrets.token_urlsafe(16)
    with pytest.raises(Unauthorized):
        service.authenticate(other)
    assert service.cached_identity(other) is None
    service.authenticate(token)
    service.forget_kernel("k1")  # its credentials were revoked
    assert service.cached_identity(token) is None


def test_cached_identity_expires_with_the_cache(token: str, calls: list[str]) -> None:
    svc = _service(token, 0.0, calls)  # job_identity_cache_seconds = 0: no cache
    try:
        svc.authenticate(token)
        assert svc.cached_identity(token) is None
    finally:
        svc.close()
