"""The one masker over a registry's values, shared by every consumer in a server.

The websocket, the file routes, terminals and the kernel output log (the reader
threads of :mod:`jupyter_qsecure_server.kernel_output`) all mask with the build
:meth:`RegistryMasking.current` returns, so they cannot disagree: a value
registered after a kernel started is masked everywhere from the next call on, and
a value the registry forgot (a revoked token) is dropped everywhere at once.

One build per registry version: a :class:`Masker` costs milliseconds to build
(more with more values), so the first caller to see a new version builds it and
callers that see the same version meanwhile wait for that build instead of making
their own.

Changes made in worker threads go inside :meth:`RegistryMasking.updating` (the
credential service fetches and revokes that way): while one is under way, callers
(the event loop among them) are served the previous build, and the thread that made
the change builds the new one before its values are handed out. The previous build
masks every value handed out so far: a value reaches a kernel only after the update
that registered it ended and its build was made (if that build failed, no stale build
is served again until one succeeds: fail closed). So the event loop builds only for a
change made outside an update (a lingering value expiring, a secret stored from the
browser, marked with :meth:`RegistryMasking.changed`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .masking import Masker
from .registry import ValueRegistry

__all__ = ["MaskerBuild", "RegistryMasking"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaskerBuild:
    """A masker and what goes with it, for one registry version (swapped in as one)."""

    version: int
    masker: Masker | None  # None: no values, nothing to mask
    #: Raw JSON text can be pre-screened for values with ``masker``: JSON escaping
    #: leaves every value as it is (no quotes, backslashes or control characters).
    raw_screening: bool


class RegistryMasking:
    """A masker over every value in ``registry``, rebuilt when it changes; thread-safe."""

    def __init__(self, registry: ValueRegistry, *, min_fragment: int) -> None:
        self.registry = registry
        self.min_fragment = min_fragment  # QSecure.mask_fragment_min
        self._built: MaskerBuild | None = None
        self._building = threading.Lock()  # one build at a time: never two of one version
        self._state = threading.Lock()
        self._updates = 0  # updates under way (see updating)
        #: The oldest version a build served stale must have: the registry's version when
        #: the last update ended (its values may be handed out from then on).
        self._required = 0

    @contextmanager
    def updating(self) -> Iterator[None]:
        """Around a change of the registry (in a worker thread) whose values are handed
        out only after it: meanwhile :meth:`current` serves the previous build; at the
        end the new one is built here. Never raises for the build: if it fails, the next
        :meth:`current` builds (fail closed)."""
        with self._state:
            self._updates += 1
        try:
            yield
        finally:
            with self._state:
                self._updates -= 1
                self._required = max(self._required, self.registry.version)
            try:
                self.current()
            except Exception as exc:  # left to the next current(), which fails closed
                log.error("jupyter-qsecure: building the masker failed: %s", type(exc).__name__)

    def changed(self) -> None:
        """Mark a change made outside :meth:`updating`: no older build is served again."""
        with self._state:
            self._required = max(self._required, self.registry.version)

    def current(self) -> MaskerBuild:
        """The build for the registry's current version (built now if there is none), or
        while an update is under way the previous build (see the module docstring)."""
        built = self._built
        if built is not None and built.version == self.registry.version:
            return built
        if built is not None and self._updates and built.version >= self._required:
            return built  # an update is under way: its values are not handed out yet
        with self._building:
            built = self._built
            if built is not None and built.version == self.registry.version:
                return built  # built by another thread while this one waited
            version, values = self.registry.versioned_named_values()
            masker = Masker(values, min_fragment=self.min_fragment) if values else None
            screening = all(
                json.dumps(value, ensure_ascii=False)[1:-1] == value for value in values.values()
            )
            # Under the lock each build reads the registry after the previous one: the
            # version read here is never older than the build it replaces.
            self._built = MaskerBuild(version, masker, screening)
            return self._built

    def masker(self) -> Masker | None:
        """The current build's masker, or None if the registry holds no value."""
        return self.current().masker
