"""Mask a kernel's raw output before it is written to the server's log.

A kernel's own stdout and stderr (file descriptors 1 and 2) reach the Jupyter
server's log: ipykernel echoes every byte written at the descriptor level
(``subprocess``, ``os.system``, C extensions) to them, and its own log, crash
tracebacks and ``faulthandler`` dumps go there too. The server extension connects
them to a pipe it reads (:mod:`jupyter_qsecure_server.kernel_output`) and passes
what it reads through :class:`MaskedLines`, which

- decodes the bytes as UTF-8 incrementally (a character split across reads is
  joined; invalid bytes become U+FFFD),
- masks injected values with :meth:`Masker.split`: only a tail that could still
  become a value is held back, until the next read proves what it is, or until the
  stream ends (:meth:`MaskedLines.close`); never on a clock,
- emits whole lines, masked (a line longer than ``max_line`` characters is emitted
  in parts).

The masker is asked for on every read, so values registered after the stream
started are masked too (a kernel can only print a value after it was handed one,
and values are registered before they are handed out).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

from .masking import Masker

__all__ = ["MAX_LINE", "MaskedLines"]

#: Characters of one line emitted at most at once (longer lines come out in parts).
MAX_LINE = 16_384


class MaskedLines:
    """Bytes in, masked lines out (one ``emit`` call per line, without its newline)."""

    def __init__(
        self,
        masker: Callable[[], Masker | None],
        emit: Callable[[str], None],
        *,
        max_line: int = MAX_LINE,
    ) -> None:
        self._masker = masker
        self._emit = emit
        self._max_line = max(1, max_line)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._held = ""  # raw text that may be the start of a value
        self._line = ""  # masked text of the current, unfinished line

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the stream."""
        text = self._held + self._decoder.decode(data)
        masker = self._masker()
        if masker:
            safe, self._held = masker.split(text)
        else:  # nothing injected anywhere: nothing to mask
            safe, self._held = text, ""
        self._lines(safe)

    def close(self) -> None:
        """The stream ended: emit what is left, masked."""
        text = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        masker = self._masker()
        self._lines(masker.mask(text) if masker else text)
        if self._line:
            line, self._line = self._line, ""
            self._emit(line.rstrip("\r"))

    def _lines(self, safe: str) -> None:
        if not safe:
            return
        parts = (self._line + safe).split("\n")
        self._line = parts.pop()
        for line in parts:
            self._emit(line.rstrip("\r"))
        while len(self._line) > self._max_line:
            # Cutting masked text is safe: it holds placeholders, never a value.
            self._emit(self._line[: self._max_line])
            self._line = self._line[self._max_line :]
