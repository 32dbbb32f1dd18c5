"""The one masker over a registry (:class:`RegistryMasking`): one build per version,
shared by every thread, following registrations and revocations."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest

from jupyter_qsecure.vault import registry_masking
from jupyter_qsecure.vault.masking import Masker, placeholder
from jupyter_qsecure.vault.registry import ValueRegistry
from jupyter_qsecure.vault.registry_masking import RegistryMasking


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The names of every masker built, in order."""
    names: list[tuple[str, ...]] = []

    class CountingMasker(Masker):
        __slots__ = ()

        def __init__(self, values: Any, *args: Any, **kwargs: Any) -> None:
            names.append(tuple(sorted(values)))
            super().__init__(values, *args, **kwargs)

    monkeypatch.setattr(registry_masking, "Masker", CountingMasker)
    return names


def test_nothing_registered_means_nothing_to_mask() -> None:
    build = RegistryMasking(ValueRegistry(), min_fragment=12).current()
    assert build.masker is None and build.raw_screening


def test_follows_registrations_and_revocations(built: list[tuple[str, ...]]) -> None:
    registry = ValueRegistry()
    masks = RegistryMasking(registry, min_fragment=12)
    first, token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    registry.register("kernel-1", {"api": first})
    assert placeholder("api") in (masks.masker() or Masker({})).mask(first)
    registry.register("kernel-2", {"openbao_token": token})  # a later value: masked too
    masker = masks.masker()
    assert masker is not None and placeholder("openbao_token") in masker.mask(token)
    assert masks.masker() is masker  # same version, same build
    registry.drop("kernel-2")
    registry.revoked([token])  # OpenBao confirmed: no longer masked anywhere
    masker = masks.masker()
    assert masker is not None and masker.names == ("api",)
    assert built == [("api",), ("api", "openbao_token"), ("api",)]


def test_threads_share_one_build_per_version(built: list[tuple[str, ...]]) -> None:
    registry = ValueRegistry()
    masks = RegistryMasking(registry, min_fragment=12)
    registry.register("kernel-1", {"api": secrets.token_urlsafe(32)})
    start = threading.Barrier(8)
    got: list[Masker | None] = []

    def ask() -> None:
        start.wait(10)
        got.append(masks.masker())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(got) == 8 and got[0] is not None
    assert all(masker is got[0] for masker in got)
    assert built == [("api",)]


def test_raw_screening_only_when_json_leaves_values_as_they_are() -> None:
    registry = ValueRegistry()
    masks = RegistryMasking(registry, min_fragment=0)
    registry.register("kernel-1", {"plain": secrets.token_urlsafe(24)})
    assert masks.current().raw_screening
    registry.register("kernel-2", {"quoted": secrets.token_urlsafe(24) + '"'})
    build = masks.current()
    assert not build.raw_screening and build.masker is not None
    assert build.masker.min_fragment == 0


def test_during_an_update_the_previous_build_is_served_and_the_updater_builds(
    built: list[tuple[str, ...]],
) -> None:
    """What the event loop relies on: while a worker thread registers a kernel's values
    (not handed out yet), callers get the previous build instead of building a
    half-registered version; the updating thread builds the final one at its end."""
    registry = ValueRegistry()
    masks = RegistryMasking(registry, min_fragment=12)
    registry.register("kernel-1", {"api": secrets.token_urlsafe(32)})
    first = masks.current()
    with masks.updating():
        registry.register("kernel-2", {"openbao_token": secrets.token_urlsafe(32)})
        assert masks.current() is first  # the half-done update is not built by a caller
        registry.register("kernel-2", {"db": secrets.token_urlsafe(32)})
        assert masks.current() is first
    final = masks.current()
    assert final.version == registry.version
    assert final.masker is not None and set(final.masker.names) == {"api", "openbao_token", "db"}
    assert built == [("api",), ("api", "db", "openbao_token")]


def test_a_value_handed_out_after_an_update_is_never_served_stale(
    built: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: once an update ended (its values may reach a kernel), no build older
    than it is served again, even while another update is under way and even if the
    ended update's own build failed; likewise after changed() (a value stored outside an
    update)."""
    registry = ValueRegistry()
    masks = RegistryMasking(registry, min_fragment=12)
    registry.register("kernel-1", {"api": secrets.token_urlsafe(32)})
    stale = masks.current()
    token = secrets.token_urlsafe(32)
    failing = {"on": True}
    real = registry_masking.Masker

    class FlakyMasker(real):  # type: ignore[misc, valid-type]
        __slots__ = ()

        def __init__(self, values: Any, *args: Any, **kwargs: Any) -> None:
            if failing["on"]:
                raise RuntimeError("build failed")
            super().__init__(values, *args, **kwargs)

    monkeypatch.setattr(registry_masking, "Masker", FlakyMasker)
    other = masks.updating()
    other.__enter__()  # another kernel's fetch under way
    try:
        with masks.updating():
            registry.register("kernel-2", {"openbao_token": token})
        # that update's build failed (logged, not raised); its token may be handed out now
        with pytest.raises(RuntimeError):
            masks.current()  # no stale build without the token: the caller must build
        failing["on"] = False
        masker = masks.masker()
        assert masker is not None and placeholder("openbao_token") in masker.mask(token)
        stored = secrets.token_urlsafe(32)
        registry.add("stored", "typed", stored)
        masks.changed()
        masker = masks.masker()
        assert masker is not None and placeholder("typed") in masker.mask(stored)
    finally:
        other.__exit__(None, None, None)
    assert masks.current().version == registry.version
    assert stale.version < registry.version
