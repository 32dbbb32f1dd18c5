"""A SIMD screen in front of the Aho-Corasick pass: does any of a set of byte strings occur?

:class:`~jupyter_qsecure.scan.valuesearch.ValueSearch` looks for hundreds of patterns
(every encoded form of every value, plus the fragment anchors of long values). With
that many patterns ahocorasick-rs has no prefilter and walks its DFA byte by byte
(~0.4-0.5 GB/s), while almost every text (kernel output, notebooks) holds none of them.
Hyperscan (Intel, via the ``hyperscan`` bindings) answers "does any literal occur?"
with its SIMD literal matcher at several GB/s, so the automaton runs only on the texts
that hold a pattern; its answer is exact (no pattern missed, none invented), so the
result of the search does not change, only its cost.

Optional: where ``hyperscan`` is not installed or cannot compile the set (another CPU
architecture), :func:`build_screen` returns ``None`` and every text goes through the
automaton, as before.

Compiling is usually ~1 ms, but for some sets of literals Hyperscan takes 30-100 ms
(seen: the 8-byte fragment anchors of a 40-character hex value with the 4-byte JSON
escape literal; it depends on the values, so one deployment pays it on every build).
A masker is built on a kernel's first execution, before its credentials go out, so
:func:`compile_later` compiles on one background thread (Hyperscan releases the GIL
while compiling) and hands the screen over when it is ready; until then the caller
searches with the automaton alone, which gives the same answers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_hs: Any
try:  # Hyperscan bindings: x86-64 wheels with the library inside
    import hyperscan as _hs
except ImportError:  # pragma: no cover - depends on the platform
    _hs = None

__all__ = ["LiteralScreen", "build_screen", "compile_later", "screening_available"]


_ESCAPED = tuple(b"\\x%02x" % b for b in range(256))


def _stop(*_: object) -> bool:
    return True  # the first match answers the question: stop the scan


class LiteralScreen:
    """``screen.any_in(data)``: whether any of the literals occurs in ``data`` (bytes).

    Thread-safe: each thread scans with its own Hyperscan scratch space.
    """

    __slots__ = ("_database", "_local", "count")

    def __init__(self, database: Any, count: int) -> None:
        self._database = database
        self._local = threading.local()
        self._local.scratch = database.scratch  # the building thread's
        self.count = count

    def __repr__(self) -> str:  # counts only, never values
        return f"LiteralScreen(literals={self.count})"

    def any_in(self, data: bytes) -> bool:
        """True if some literal occurs in ``data``; False only if none does."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._database.scratch.clone()
        try:  # positional: data, match_event_handler, flags, context, scratch
            self._database.scan(data, _stop, 0, None, scratch)
        except _hs.ScanTerminated:
            return True
        return False


def build_screen(literals: Sequence[bytes]) -> LiteralScreen | None:
    """A screen for ``literals`` (non-empty byte strings), or ``None`` without Hyperscan."""
    if _hs is None or not literals or not all(literals):
        return None
    # Hyperscan's pure literal compiler is ~15% quicker to compile (a masker is built for
    # every new kernel), but the bindings cut a literal at a NUL byte: with one, every
    # byte is escaped in a regular expression instead (exact for any bytes).
    literal = not any(0 in item for item in literals)
    try:
        database = _hs.Database(mode=_hs.HS_MODE_BLOCK)
        database.compile(
            expressions=(
                list(literals)
                if literal
                else [b"".join(_ESCAPED[b] for b in item) for item in literals]
            ),
            ids=list(range(len(literals))),
            elements=len(literals),
            flags=_hs.HS_FLAG_SINGLEMATCH,
            literal=literal,
        )
    except _hs.error:  # e.g. a CPU without the instructions the library needs
        return None
    return LiteralScreen(database, len(literals))


def screening_available() -> bool:
    """Whether screens can be built here (the ``hyperscan`` bindings are installed)."""
    return _hs is not None


_compiler: ThreadPoolExecutor | None = None
_compiler_lock = threading.Lock()


def _forget_compiler() -> None:  # a forked child does not have the parent's thread
    global _compiler, _compiler_lock
    _compiler = None
    _compiler_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_compiler)


def compile_later(job: Callable[[], None]) -> Future[None]:
    """Run ``job`` (which calls :func:`build_screen`) on the screen compiler thread.

    One thread for the process: compiles are queued, never two at once on the cores the
    kernels and the event loop need; a job whose screen is no longer wanted can return
    early. ``job`` must not raise (its failures are the caller's to report).
    """
    global _compiler
    with _compiler_lock:
        if _compiler is None:
            _compiler = ThreadPoolExecutor(1, thread_name_prefix="qsecure-screen")
        return _compiler.submit(job)
