"""The one masker over a registry's values, shared by every consumer in a server.

The websocket, the file routes, terminals and the kernel output log (the reader
threads of :mod:`jupyter_qsecure_server.kernel_output`) all mask with the build
:meth:`RegistryMasking.current` returns, so they cannot disagree: a value
registered after a kernel started is masked everywhere from the next call on, and
a value the registry forgot (a revoked token) is dropped everywhere at once.

One build per registry version: a :class:`Masker` costs milliseconds to build
(more with more values), so the first caller to see a new version builds it and
callers that see the same version meanwhile wait for that build instead of making
their own. Callers change the registry in worker threads and call
:meth:`RegistryMasking.current` right after (the credential service does), so the
event loop seldom finds a stale build; when it does (a lingering value expired),
it builds or waits as any other thread.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from .masking import Masker
from .registry import ValueRegistry

__all__ = ["MaskerBuild", "RegistryMasking"]


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

    def current(self) -> MaskerBuild:
        """The build for the registry's current version (built now if there is none)."""
        built = self._built
        if built is not None and built.version == self.registry.version:
            return built
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
