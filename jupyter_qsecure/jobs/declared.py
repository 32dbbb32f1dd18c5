"""What submitted circuits declare, read and checked before any circuit is parsed.

Qiskit's readers trust what a payload declares. A QPY circuit header claiming 369 million
qubits makes the reader allocate gigabytes before anything can look at the circuit, and
``qreg q[10000000];`` (40 bytes of OpenQASM) costs 4 GB and most of a minute. So the
broker first reads what each circuit *declares*, cheaply and never with Qiskit's parsers,
and refuses before parsing:

* **over the policy** (:func:`check_declared` returns an :class:`Excess`; the broker
  records it as a denial, HTTP 403): more circuits than ``max_circuits_per_job``, a
  circuit with more qubits than ``max_qubits``, or more clbits than ``max_clbits``
  (:func:`max_clbits`: ``max_qubits x max_depth``, as many measurement results as a
  circuit within the other two limits can write);
* **malformed** (:class:`MalformedCircuit`, HTTP 422): a request that is not a list of
  ``{"format", "data"}`` circuits, text that is not base64 QPY, a QPY file whose header
  declares more circuits, instructions, registers or variables than its bytes can hold, a
  register size that is not an integer literal, and ``include`` of anything but the
  standard library of the language (``qelib1.inc`` for OpenQASM 2, ``stdgates.inc`` for
  OpenQASM 3): the broker never reads a file a circuit names.

How each format is read
-----------------------
* **QPY**: the file header (preface, format version, number of circuits), the circuit
  table (format 16 and later) and each circuit's header, with :mod:`struct` and the
  layouts in :mod:`qiskit.qpy.formats`. A file of an older format with several circuits
  has no table, so its later headers cannot be reached without parsing: it is refused
  (re-encode it, or send one circuit per entry).
* **OpenQASM 2 and 3**: a lexical scan. Comments and string literals are recognised as the
  language's lexer does (a line comment ends at the first CR or LF, so the scan never
  takes code for a comment); ``qreg``/``creg`` (both versions), ``qubit``/``bit``
  declarations (OpenQASM 3: a type, a name, then ``;`` or ``=``, so a subroutine's
  parameters and casts are not counted) and physical qubits ``$N`` are counted. The count
  is an over-estimate in odd cases (an ``input bit`` counts as clbits); for the programs
  Qiskit's importers accept it is exact.

Deliberately NOT done here: parsing. A payload can still be expensive in ways no header
shows (deeply nested gate definitions, opaque calibration blocks that hide text from a
lexical scan); what bounds those is the parse worker
(:mod:`jupyter_qsecure.jobs.parse_pool`), a separate process with memory and CPU limits.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from qiskit.qpy import common as qpy_common
from qiskit.qpy import formats as qpy_formats

from ..errors import QSecureError
from .policy import EnvironmentPolicy

__all__ = [
    "FORMATS",
    "MAX_CIRCUITS_PARSED",
    "SERVER_QASM_CHARS",
    "SERVER_QASM_MARKERS",
    "STANDARD_INCLUDES",
    "Declared",
    "Excess",
    "MalformedCircuit",
    "OverPolicy",
    "check_declared",
    "declared_circuits",
    "max_clbits",
]

#: The circuit formats of the REST API.
FORMATS = ("qpy", "qasm2", "qasm3")
#: Entries in one request's ``circuits`` list, whatever the policy says (HTTP 422 beyond).
MAX_CIRCUITS_PARSED = 1000
#: The one file each OpenQASM version may include: its standard library, built into Qiskit.
STANDARD_INCLUDES = {"qasm2": "qelib1.inc", "qasm3": "stdgates.inc"}
#: The server's share of the OpenQASM scan of one request (a few milliseconds at most):
#: characters, and comments, strings and keywords. The parse worker scans what is beyond
#: it, under its limits, before it parses.
SERVER_QASM_CHARS = 64 * 1024
SERVER_QASM_MARKERS = 1000
#: Digits a register size may have before it is refused as implausible (10**40 qubits).
_MAX_SIZE_DIGITS = 40


class MalformedCircuit(QSecureError):
    """A circuit that cannot be what it claims to be (HTTP 422); names the circuit."""


@dataclass(frozen=True)
class Declared:
    """The sizes one circuit declares; ``position`` is its entry in ``circuits``."""

    position: int
    fmt: str
    qubits: int
    clbits: int


@dataclass(frozen=True)
class Excess:
    """A declared size over a policy limit: the denial the broker records."""

    rule: str
    limit: int
    actual: int
    message: str


def max_clbits(rules: EnvironmentPolicy) -> int:
    """The most clbits a circuit may declare: ``max_qubits x max_depth``."""
    return rules.max_qubits * rules.max_depth


def _scan_budget(rules: EnvironmentPolicy) -> int:
    """Comments, strings and keywords an OpenQASM program may hold before the scan stops:
    twice as many as a circuit within the policy has operations, and a thousand more."""
    return 2 * rules.max_qubits * rules.max_depth + 1000


# ---- the request's shape -------------------------------------------------------------------
def _entries(items: Any) -> list[tuple[str, str]]:
    """``(format, data)`` of each entry of ``circuits``, or :class:`MalformedCircuit`."""
    if not isinstance(items, list) or not items:
        raise MalformedCircuit(
            "'circuits' must be a non-empty list", hint="send at least one circuit"
        )
    if len(items) > MAX_CIRCUITS_PARSED:
        raise MalformedCircuit(
            f"{len(items)} circuits in one job is more than {MAX_CIRCUITS_PARSED} can be parsed"
        )
    entries = []
    for position, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("data"), str):
            raise MalformedCircuit(f"circuit {position} must be an object with 'format' and 'data'")
        fmt = item.get("format")
        if fmt not in FORMATS:
            raise MalformedCircuit(
                f"circuit {position}: unknown format {str(fmt)[:40]!r}",
                hint="use qpy, qasm2 or qasm3",
            )
        entries.append((str(fmt), item["data"]))
    return entries


# ---- QPY -----------------------------------------------------------------------------------
def _size(pack: str) -> int:
    return struct.calcsize(pack)


#: Lower bounds, in bytes, of what each declared element occupies in any QPY version: a
#: header claiming more than its file can hold is refused before a reader sizes anything
#: by it.
_MIN_INSTRUCTION = min(
    _size(qpy_formats.CIRCUIT_INSTRUCTION_PACK), _size(qpy_formats.CIRCUIT_INSTRUCTION_V2_PACK)
)
_MIN_REGISTER = min(_size(qpy_formats.REGISTER_PACK), _size(qpy_formats.REGISTER_V4_PACK))
_MIN_VAR = _size(qpy_formats.EXPR_VAR_DECLARATION_PACK)
_TABLE_ENTRY = _size(qpy_formats.CIRCUIT_TABLE_ENTRY_PACK)
#: QPY format versions: the first with a symbolic-encoding byte in the file header, with a
#: program type key, with a circuit table, and the circuit header layouts by version.
_V_SYMBOLIC, _V_TYPE_KEY, _V_TABLE = 10, 5, 16
_CIRCUIT_PROGRAM = b"q"  # qiskit.qpy.type_keys.Program.CIRCUIT


def _circuit_header_pack(version: int) -> str:
    if version >= 12:
        return str(qpy_formats.CIRCUIT_HEADER_V12_PACK)
    if version >= 2:
        return str(qpy_formats.CIRCUIT_HEADER_V2_PACK)
    return str(qpy_formats.CIRCUIT_HEADER_PACK)


class _QpyFile:
    """The headers of one base64 QPY entry, read with :mod:`struct` only.

    Only the base64 characters that cover the bytes read are decoded (four characters hold
    three bytes), so the check costs the same for a 500-byte file and an 8 MiB one; the
    parse worker decodes (and so validates) the whole text.
    """

    def __init__(self, position: int, data: str) -> None:
        self.position = position
        self.data = data
        padding = len(data) - len(data.rstrip("="))
        if len(data) % 4 or padding > 2 or not data.isascii():
            raise self._malformed("is not base64 (its length or characters are wrong)")
        self.size = len(data) // 4 * 3 - padding  # bytes it decodes to
        preface, self.version = self._unpack(0, "!6sB", "file header")
        if preface != b"QISKIT":
            raise self._malformed("is not a QPY file (it does not start with 'QISKIT')")
        if self.version > qpy_common.QPY_VERSION:
            raise self._malformed(
                f"is QPY format version {self.version}; this server's Qiskit reads up to "
                f"version {qpy_common.QPY_VERSION}",
                hint=f"encode it with qpy.dump(..., version={qpy_common.QPY_VERSION})",
            )
        pack = (
            qpy_formats.FILE_HEADER_V10_PACK
            if self.version >= _V_SYMBOLIC
            else qpy_formats.FILE_HEADER_PACK
        )
        self.programs = int(self._unpack(0, pack, "file header")[5])
        self.offset = _size(pack)
        if self.version >= _V_TYPE_KEY:
            (kind,) = self._unpack(self.offset, "!1c", "file header")
            if kind != _CIRCUIT_PROGRAM:
                raise self._malformed(f"holds a program of type {kind!r}, not a circuit")
            self.offset += 1
        if self.programs == 0:
            raise self._malformed("holds no circuit")

    def _bytes(self, offset: int, count: int) -> bytes:
        """Bytes ``offset`` to ``offset + count`` of the decoded file."""
        first, last = offset // 3 * 4, -(-(offset + count) // 3) * 4
        try:
            chunk = base64.b64decode(self.data[first:last], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise self._malformed(f"is not base64 ({exc})") from None
        return chunk[offset % 3 : offset % 3 + count]

    def _malformed(self, what: str, *, hint: str | None = None) -> MalformedCircuit:
        return MalformedCircuit(f"circuit {self.position} (qpy) {what}", hint=hint)

    def _unpack(self, offset: int, pack: str, what: str) -> tuple[Any, ...]:
        if offset + _size(pack) > self.size:
            raise self._malformed(f"is cut short: its {what} ends at byte {self.size}")
        return struct.unpack(pack, self._bytes(offset, _size(pack)))

    def circuit_offsets(self) -> Sequence[int]:
        """Where each circuit starts (call only once the count is within the policy)."""
        if self.version < _V_TABLE:
            if self.programs > 1:
                raise self._malformed(
                    f"holds {self.programs} circuits in QPY format version {self.version}, "
                    "whose circuits cannot be checked before parsing (no circuit table)",
                    hint=f"encode it with QPY format version {_V_TABLE} or later, or send "
                    "one circuit per entry",
                )
            return [self.offset]
        room = (self.size - self.offset) // _TABLE_ENTRY
        if self.programs > room:
            raise self._malformed(
                f"declares {self.programs:,} circuits but has room for at most {room:,}"
            )
        return self._unpack(self.offset, f"!{self.programs}Q", "circuit table")

    def circuit(self, index: int, start: int) -> tuple[int, int]:
        """``(qubits, clbits)`` declared by the circuit header at ``start``; its other
        counts are checked against the bytes that follow it."""
        what = f"header of circuit {index}"
        if start < self.offset:
            raise self._malformed(f"places circuit {index} inside the file header")
        pack = _circuit_header_pack(self.version)
        header = self._unpack(start, pack, what)
        if self.version >= 2:
            name, _, phase, qubits, clbits, metadata, registers, instructions = header[:8]
            variables = header[8] if self.version >= 12 else 0
        else:
            name, _, qubits, clbits, metadata, registers, instructions = header
            phase = variables = 0
        room = self.size - start - _size(pack)
        claims = (
            (name + phase + metadata, 1, "bytes of name, global phase and metadata"),
            (registers, _MIN_REGISTER, "registers"),
            (instructions, _MIN_INSTRUCTION, "instructions"),
            (variables, _MIN_VAR, "variables"),
        )
        for count, each, noun in claims:
            if count * each > room:
                raise self._malformed(
                    f"declares {count:,} {noun} in circuit {index}, more than its remaining "
                    f"{room:,} bytes can hold"
                )
        return int(qubits), int(clbits)


# ---- OpenQASM ------------------------------------------------------------------------------
# The scan is driven by str.find (C speed, memchr-like) from one marker to the next, never by
# a regular expression run over the whole text: Python's re scans a pattern that does not
# start with a literal at some 100 ns a character, a second per 8 MiB. Only anchored, bounded
# patterns run at the markers found, and the number of markers handled is capped.

#: What opens a comment or a string literal in each language. OpenQASM 2 has no block
#: comments and only double-quoted strings.
_OPENERS = {"qasm2": ("//", '"'), "qasm3": ("//", "/*", '"', "'")}
#: Keywords the scan reads (``bit`` also finds ``qubit``).
_KEYWORDS = {"qasm2": ("include", "qreg", "creg"), "qasm3": ("include", "qreg", "creg", "bit")}
#: ``include`` statements a program may hold (its standard library, once).
_MAX_INCLUDES = 4
_IDENT = r"[^\W\d]\w*"
_SHORT_SIZE = r"\[([^\]\r\n]{0,64})\]"
_INCLUDE_FORM = re.compile(r"""include\s*("[^"\r\n]*"|'[^'\r\n]*')\s*;""")
#: ``qreg``/``creg`` (both versions; the size is optional in OpenQASM 3).
_OLD_DECL = re.compile(rf"(qreg|creg)\s+{_IDENT}\s*(?:{_SHORT_SIZE})?\s*;")
#: ``qubit[N] q;``, ``qubit q;``, ``bit[N] c;``, ``bit c = "01";`` (OpenQASM 3); a
#: subroutine's ``qubit[2] a,`` or a cast ``bit[4](x)`` is not followed by a name and ``;``.
_NEW_DECL = re.compile(rf"(qubit|bit)(?:\s*{_SHORT_SIZE}\s*|\s+){_IDENT}\s*[;=]")
_NEW_SIZED = re.compile(r"(?:qubit|bit)\s*\[")
_NEW_SHORT = re.compile(rf"(?:qubit|bit)\s*{_SHORT_SIZE}")
_PHYSICAL = re.compile(r"\$([0-9]+)")
_DECIMAL = re.compile(r"[0-9](?:_?[0-9])*")
_PREFIXED = re.compile(
    r"0(?:[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*|[oO][0-7](?:_?[0-7])*|[bB][01](?:_?[01])*)"
)


def _word_char(char: str) -> bool:
    return char.isalnum() or char in "_$"


def _line_end(text: str, start: int) -> int:
    """Where a line comment starting at ``start`` ends: the first LF or CR (Qiskit's
    OpenQASM 2 lexer ends it at LF only: text after a lone CR is scanned as code here,
    never hidden)."""
    end = text.find("\n", start)
    if end < 0:
        end = len(text)
    cr = text.find("\r", start, end)
    return end if cr < 0 else cr


class _Deferred(Exception):
    """The server's share of scanning ran out: the parse worker checks the rest."""


@dataclass
class _Share:
    """What the server scans of one request before it leaves the rest to the parse worker:
    OpenQASM characters, and markers (comments, strings, keywords: microseconds of Python
    each)."""

    chars: int
    markers: int


def _markers(
    fmt: str, text: str, budget: int | None, share: _Share | None
) -> Iterator[tuple[int, str]]:
    """``(position, keyword)`` of each keyword candidate outside comments and string
    literals, in order. Past ``budget`` markers: :class:`MalformedCircuit`; past the
    server's ``share``: :class:`_Deferred`."""
    markers = _OPENERS[fmt] + _KEYWORDS[fmt]
    following = {marker: text.find(marker) for marker in markers}
    handled = 0
    while True:
        found = [(at, marker) for marker, at in following.items() if at >= 0]
        if not found:
            return
        at, marker = min(found)
        handled += 1
        if budget is not None and handled > budget:
            raise MalformedCircuit(
                f"holds more than {budget:,} comments, strings and declarations, more than a "
                "circuit within the policy can need",
                hint="submit the circuit without comments, or split it",
            )
        if share is not None:
            if share.markers <= 0:
                raise _Deferred
            share.markers -= 1
        if marker == "//":
            cursor = _line_end(text, at)
        elif marker == "/*":
            close = text.find("*/", at + 2)
            cursor = len(text) if close < 0 else close + 2
        elif marker in "\"'":
            close = text.find(marker, at + 1)
            one_line = close >= 0 and text.find("\n", at, close) < 0
            cursor = close + 1 if one_line and text.find("\r", at, close) < 0 else at + 1
        else:
            yield at, marker
            cursor = at + len(marker)
        for other, where in following.items():
            if 0 <= where < cursor:
                following[other] = text.find(other, cursor)


def _integer(fmt: str, text: str, what: str) -> int:
    digits = text.strip()
    if len(digits) > _MAX_SIZE_DIGITS:
        raise MalformedCircuit(
            f"declares {what} of {len(digits)} digits", hint="declare registers of plausible size"
        )
    if fmt == "qasm2" and digits.isascii() and digits.isdigit():
        return int(digits)
    if fmt == "qasm3":
        if _DECIMAL.fullmatch(digits):
            return int(digits.replace("_", ""), 10)
        if _PREFIXED.fullmatch(digits):
            return int(digits.replace("_", ""), 0)
    raise MalformedCircuit(
        f"declares {what} {digits[:60]!r}, which is not an integer literal",
        hint="write register sizes as plain integers, e.g. qreg q[5]; or qubit[5] q;",
    )


def _qasm(fmt: str, text: str, budget: int | None, share: _Share | None) -> tuple[int, int]:
    """``(qubits, clbits)`` an OpenQASM program declares, its includes checked; raises
    :class:`MalformedCircuit` (without the circuit's name: the caller adds it)."""
    allowed = STANDARD_INCLUDES[fmt]
    qubits = clbits = includes = 0
    for at, keyword in _markers(fmt, text, budget, share):
        start = at - 2 if keyword == "bit" and text[at - 2 : at] == "qu" else at
        end = at + len(keyword)
        if (start and _word_char(text[start - 1])) or (end < len(text) and _word_char(text[end])):
            continue  # part of a longer name
        if keyword == "include":
            includes += 1
            form = _INCLUDE_FORM.match(text, start)
            name = form.group(1)[1:-1] if form else text[end : end + 60].strip()
            if includes > _MAX_INCLUDES:
                raise MalformedCircuit(
                    f"includes {allowed!r} more than {_MAX_INCLUDES} times",
                    hint="include the standard library once",
                )
            if name != allowed:
                raise MalformedCircuit(
                    f"includes {name[:200]!r}: only {allowed!r}, the standard library, may "
                    "be included",
                    hint="put the definitions you need in the program itself; the broker "
                    "reads no file a circuit names",
                )
        elif keyword in ("qreg", "creg"):
            declaration = _OLD_DECL.match(text, start)
            if declaration is None:
                raise MalformedCircuit(
                    f"has a {keyword} declaration that is not of the form '{keyword} name[size];'",
                    hint="declare registers as qreg q[5]; creg c[5];",
                )
            size = declaration.group(2)
            if size is None and fmt == "qasm2":
                raise MalformedCircuit(f"declares {keyword} without a size")
            count = 1 if size is None else _integer(fmt, size, f"a {keyword} size")
            qubits, clbits = (
                (qubits + count, clbits) if keyword == "qreg" else (qubits, clbits + count)
            )
        else:
            declaration = _NEW_DECL.match(text, start)
            if declaration is None:
                if _NEW_SIZED.match(text, start) and not _NEW_SHORT.match(text, start):
                    raise MalformedCircuit(
                        "has a qubit or bit size that is not a short integer literal",
                        hint="write register sizes as plain integers, e.g. qubit[5] q;",
                    )
                continue  # a subroutine's parameter, a cast, a return type
            kind, size = declaration.group(1), declaration.group(2)
            count = 1 if size is None else _integer(fmt, size, f"a {kind} size")
            qubits, clbits = (
                (qubits + count, clbits) if kind == "qubit" else (qubits, clbits + count)
            )
    if fmt == "qasm3" and "$" in text:
        references = text.count("$")
        if budget is not None and references > 2 * budget:
            raise MalformedCircuit(
                f"holds {references:,} physical qubit references ($), more than a circuit "
                "within the policy can need"
            )
        # Comments included (an over-estimate): the highest index decides the count.
        indices = _PHYSICAL.findall(text)
        if indices:
            highest = max(indices, key=lambda digits: (len(digits.lstrip("0")), digits.lstrip("0")))
            qubits += _integer(fmt, highest, "physical qubit $") + 1
    return qubits, clbits


# ---- the checks ----------------------------------------------------------------------------
class OverPolicy(QSecureError):
    """A declared size over the policy: the broker records ``excess`` as a denial (403)."""

    def __init__(self, excess: Excess) -> None:
        super().__init__(excess.message)
        self.excess = excess


@dataclass(frozen=True)
class _Limits:
    rules: EnvironmentPolicy
    environment: str
    share: _Share | None


def declared_circuits(items: Any) -> list[Declared]:
    """What each circuit of a request's ``circuits`` declares, in order (a QPY entry may hold
    several circuits). Raises :class:`MalformedCircuit`. Does not apply a policy: use
    :func:`check_declared` on untrusted requests, which stops reading at the first limit."""
    return _read(items, None)


def check_declared(
    items: Any, rules: EnvironmentPolicy, environment: str, *, server: bool = False
) -> Excess | None:
    """The first declared size over ``rules`` (circuits, then qubits and clbits per circuit,
    in order), or None. Raises :class:`MalformedCircuit` for a request that is malformed or
    includes a file.

    ``server``: scan OpenQASM only up to the server's share of one request
    (:data:`SERVER_QASM_CHARS` characters, :data:`SERVER_QASM_MARKERS` comments, strings
    and keywords: a few milliseconds); texts beyond it count as one circuit each and are
    left to the parse worker, which checks everything, under its limits, before it
    parses. A crafted multi-megabyte program so costs the server nothing.
    """
    excess: list[Excess] = []
    share = _Share(SERVER_QASM_CHARS, SERVER_QASM_MARKERS) if server else None
    _read(items, (_Limits(rules, environment, share), excess))
    return excess[0] if excess else None


def _read(items: Any, limits: tuple[_Limits, list[Excess]] | None) -> list[Declared]:
    entries = _entries(items)
    files: dict[int, _QpyFile] = {}
    total = 0
    for position, (fmt, data) in enumerate(entries):
        if fmt == "qpy":
            files[position] = _QpyFile(position, data)
            total += files[position].programs
        else:
            total += 1
    if limits is not None:
        rules, env = limits[0].rules, limits[0].environment
        if total > rules.max_circuits_per_job:
            limits[1].append(
                Excess(
                    "max_circuits_per_job",
                    rules.max_circuits_per_job,
                    total,
                    f"{total} circuits exceeds {env} limit {rules.max_circuits_per_job} "
                    "circuits per job",
                )
            )
            return []
    declared: list[Declared] = []
    index = 0
    for position, (fmt, data) in enumerate(entries):
        if fmt == "qpy":
            qpy = files[position]
            sizes = [qpy.circuit(i, start) for i, start in enumerate(qpy.circuit_offsets())]
        else:
            share = None if limits is None else limits[0].share
            budget = None if limits is None else _scan_budget(limits[0].rules)
            try:
                if share is not None:
                    if len(data) > share.chars:
                        raise _Deferred
                    share.chars -= len(data)
                sizes = [_qasm(fmt, data, budget, share)]
            except _Deferred:
                if share is not None:
                    share.chars = share.markers = 0  # the worker checks the rest
                index += 1
                continue
            except MalformedCircuit as exc:
                raise MalformedCircuit(
                    f"circuit {position} ({fmt}) {exc.message}", hint=exc.hint
                ) from None
        for qubits, clbits in sizes:
            declared.append(Declared(position, fmt, qubits, clbits))
            if limits is not None and _over(declared[-1], index, total, limits):
                return declared
            index += 1
    return declared


def _over(circuit: Declared, index: int, total: int, limits: tuple[_Limits, list[Excess]]) -> bool:
    rules, env = limits[0].rules, limits[0].environment
    where = f" (circuit {index})" if total > 1 else ""
    if circuit.qubits > rules.max_qubits:
        limits[1].append(
            Excess(
                "max_qubits",
                rules.max_qubits,
                circuit.qubits,
                f"qubits {circuit.qubits} exceeds {env} limit {rules.max_qubits}{where}",
            )
        )
        return True
    most = max_clbits(rules)
    if circuit.clbits > most:
        limits[1].append(
            Excess(
                "max_clbits",
                most,
                circuit.clbits,
                f"clbits {circuit.clbits} exceeds {env} limit {most} "
                f"(max_qubits x max_depth){where}",
            )
        )
        return True
    return False
