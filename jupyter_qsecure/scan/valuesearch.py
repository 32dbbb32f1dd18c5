"""One-pass search for known values: their whole encoded forms and their fragments.

The engine shared by output masking (:class:`jupyter_qsecure.vault.masking.Masker`)
and the save gate's exact matching (:class:`jupyter_qsecure.scan.exact.ExactMatcher`).
Callers give it

* *whole forms*: strings to find as they are (a value and each of its encodings),
  each with an owner (which value) and a kind (which encoding); and
* *fragment sources*: strings (a value, its JSON- and HTML-escaped forms) any run of
  at least ``min_fragment`` characters of which is to be found too, because
  formatters truncate and wrap long values (``%whos``, pandas, ``textwrap``,
  contextual help, the debugger's variables).

How: one Aho-Corasick automaton (ahocorasick-rs, Rust) over the UTF-8 bytes of the
text holds every whole form plus *anchors*: the ``q``-character substrings of each
fragment source that start at offsets ``0, step, 2*step, ...`` (and the last one),
with ``step = min_fragment - q + 1``. Every window of ``min_fragment`` characters of
a source contains one whole anchor, so every run is seen through at least one anchor
occurrence; each one is extended left and right against its source (slice compares,
in C) to the maximal common run. Most texts contain no pattern at all and cost one
encode and one automaton pass; the search is overlapping, so no occurrence hides
another (the result does not depend on which pattern the automaton reported first).

Result (:meth:`ValueSearch.find`): spans that do not overlap, in order. Whole forms
are chosen leftmost-longest, as a plain multi-pattern search would; fragment runs of
at least ``min_fragment`` characters cover what is left. Where spans overlap, the
first one is kept whole and the next starts where it ends (a whole form wins over a
fragment at the same position; among fragments the longest); a fragment whose
remainder is shorter than ``min_fragment`` is dropped, because what stays visible of
it is shorter than a run. So no run of ``min_fragment`` characters of a source, and
no whole form, is left outside the spans.

:meth:`ValueSearch.split` is the seam for text that arrives in pieces (a kernel's
stream output): it returns the spans that are final and where to cut, holding back
only a tail that could still grow into a match.

Nothing here logs or shows a value; ``repr`` gives counts only.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import NamedTuple

# ahocorasick-rs (Rust, maintained by G-Research): GB/s SIMD search, 10-100x pyahocorasick and re.
import ahocorasick_rs

from .literal_screen import LiteralScreen, build_screen, compile_later, screening_available

__all__ = ["FRAGMENT", "Span", "ValueSearch"]

FRAGMENT = "fragment"  # the kind of a span that is a run of a fragment source
ENCODING = ("utf-8", "surrogatepass")  # JSON can carry lone surrogates; never fail
DFA_LIMIT = 250_000  # total pattern bytes up to which the automaton is a DFA (faster, bigger)
ANCHOR_LENGTH = 8  # characters per anchor (fewer for a smaller min_fragment)
ANCHOR_PLACES = 32  # places in the sources remembered per anchor (periodic values repeat)
SHORT_HASHES = 250_000  # substrings hashed for split() (~20 MB at most); beyond, searched
#: The escape that can stand for any ASCII character in JSON (``\\u002f`` for "/"). The
#: only other escape that can stand for a character of a pattern screened in raw JSON
#: (ASCII, printable, no quote or backslash) is ``\\/`` for "/": screened around each
#: "/" of a pattern (:func:`_slash_escaped`), since on its own it is two bytes, and a
#: literal that short slows the whole screen by a third.
_JSON_ESCAPE = b"\\u00"
MIN_ESCAPED_LITERAL = 4  # bytes: shorter literals slow the SIMD screen (then no raw screen)


class Span(NamedTuple):
    """A range ``[start, end)`` of the text, character offsets, owned by ``owner``."""

    start: int
    end: int
    owner: int  # index of the owner given for the whole form or the fragment source
    kind: str  # the whole form's kind, or FRAGMENT


class _Run(NamedTuple):
    start: int
    end: int
    owner: int
    grows: bool  # touches the end of the text and its source continues
    size: int  # length of the source: on a tie the most specific (a field) is shown


def common_prefix(a: str, i: int, b: str, j: int, limit: int) -> int:
    """Length of the common prefix of ``a[i:]`` and ``b[j:]``, at most ``limit``.

    Slice compares (C speed) probing 8, 32, 128, ... characters, then bisecting.
    """
    lo, step = 0, 8
    while lo < limit:
        n = min(limit, lo + step)
        if a[i + lo : i + n] != b[j + lo : j + n]:
            hi = n
            while hi - lo > 1:  # a[i:i+lo] == b[j:j+lo], the first hi characters differ
                mid = (lo + hi) // 2
                if a[i + lo : i + mid] == b[j + lo : j + mid]:
                    lo = mid
                else:
                    hi = mid
            return lo
        lo, step = n, step * 4
    return lo


def common_suffix(a: str, i: int, b: str, j: int, limit: int) -> int:
    """Length of the common suffix of ``a[:i]`` and ``b[:j]``, at most ``limit``."""
    lo, step = 0, 8
    while lo < limit:
        n = min(limit, lo + step)
        if a[i - n : i - lo] != b[j - n : j - lo]:
            hi = n
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if a[i - mid : i - lo] == b[j - mid : j - lo]:
                    lo = mid
                else:
                    hi = mid
            return lo
        lo, step = n, step * 4
    return lo


class ValueSearch:
    """Finds whole forms and fragments of a fixed set of values (see the module doc).

    ``whole``: (form, owner, kind) triples; a form listed twice keeps its first owner.
    ``fragments``: (source, owner) pairs; sources shorter than ``min_fragment`` are
    ignored. ``min_fragment`` 0 means no fragments. ``raw_json``: :meth:`passes` may
    screen the JSON a text was decoded from instead of the text (two more literals in
    the screen: a text holding one is searched by the automaton). Immutable and
    thread-safe.
    """

    __slots__ = (
        "_anchors",
        "_automaton",
        "_byte_sources",
        "_joined",
        "_longest_form",
        "_screen",
        "_screened",
        "_short",
        "_short_limit",
        "_short_prefixes",
        "_prefix_ends",
        "_forms",
        "_json_safe",
        "_sources",
        "_stride",
        "_tail_chars",
        "_whole",
        "longest",
        "min_fragment",
        "shortest",
        "__weakref__",
    )

    def __init__(
        self,
        whole: Sequence[tuple[str, int, str]],
        fragments: Sequence[tuple[str, int]] = (),
        *,
        min_fragment: int = 0,
        screen: bool = True,
        raw_json: bool = False,
    ) -> None:
        self.min_fragment = min_fragment
        k = min_fragment
        patterns: dict[str, int] = {}
        whole_info: list[tuple[int, str] | None] = []
        anchors: list[list[tuple[int, int]]] = []

        def index(pattern: str) -> int:
            i = patterns.get(pattern)
            if i is None:
                i = patterns[pattern] = len(whole_info)
                whole_info.append(None)
                anchors.append([])
            return i

        forms: list[str] = []
        for form, owner, kind in whole:
            if not form:
                continue
            i = index(form)
            if whole_info[i] is None:
                whole_info[i] = (owner, kind)
                forms.append(form)
        sources: list[tuple[str, int]] = []
        if k:
            q = min(ANCHOR_LENGTH, k)
            step = k - q + 1
            seen: set[str] = set()
            for source, owner in fragments:
                if len(source) < k or source in seen:
                    continue
                seen.add(source)
                s = len(sources)
                sources.append((source, owner))
                offsets = list(range(0, len(source) - q + 1, step))
                if offsets[-1] != len(source) - q:
                    offsets.append(len(source) - q)
                for offset in offsets:
                    places = anchors[index(source[offset : offset + q])]
                    if len(places) < ANCHOR_PLACES:
                        places.append((s, offset))
        self._whole = tuple(whole_info)
        self._anchors = tuple(tuple(a) for a in anchors)
        self._sources = tuple(sources)
        self._byte_sources = tuple(
            (src.encode(*ENCODING).decode("latin-1"), owner) for src, owner in sources
        )
        encoded = [p.encode(*ENCODING) for p in patterns]
        self._automaton: ahocorasick_rs.BytesAhoCorasick | None = None
        if encoded:
            big = sum(map(len, encoded)) > DFA_LIMIT
            self._automaton = ahocorasick_rs.BytesAhoCorasick(
                encoded, implementation=None if big else ahocorasick_rs.Implementation.DFA
            )
        self.shortest = min(map(len, patterns), default=0)
        # Whether the screen can read the JSON a text was decoded from instead of the text
        # (see passes): every pattern ASCII, printable, without quote or backslash, and the
        # forms its "/" can take escaped are literals long enough.
        escaped: set[str] = set()
        if raw_json:
            for p in patterns:
                if "/" in p:
                    escaped.update(_slash_escaped(p))
        self._json_safe = (
            raw_json
            and all(
                p.isascii() and p.isprintable() and '"' not in p and "\\" not in p for p in patterns
            )
            and all(len(e) >= MIN_ESCAPED_LITERAL for e in escaped)
        )
        # The same patterns for the SIMD screen: a text that holds none of them skips the
        # automaton (exact, so results are unchanged; None without Hyperscan). For raw JSON
        # screening, also the forms that escapes can give them in JSON.
        screened = encoded
        if self._json_safe:
            screened = [*encoded, _JSON_ESCAPE, *(e.encode("ascii") for e in sorted(escaped))]
        # Compiled on the screen thread (see literal_screen: it can take 100 ms), used
        # from when it is ready: until then every search runs the automaton (same answers).
        self._screen: LiteralScreen | None = None
        self._screened = threading.Event()
        if screen and encoded and screening_available():
            compile_later(_screen_job(weakref.ref(self), screened))
        else:
            self._screened.set()

        # For split(): which tails of a text could still grow into a match.
        # (a) a proper prefix of a whole form: found from the forms' first 3 characters
        self._longest_form = max(map(len, forms), default=0)
        #: Longest form or source: a held tail is shorter than twice this.
        self.longest = max(self._longest_form, max((len(s) for s, _ in sources), default=0))
        # For _prefix_starts: the forms, and (built on first use, for split() only) their
        # proper prefixes of 3+ characters by their last 3 characters.
        self._forms = tuple(forms)
        self._stride = self._longest_form + 1
        self._prefix_ends: dict[str, list[int]] | None = None
        self._short_prefixes = frozenset(f[:n] for f in forms for n in (1, 2) if len(f) > n)
        # (b) a substring of a fragment source that the source continues: hashes of all
        # of them shorter than min_fragment (a collision only holds a little more), or,
        # for very long sources, of those up to 3 characters and a search beyond
        total = sum(len(src) for src, _ in sources)
        self._short_limit = k - 1 if total * (k - 1) <= SHORT_HASHES else 3
        short: set[int] = set()
        for source, _ in sources:
            body = source[:-1]
            for n in range(1, min(self._short_limit, len(body)) + 1):
                short.update(hash(body[i : i + n]) for i in range(len(body) - n + 1))
        self._short = frozenset(short)
        self._joined = "\0".join(src[:-1] for src, _ in sources)
        self._tail_chars = frozenset(
            {c for f in forms for c in f[:-1]} | {c for src, _ in sources for c in src[:-1]}
        )

    def __bool__(self) -> bool:
        return self._automaton is not None

    def wait_screened(self, timeout: float | None = None) -> bool:
        """Wait until the SIMD screen is compiled and in use, or known to be unavailable
        (then the automaton alone searches); False if ``timeout`` seconds passed first.
        Searching never needs this: it is for tests and measurements."""
        return self._screened.wait(timeout)

    def __repr__(self) -> str:  # counts only, never values
        return (
            f"ValueSearch(patterns={len(self._whole)}, sources={len(self._sources)}, "
            f"min_fragment={self.min_fragment})"
        )

    # ---- search --------------------------------------------------------------------------
    def find(self, text: str) -> list[Span]:
        """Every whole form and every run of a fragment source in ``text`` (module doc)."""
        return self._analyse(text)[0]

    def find_whole(self, text: str) -> list[Span]:
        """Only the whole forms in ``text`` (leftmost-longest), no fragments."""
        return self._picks(self._occurrences(text))

    def find_bytes(self, data: bytes) -> list[Span]:
        """:meth:`find` on binary ``data``, in byte offsets: the UTF-8 bytes of every form,
        and runs of at least ``min_fragment`` bytes of the UTF-8 bytes of a source."""
        if self._automaton is None or len(data) < self.shortest:
            return []
        if self._screen is not None and not self._screen.any_in(data):
            return []
        found = self._automaton.find_matches_as_indexes(data, overlapping=True)
        if not found:
            return []
        # Latin-1 reads one byte as one character: extension compares bytes exactly.
        return self._analyse(data.decode("latin-1"), found, self._byte_sources)[0]

    def split(self, text: str) -> tuple[list[Span], int]:
        """(final spans, cut): spans before ``cut`` and where to cut ``text``.

        ``text[cut:]`` is the shortest tail that more text could still turn into part of
        a match: a proper prefix of a whole form, a run of a source that touches the end
        and that the source continues, or a shorter tail that could start one. The cut
        is placed so that, for any continuation ``rest``, the spans of ``text + rest``
        are the returned spans followed by the spans of ``text[cut:] + rest`` shifted by
        ``cut``: masking in pieces gives what masking the whole would.
        """
        n = len(text)
        # the common case: no pattern at all, one SIMD pass over the bytes, which the
        # automaton reuses when there is one
        occurrences = self._occurrences(text)
        if not n or text[-1] not in self._tail_chars:
            # e.g. output ending in a newline: the common case, nothing held
            return (self._analyse(text, occurrences)[0] if occurrences else []), n
        if not occurrences:  # output cut mid-line: only a tail that could start a value
            cut = n - self._short_suffix(text)
            starts = self._prefix_starts(text)  # (a) below, with no whole form chosen
            return [], (min(cut, starts[0]) if starts else cut)
        spans, picks, grow = self._analyse(text, occurrences)
        cut0 = min(grow, n - self._short_suffix(text))
        # (a) the first place, in the leftmost-longest chain of whole forms, where a
        # whole form could start and run past the end
        starts = self._prefix_starts(text)
        pstar, pos, k = n, 0, 0
        if starts:
            for start, end, _, _ in [*picks, Span(n, n, -1, "")]:
                while k < len(starts) and starts[k] < pos:
                    k += 1  # inside a chosen whole form: no whole form can start there
                if k < len(starts) and starts[k] <= start:
                    pstar = starts[k]
                    break
                pos = end
        cut0 = min(cut0, pstar)
        if cut0 >= n:
            return spans, n
        starts_of = [s.start for s in spans]
        i = bisect.bisect_right(starts_of, cut0) - 1
        if i >= 0 and spans[i].start < cut0 < spans[i].end:
            # A span holding where a fragment could start is final: cut after it,
            # unless a whole form might still start inside it or crosses its end.
            end = spans[i].end
            if pstar >= end and not any(p.start < end < p.end for p in picks):
                return spans[: i + 1], end
        # Otherwise the last clean place at or before cut0: inside no span, and inside no
        # whole form the leftmost-longest chain picked (which a span may have cut short).
        cut = cut0
        while True:
            i = bisect.bisect_right(starts_of, cut) - 1
            if i >= 0 and spans[i].start < cut < spans[i].end:
                cut = spans[i].start
                continue
            crossing = [p.start for p in picks if p.start < cut < p.end]
            if not crossing:
                break
            cut = crossing[0]
        return [s for s in spans if s.end <= cut], cut

    def passes(self, text: str, raw: bytes | str | None = None) -> bool:
        """Whether ``split(text)`` is ``([], len(text))``: nothing found, nothing held.

        Exact (True only then); the common case of stream output, answered by the SIMD
        screen alone (or the automaton without Hyperscan) and one look at the last
        character.

        ``raw``: the JSON that ``text`` was decoded from (a message frame as received),
        when the caller holds it; with ``raw_json``, the screen reads it instead of the
        text when the text is not ASCII, which saves encoding it. Exact too: a JSON
        string holds each character as it is or escaped (``\\"``, ``\\\\``, ``\\/``, ``\\b \\f \\n \\r \\t``,
        ``\\uXXXX``). Every pattern being ASCII, printable, without quote or backslash,
        a character of one can only be escaped as ``\\u00XX`` (which the screen also looks
        for) or, a "/", as ``\\/``: then the pattern's text around that "/", up to its
        neighbouring "/" or ends, is in ``raw`` as it is with ``\\/`` in the middle, and
        the screen looks for that too. So when nothing is found in ``raw`` (as UTF-8,
        where ASCII is one byte a character), no pattern is in any string it decodes
        to. Anything found (a pattern across JSON syntax or in another field, an escape)
        is only a reason to screen the text itself.
        """
        n = len(text)
        if n and text[-1] in self._tail_chars:
            return False  # a tail might be held: split() decides
        if n < self.shortest or self._automaton is None:
            return True  # no pattern fits (as _occurrences)
        screen = self._screen
        if raw is not None and not text.isascii() and self._json_safe and screen is not None:
            # (ASCII text encodes by a copy, and is shorter than its JSON)
            data = _utf8_json(raw)
            if data is not None and not screen.any_in(data):
                return True
        data = text.encode(*ENCODING)
        if screen is not None:
            return not screen.any_in(data)
        return not self._automaton.find_matches_as_indexes(data)

    def may_find(self, text: str) -> bool:
        """False only when :meth:`find` of ``text``, and of every substring of it, is empty.

        One SIMD screen pass (or the automaton without Hyperscan) over ``text``: a cheap
        first look at many strings joined into one, where True may be a false alarm (a
        pattern across a join) and the strings are then searched one by one.
        """
        if len(text) < self.shortest or self._automaton is None:
            return False
        data = text.encode(*ENCODING)
        if self._screen is not None:
            return self._screen.any_in(data)
        return bool(self._automaton.find_matches_as_indexes(data))

    # ---- internals -----------------------------------------------------------------------
    def _occurrences(self, text: str) -> list[tuple[int, int, int]]:
        """Every occurrence of every pattern: (pattern, start, end) in characters."""
        if self._automaton is None or len(text) < self.shortest:
            return []
        data = text.encode(*ENCODING)
        if self._screen is not None and not self._screen.any_in(data):
            return []  # the common case: no pattern at all
        found: list[tuple[int, int, int]] = self._automaton.find_matches_as_indexes(
            data, overlapping=True
        )
        if not found or len(data) == len(text):  # ASCII: bytes are characters
            return found
        first, last = min(s for _, s, _ in found), max(e for _, _, e in found)
        if data[first:last].isascii():  # matches in an ASCII stretch: one decode, a shift
            shift = len(data[:first].decode(*ENCODING)) - first
            return [(p, s + shift, e + shift) for p, s, e in found]
        offsets = sorted({o for _, s, e in found for o in (s, e)})
        chars: dict[int, int] = {}
        byte = char = 0
        for o in offsets:  # UTF-8 byte offsets -> character offsets, one walk
            char += len(data[byte:o].decode(*ENCODING))
            chars[o] = char
            byte = o
        return [(p, chars[s], chars[e]) for p, s, e in found]

    def _picks(self, occurrences: list[tuple[int, int, int]]) -> list[Span]:
        """Whole forms, leftmost-longest and not overlapping (as a plain search picks)."""
        whole = self._whole
        candidates = sorted((s, -e, p) for p, s, e in occurrences if whole[p] is not None)
        picks: list[Span] = []
        last = 0
        for s, neg_e, p in candidates:
            if s >= last:
                owner, kind = whole[p]  # type: ignore[misc]
                picks.append(Span(s, -neg_e, owner, kind))
                last = -neg_e
        return picks

    def _runs(
        self,
        text: str,
        occurrences: list[tuple[int, int, int]],
        sources: tuple[tuple[str, int], ...],
    ) -> list[_Run]:
        """Maximal runs of fragment sources around every anchor occurrence."""
        anchors, n = self._anchors, len(text)
        # (source, alignment) -> runs; one alignment can hold several runs, apart
        found: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for p, s, e in occurrences:
            for src, offset in anchors[p]:
                key = (src, s - offset)
                known = found.setdefault(key, [])
                if any(start <= s and e <= end for start, end in known):
                    continue  # another anchor of a run already extended
                source = sources[src][0]
                end_offset = offset + (e - s)
                left = common_suffix(text, s, source, offset, min(s, offset))
                right = common_prefix(
                    text, e, source, end_offset, min(n - e, len(source) - end_offset)
                )
                known.append((s - left, e + right))
        k = self.min_fragment
        runs = []
        for (src, align), known in found.items():
            source, owner = sources[src]
            for start, end in known:
                if end - start >= k:
                    grows = end == n and end - align < len(source)
                    runs.append(_Run(start, end, owner, grows, len(source)))
        return runs

    def _analyse(
        self,
        text: str,
        occurrences: list[tuple[int, int, int]] | None = None,
        sources: tuple[tuple[str, int], ...] | None = None,
    ) -> tuple[list[Span], list[Span], int]:
        """(spans, whole-form picks, first start of a growing run or len(text))."""
        n = len(text)
        if occurrences is None:
            occurrences = self._occurrences(text)
        if not occurrences:
            return [], [], n
        picks = self._picks(occurrences)
        runs = self._runs(text, occurrences, sources or self._sources) if self._sources else []
        grow = min((r.start for r in runs if r.grows), default=n)
        if not runs:
            return picks, picks, grow
        k = self.min_fragment
        # Sweep: at each position the whole form there, else the run reaching farthest.
        items = sorted(
            [(s.start, 0, s.end, 0, s.owner, s.kind) for s in picks]
            + [(r.start, 1, r.end, r.size, r.owner, FRAGMENT) for r in runs]
        )
        spans: list[Span] = []
        cur = i = 0
        pending: list[tuple[int, int, int, int, int, str]] = []
        while True:
            while i < len(items) and items[i][0] <= cur:
                pending.append(items[i])
                i += 1
            pending = [it for it in pending if it[2] > cur]
            best = None
            for it in pending:
                if it[1] == 0:  # a whole form (picks never overlap: at most one)
                    best = it
                    break
                # the run reaching farthest; on a tie the shortest source (a field over
                # its document), then the first owner; never the first start (a cut
                # may have shortened the start of some runs)
                if it[2] - cur >= k and (
                    best is None or (it[2], -it[3], -it[4]) > (best[2], -best[3], -best[4])
                ):
                    best = it
            if best is not None:
                spans.append(Span(cur, best[2], best[4], best[5]))
                cur = best[2]
                continue
            if i >= len(items):
                break
            cur = items[i][0]
        return spans, picks, grow

    def _short_suffix(self, text: str) -> int:
        """Longest ``l < min_fragment`` such that ``text[-l:]`` occurs in a source before its end."""
        if not self._sources:
            return 0
        short, hashed, length = self._short, self._short_limit, 0
        limit = min(self.min_fragment - 1, len(text))
        while length < limit:
            tail = text[-(length + 1) :]
            if not (hash(tail) in short if length < hashed else tail in self._joined):
                break
            length += 1
        return length

    def _build_prefix_ends(self) -> dict[str, list[int]]:
        """Proper prefixes ``f[:L]`` (``L >= 3``) of the forms, keyed by ``f[L-3:L]``.

        Text ending in ``xyz`` can only end in a prefix whose last 3 characters are
        ``xyz``: a few candidates per key, each one slice compare, instead of a search
        over the last longest-form characters of every held text. An entry is
        ``form index * stride + L``. Idempotent: a race between two threads builds it
        twice, with the same result.
        """
        stride = self._stride
        ends: dict[str, list[int]] = {}
        for i, form in enumerate(self._forms):
            base = i * stride
            for length in range(3, len(form)):
                key = form[length - 3 : length]
                entries = ends.get(key)
                if entries is None:
                    ends[key] = [base + length]
                else:
                    entries.append(base + length)
        return ends

    def _prefix_starts(self, text: str) -> list[int]:
        """Offsets ``p`` (ascending) where ``text[p:]`` is a proper prefix of a whole form."""
        n = len(text)
        index = self._prefix_ends
        if index is None:
            index = self._prefix_ends = self._build_prefix_ends()
        entries = index.get(text[-3:]) if n >= 3 else None
        found: set[int] = set()
        if entries:
            forms, stride = self._forms, self._stride
            for entry in entries:
                length = entry % stride
                if (
                    length <= n
                    and length not in found
                    and forms[entry // stride].startswith(text[n - length :])
                ):
                    found.add(length)
        out = sorted(n - length for length in found)
        for p in (n - 2, n - 1):
            if p >= 0 and text[p:] in self._short_prefixes:
                out.append(p)
        return out


def _slash_escaped(pattern: str) -> list[str]:
    """For each "/" of ``pattern``: the pattern's text from the "/" (or start) before it
    to the "/" (or end) after it, with that "/" as JSON's ``\\/``."""
    parts = pattern.split("/")
    return [f"{parts[i]}\\/{parts[i + 1]}" for i in range(len(parts) - 1)]


def _utf8_json(raw: bytes | str) -> bytes | None:
    """``raw`` JSON as UTF-8 bytes, where that is cheap (bytes, or an ASCII ``str``); else None."""
    if isinstance(raw, str):
        # ensure_ascii JSON: a copy; otherwise encoding it costs more than the text
        return raw.encode("ascii") if raw.isascii() else None
    # json.loads also reads UTF-16/32 (NUL in the first two bytes), where ASCII is not one
    # byte a character; a UTF-8 document (BOM or not) has none there (json.detect_encoding)
    if len(raw) < 2 or not raw[0] or not raw[1] or raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return None
    return bytes(raw)


def _screen_job(target: weakref.ref[ValueSearch], literals: list[bytes]) -> Callable[[], None]:
    """The screen compiler's job for one engine: skipped if the engine is gone by then
    (a newer masker replaced it), else compiled and attached."""

    def job() -> None:
        if target() is None:
            return
        screen: LiteralScreen | None = None
        try:  # build_screen returns None for what Hyperscan cannot compile
            screen = build_screen(literals)
        finally:  # waiters are released even if compiling failed
            search = target()
            if search is not None:
                search._screen = screen
                search._screened.set()

    return job
