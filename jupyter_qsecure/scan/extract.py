"""Turn a notebook into the texts it holds, each with its location ("text units").

What is extracted, and how (issue 3):

- cell sources (code, markdown, raw), as they are;
- stream outputs, consecutive ones of the same name joined first so a secret
  split across two outputs is found; ANSI escape codes stripped;
- ``execute_result``/``display_data``: every text-like MIME type. ``text/html`` and
  SVG have tags removed and entities unescaped (link targets are kept as extra
  lines); JSON bundles (``application/json``, ``*+json``) are walked value by value;
  everything else textual (``text/*``, JavaScript) is scanned as it is;
- ``error`` outputs: ename, evalue and the traceback with ANSI codes stripped;
- cell, output and notebook metadata (widget state included), walked value by value;
- attachments, whatever their MIME type: nbformat stores them base64-encoded, so they
  are decoded first (:func:`decode_text`) and scanned as text, SVG or HTML;
- HTML and SVG are scanned as what a person sees (:func:`rendered_text`: tags removed,
  entities decoded, nothing inserted), so a value split over ``<tspan>`` or syntax
  highlighting ``<span>`` elements is found whole.

Deliberately skipped: binary payloads (``image/png`` and other base64 MIME data,
``data:`` URI payloads inside texts, long base64 JSON values that decode to binary,
such as widget buffers, attachments that decode to binary). They are not text;
scanning them only produces noise. Archives (gzip, zip) are not opened.

JSON values are rendered one per line as ``"key": "value"`` so keyword detectors
see the key next to the value, with the value *decoded* (no JSON escaping: the
escaped quotes of the raw ``.ipynb`` hide keyword secrets from raw-JSON scanners).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import html
import marshal
import os
import pickle
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .context import table_lines
from .models import Where

PathKey = str | int

#: Detector profiles: a file-name hint that selects detect-secrets' keyword syntax.
PROFILE_CODE = "cell.py"
PROFILE_MARKDOWN = "cell.md"
PROFILE_OUTPUT = "output.txt"
PROFILE_JSON = "values.json"

_ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_DATA_URI_RE = re.compile(
    r"data:[\w.+-]*/[\w.+-]*(?:;[\w.+-]+=[\w.+-]+)*;base64,([A-Za-z0-9+/=\s]{16,})"
)
_TAG_RE = re.compile(r"<(/?)([A-Za-z][\w:-]*)?[^>]*>|<!--.*?-->", re.S)
_BLOCK_TAGS = frozenset(
    "br p div tr li ul ol table thead tbody h1 h2 h3 h4 h5 h6 pre hr dt dd section "
    "text tspan title desc".split()
)
_LINK_ATTR_RE = re.compile(
    r"""(?:href|src|action|data-url|content|HREF|SRC)=\s*(?!["']#)(?:"([^"]*)"|'([^']*)')"""
)
_B64_CHARS_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")

#: Notebook metadata (widget state) whose compact dump is at least this long, and HTML/SVG
#: at least this long, are rendered once per distinct content (see json_unit).
MEMO_MIN_CHARS = 512


class Memo(Protocol):
    def get(self, key: Any) -> Any: ...
    def put(self, key: Any, value: Any) -> None: ...


#: A JSON string value at least this long, pure base64 and decoding to non-text, is a
#: binary payload (e.g. widget state buffers) and is skipped.
BINARY_B64_MIN = 256


def strip_ansi(text: str) -> str:
    """Remove ANSI escape sequences (colours, cursor moves) from a traceback or log."""
    if "\x1b" not in text:
        return text
    return _ANSI_RE.sub("", text)


def mask_data_uris(text: str) -> str:
    """Replace the payload of ``data:…;base64,`` URIs with ``*`` (same length, newlines kept)."""
    if "base64," not in text:
        return text

    def _mask(match: re.Match[str]) -> str:
        whole = match.group(0)
        cut = match.start(1) - match.start(0)
        return whole[:cut] + re.sub(r"[^\n]", "*", whole[cut:])

    return _DATA_URI_RE.sub(_mask, text)


def html_to_text(markup: str, *, keep_text: bool = True) -> str:
    """Text of an HTML/SVG fragment: tags removed, entities unescaped, link targets kept.

    Block-level tags become line breaks, inline tags a space; ``href``/``src`` values
    (other than ``data:`` URIs and ``#fragments``) are appended one per line, and so are
    table cells named as credentials (:func:`.context.table_lines`).
    """
    links = [
        value
        for m in _LINK_ATTR_RE.finditer(markup)
        for value in (m.group(1) if m.group(1) is not None else m.group(2),)
        if value and not value.startswith(("data:", "#"))
    ]

    def _tag(match: re.Match[str]) -> str:
        name = (match.group(2) or "").lower()
        return "\n" if name in _BLOCK_TAGS else " "

    text = html.unescape(_TAG_RE.sub(_tag, markup)) if keep_text else ""
    if links:
        text = text + "\n" + "\n".join(html.unescape(v) for v in links)
    # Table cells a header or first cell names as a credential, as '"name": "value"'
    # lines (the rendered text loses which header a cell is under); see .context.
    pairs = table_lines(markup)
    if pairs:
        text = text + "\n" + "\n".join(pairs)
    return text


def rendered_text(markup: str, kind: str) -> str:
    """What a person sees of HTML or SVG (``kind`` ``"html"``/``"svg"``), plus link targets.

    Tags are removed *without* inserting anything, so text split over elements
    (``<tspan>``, highlighter ``<span>``) stays joined; entities are decoded;
    ``href``/``src`` values (other than ``data:`` URIs and ``#fragments``) follow,
    one per line.
    """
    # Imported here: the rendered-text module is shared with output masking, and only
    # markup needs it.
    from .rendered import visible_only

    shown = visible_only(markup, kind)
    return shown + html_to_text(markup, keep_text=False)


def markup_kind(mime_or_name: str) -> str | None:
    """``"svg"``/``"html"`` for an SVG or HTML MIME type or file name, else None."""
    lowered = mime_or_name.lower()
    if lowered == "image/svg+xml" or lowered.endswith(".svg"):
        return "svg"
    if lowered in ("text/html", "application/xhtml+xml") or lowered.endswith(
        (".html", ".htm", ".xhtml")
    ):
        return "html"
    return None


def _rendered_text_memo(raw: str, kind: str, memo: Memo | None) -> str:
    if memo is None or len(raw) < MEMO_MIN_CHARS:
        return rendered_text(raw, kind)
    digest = hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=20).digest()
    key = ("rendered", kind, digest)
    hit = memo.get(key)
    if isinstance(hit, str):
        return hit
    text = rendered_text(raw, kind)
    memo.put(key, text)
    return text


# ---------------------------------------------------------------- bytes to text
#: Byte order marks, longest first (the UTF-32-LE mark starts with the UTF-16-LE one).
#: Each codec re-encodes with a mark, so a redacted copy keeps its encoding.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: Control bytes that text does not contain (tab, newlines, form feed and ESC excluded).
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
#: Share of control bytes above which content is binary (random or compressed data has
#: about 11%; text in any 8-bit code page has next to none).
BINARY_CONTROL_SHARE = 0.05


@dataclass(frozen=True)
class DecodedText:
    """A file's text and the codec that gives back its bytes (``text.encode(codec)``)."""

    text: str
    codec: str


def is_binary(raw: bytes) -> bool:
    """True for bytes that are not text: a NUL near the start (as git judges), or many
    control characters (more than :data:`BINARY_CONTROL_SHARE`)."""
    if b"\0" in raw[:8192]:
        return True
    controls = len(raw) - len(raw.translate(None, _CONTROL_BYTES))
    return controls > BINARY_CONTROL_SHARE * len(raw)


def decode_text(raw: bytes) -> DecodedText | None:
    """The text of a file's bytes, or None if they are binary.

    In order: a byte order mark (UTF-32, UTF-8, UTF-16, either byte order); then, for
    bytes that are not binary (:func:`is_binary`), strict UTF-8, Windows-1252 and
    finally Latin-1 (which decodes any byte). The 8-bit fallbacks keep every ASCII
    character, which is what secrets are made of, whatever the real code page was.
    Not detected: UTF-16/32 without a byte order mark (they have NUL bytes and count
    as binary), other multi-byte encodings (Shift-JIS, GB18030: their ASCII survives
    the fallback).
    """
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            try:
                return DecodedText(raw.decode(codec), codec)
            except UnicodeDecodeError:
                break  # not what the mark says: judge the bytes themselves
    if is_binary(raw):
        return None
    try:
        return DecodedText(raw.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return DecodedText(raw.decode("cp1252"), "cp1252")
    except UnicodeDecodeError:  # one of the five bytes cp1252 leaves undefined
        return DecodedText(raw.decode("latin-1"), "latin-1")


def strict_base64(value: str) -> bytes | None:
    """The bytes of a string that is entirely base64 (whitespace ignored), else None."""
    compact = "".join(value.split())
    if not compact or len(compact) % 4 or not _B64_CHARS_RE.fullmatch(compact):
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def is_binary_base64(value: str) -> bool:
    """True for a long pure-base64 string whose decoded bytes are not UTF-8 text."""
    if len(value) < BINARY_B64_MIN:
        return False
    compact = value.replace("\n", "").replace("\r", "")
    if not _B64_CHARS_RE.fullmatch(compact):
        return False
    try:
        raw = base64.b64decode(compact[: (len(compact) // 4) * 4], validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        # incremental: the first 4 KiB may end inside a character, which is not binary
        codecs.getincrementaldecoder("utf-8")().decode(raw[:4096], final=False)
    except UnicodeDecodeError:
        return True
    return False


@dataclass(frozen=True)
class Piece:
    """Where a stretch ``[start, end)`` of a unit's text came from in the notebook.

    ``path`` leads from the notebook dict to a ``str``. When ``exact`` is true the unit
    text over the range equals that string, so a span maps back character for
    character; otherwise the text was transformed (ANSI, HTML) and redaction falls
    back to replacing the secret's literal forms in the raw string.
    """

    path: tuple[PathKey, ...]
    start: int
    end: int
    exact: bool
    output: int | None = None


@dataclass
class TextUnit:
    """One text to scan, with its location in the notebook (or file)."""

    text: str
    profile: str
    cell: int | None
    cell_id: str | None
    where: Where | None
    mime: str | None = None
    output: int | None = None
    pieces: tuple[Piece, ...] = field(default_factory=tuple)
    #: Count ``line`` from the start of the piece (stream output), not of the unit.
    line_per_piece: bool = False

    def piece_at(self, offset: int) -> Piece | None:
        for piece in self.pieces:
            if piece.start <= offset < piece.end or (piece.start == piece.end == offset):
                return piece
        return self.pieces[-1] if self.pieces else None

    def line_of(self, offset: int) -> int:
        base = 0
        if self.line_per_piece:
            piece = self.piece_at(offset)
            if piece is not None:
                base = piece.start
        return self.text.count("\n", base, offset) + 1


def as_text(value: Any) -> str:
    """nbformat multiline string (``str`` or list of ``str``) → ``str``."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        try:
            return "".join(value)  # the usual case: every item a str
        except TypeError:
            return "".join(v for v in value if isinstance(v, str))
    return ""


def _is_textual_mime(mime: str) -> bool:
    if mime.startswith("image/"):
        return mime == "image/svg+xml"
    if mime.startswith("text/"):
        return True
    return mime.endswith(("json", "javascript", "ecmascript", "xml", "latex", "yaml", "toml"))


def _is_json_mime(mime: str) -> bool:
    return mime == "application/json" or mime.endswith("+json")


# ---------------------------------------------------------------- JSON walking
#: Below this nesting depth JSON paths stop growing: leaves deeper down are reported
#: (and redacted) as part of their ancestor at this depth. Keeps deep nesting linear.
MAX_JSON_DEPTH = 64


#: JSON leaves that are never text (exact classes: a str subclass is still walked).
_SCALARS = frozenset({int, float, bool, type(None)})


def walk_json(
    value: Any, path: tuple[PathKey, ...], key: str = ""
) -> Iterator[tuple[tuple[PathKey, ...], str, str, bool]]:
    """Yield ``(path, key, string, exact)`` for every string leaf.

    Iterative, so deep nesting cannot overflow the stack; ``exact`` is false for a
    leaf deeper than :data:`MAX_JSON_DEPTH`, whose ``path`` is then its ancestor's.
    """
    base = len(path)
    stack: list[tuple[Any, tuple[PathKey, ...], str]] = [(value, path, key)]
    while stack:
        node, node_path, node_key = stack.pop()
        deep = len(node_path) - base >= MAX_JSON_DEPTH
        if isinstance(node, str):
            yield node_path, node_key, node, not deep
        elif isinstance(node, dict) or (not isinstance(node, list) and isinstance(node, Mapping)):
            for k, v in reversed(list(node.items())):
                if v.__class__ not in _SCALARS:  # numbers hold no text: not walked
                    stack.append((v, node_path if deep else (*node_path, k), str(k)))
        elif isinstance(node, (list, tuple)):
            for i in range(len(node) - 1, -1, -1):
                v = node[i]
                if v.__class__ not in _SCALARS:
                    stack.append((v, node_path if deep else (*node_path, i), node_key))


def json_unit(
    value: Any,
    path: tuple[PathKey, ...],
    *,
    cell: int | None,
    cell_id: str | None,
    where: Where,
    mime: str | None = None,
    output: int | None = None,
    memo: Memo | None = None,
) -> TextUnit | None:
    """Render the string leaves of a JSON value as ``"key": "value"`` lines.

    With ``memo``, a big value (widget state…) is rendered once per distinct content.
    """
    key: Any = None
    if memo is not None and isinstance(value, (dict, list)) and value:
        # marshal/pickle are faithful (injective) serialisations of JSON data and about
        # 3x faster than repr(); marshal refuses dict subclasses (NotebookNode).
        try:
            blob = marshal.dumps(value)
        except ValueError:
            try:
                blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except (TypeError, ValueError, AttributeError, RecursionError, pickle.PicklingError):
                blob = b""  # not JSON data (pickle: AttributeError for a local object)
        if len(blob) >= MEMO_MIN_CHARS:
            digest = hashlib.sha256(blob)  # SHA-NI: ~2x blake2b here
            key = (path, cell, cell_id, where, mime, output, digest.digest())
            hit = memo.get(key)
            if hit is not None:
                return hit if isinstance(hit, TextUnit) else None
    unit = _render_json(
        value, path, cell=cell, cell_id=cell_id, where=where, mime=mime, output=output
    )
    if key is not None and memo is not None:
        memo.put(key, unit if unit is not None else False)
    return unit


def _render_json(
    value: Any,
    path: tuple[PathKey, ...],
    *,
    cell: int | None,
    cell_id: str | None,
    where: Where,
    mime: str | None,
    output: int | None,
) -> TextUnit | None:
    parts: list[str] = []
    pieces: list[Piece] = []
    pos = 0
    for leaf_path, key, text, exact in walk_json(value, path):
        if not text or is_binary_base64(text):
            continue
        masked = mask_data_uris(text)
        prefix = f'"{key}": "' if key else '"'
        start = pos + len(prefix)
        parts.append(prefix + masked + '"\n')
        pieces.append(
            Piece(leaf_path, start, start + len(masked), exact and masked == text, output)
        )
        pos = start + len(masked) + 2
    if not parts:
        return None
    return TextUnit(
        text="".join(parts),
        profile=PROFILE_JSON,
        cell=cell,
        cell_id=cell_id,
        where=where,
        mime=mime,
        output=output,
        pieces=tuple(pieces),
    )


def _plain_unit(
    text: str,
    path: tuple[PathKey, ...],
    profile: str,
    *,
    cell: int | None,
    cell_id: str | None,
    where: Where,
    mime: str | None = None,
    output: int | None = None,
) -> TextUnit | None:
    if not text:
        return None
    masked = mask_data_uris(text)
    return TextUnit(
        text=masked,
        profile=profile,
        cell=cell,
        cell_id=cell_id,
        where=where,
        mime=mime,
        output=output,
        pieces=(Piece(path, 0, len(masked), masked == text, output),),
    )


def _transformed_unit(
    raw: str,
    text: str,
    path: tuple[PathKey, ...],
    *,
    cell: int | None,
    cell_id: str | None,
    where: Where,
    mime: str | None,
    output: int | None,
) -> TextUnit | None:
    if not text.strip():
        return None
    masked = mask_data_uris(text)
    exact = masked == raw
    return TextUnit(
        text=masked,
        profile=PROFILE_OUTPUT,
        cell=cell,
        cell_id=cell_id,
        where=where,
        mime=mime,
        output=output,
        pieces=(Piece(path, 0, len(masked), exact, output),),
    )


def mime_units(
    bundle: Mapping[str, Any],
    path: tuple[PathKey, ...],
    *,
    cell: int | None,
    cell_id: str | None,
    where: Where,
    output: int | None,
    memo: Memo | None = None,
) -> Iterator[TextUnit]:
    """Units of a MIME bundle (output data or attachment); binary MIME types skipped."""
    for mime, value in bundle.items():
        if not isinstance(mime, str):
            continue
        if where == "attachments" and isinstance(value, (str, list)):
            attachment = _attachment_unit(
                mime, as_text(value), (*path, mime), cell=cell, cell_id=cell_id, memo=memo
            )
            if attachment is not None:
                yield attachment
            continue
        if not _is_textual_mime(mime):
            continue
        mpath = (*path, mime)
        unit: TextUnit | None
        if _is_json_mime(mime) and not isinstance(value, (str, list)):
            unit = json_unit(
                value,
                mpath,
                cell=cell,
                cell_id=cell_id,
                where=where,
                mime=mime,
                output=output,
                memo=memo,
            )
        else:
            raw = as_text(value)
            if not raw:
                continue
            kind = markup_kind(mime)
            if kind is not None:
                text = _rendered_text_memo(raw, kind, memo)
            else:
                text = strip_ansi(raw)
            unit = _transformed_unit(
                raw, text, mpath, cell=cell, cell_id=cell_id, where=where, mime=mime, output=output
            )
        if unit is not None:
            yield unit


def _attachment_unit(
    mime: str,
    raw: str,
    path: tuple[PathKey, ...],
    *,
    cell: int | None,
    cell_id: str | None,
    memo: Memo | None,
) -> TextUnit | None:
    """An attachment: nbformat stores its bytes base64-encoded, whatever the MIME type.

    Base64 of text is decoded and scanned (SVG and HTML as rendered text); base64 of
    binary is skipped. A string that is not base64 is scanned as stored, and so is a
    short one (it may be a token that is base64 by chance).
    """
    if not raw:
        return None
    data = strict_base64(raw)
    decoded = decode_text(data) if data is not None else None
    if decoded is not None:
        source = decoded.text
    elif data is None or (_is_textual_mime(mime) and len(raw) < BINARY_B64_MIN):
        source = raw  # stored as text, or short enough to be a token rather than base64
    else:
        return None  # base64 of binary: an image, an archive
    kind = markup_kind(mime)
    text = _rendered_text_memo(source, kind, memo) if kind is not None else strip_ansi(source)
    if decoded is not None and len(raw) < BINARY_B64_MIN:
        text += "\n" + raw  # a short text can be base64 by chance: scan it as stored too
    # Decoded or rendered: not the stored string, so redaction replaces literal forms
    # (or the whole attachment) rather than character ranges.
    return _transformed_unit(
        raw if decoded is None else "",
        text,
        path,
        cell=cell,
        cell_id=cell_id,
        where="attachments",
        mime=mime,
        output=None,
    )


def _stream_unit(
    group: Sequence[tuple[int, Mapping[str, Any]]],
    cell_path: tuple[PathKey, ...],
    *,
    cell: int,
    cell_id: str | None,
) -> TextUnit | None:
    parts: list[str] = []
    pieces: list[Piece] = []
    pos = 0
    for index, out in group:
        raw = as_text(out.get("text"))
        text = mask_data_uris(strip_ansi(raw))
        parts.append(text)
        pieces.append(
            Piece((*cell_path, "outputs", index, "text"), pos, pos + len(text), text == raw, index)
        )
        pos += len(text)
    joined = "".join(parts)
    if not joined:
        return None
    first = group[0][0]
    return TextUnit(
        text=joined,
        profile=PROFILE_OUTPUT,
        cell=cell,
        cell_id=cell_id,
        where="outputs",
        mime=None,
        output=first,
        pieces=tuple(pieces),
        line_per_piece=True,
    )


def _error_unit(
    out: Mapping[str, Any], path: tuple[PathKey, ...], *, cell: int, cell_id: str | None, index: int
) -> TextUnit | None:
    parts: list[str] = []
    pieces: list[Piece] = []
    pos = 0
    fields: list[tuple[tuple[PathKey, ...], str]] = [
        ((*path, "ename"), as_text(out.get("ename"))),
        ((*path, "evalue"), as_text(out.get("evalue"))),
    ]
    traceback = out.get("traceback") or []
    if isinstance(traceback, list):
        fields += [((*path, "traceback", i), as_text(t)) for i, t in enumerate(traceback)]
    for fpath, raw in fields:
        text = mask_data_uris(strip_ansi(raw))
        parts.append(text + "\n")
        pieces.append(Piece(fpath, pos, pos + len(text), text == raw, index))
        pos += len(text) + 1
    joined = "".join(parts)
    if not joined.strip():
        return None
    return TextUnit(
        text=joined,
        profile=PROFILE_OUTPUT,
        cell=cell,
        cell_id=cell_id,
        where="outputs",
        output=index,
        pieces=tuple(pieces),
    )


def _flush_streams(
    group: list[tuple[int, Mapping[str, Any]]],
    units: list[TextUnit],
    cpath: tuple[PathKey, ...],
    kw: dict[str, Any],
) -> None:
    if group:
        unit = _stream_unit(group, cpath, **kw)
        if unit is not None:
            units.append(unit)
        group.clear()


def notebook_units(nb: Mapping[str, Any], memo: Memo | None = None) -> list[TextUnit]:
    """Every text unit of a (v4) notebook, in document order, notebook metadata last."""
    units: list[TextUnit] = []
    for ci, cell in enumerate(notebook_cells(nb)):
        units.extend(cell_units(ci, cell, memo))
    units.extend(metadata_units(nb.get("metadata"), memo))
    return units


def notebook_cells(nb: Mapping[str, Any]) -> Any:
    """What :func:`notebook_units` walks as the cells (each passed to :func:`cell_units`)."""
    return nb.get("cells") or []


def cell_units(ci: int, cell: Any, memo: Memo | None = None) -> list[TextUnit]:
    """The text units of cell ``ci`` (nothing when ``cell`` is not a mapping)."""
    units: list[TextUnit] = []
    if not isinstance(cell, Mapping):
        return units
    cell_id = cell.get("id") if isinstance(cell.get("id"), str) else None
    cpath: tuple[PathKey, ...] = ("cells", ci)
    kw: dict[str, Any] = {"cell": ci, "cell_id": cell_id}
    ctype = cell.get("cell_type")
    profile = PROFILE_CODE if ctype == "code" else PROFILE_MARKDOWN
    unit = _plain_unit(
        as_text(cell.get("source")), (*cpath, "source"), profile, where="source", **kw
    )
    if unit is not None:
        units.append(unit)
    outputs = cell.get("outputs") or []
    group: list[tuple[int, Mapping[str, Any]]] = []

    for oi, out in enumerate(outputs if isinstance(outputs, list) else []):
        if not isinstance(out, Mapping):
            continue
        otype = out.get("output_type")
        if otype == "stream":
            if group and group[-1][1].get("name") != out.get("name"):
                _flush_streams(group, units, cpath, kw)
            group.append((oi, out))
            continue
        _flush_streams(group, units, cpath, kw)
        opath: tuple[PathKey, ...] = (*cpath, "outputs", oi)
        if otype in ("execute_result", "display_data", "update_display_data"):
            data = out.get("data")
            if isinstance(data, Mapping):
                units.extend(
                    mime_units(data, (*opath, "data"), where="outputs", output=oi, memo=memo, **kw)
                )
        elif otype == "error":
            eu = _error_unit(out, opath, index=oi, **kw)
            if eu is not None:
                units.append(eu)
        meta = out.get("metadata")
        if meta:
            mu = json_unit(meta, (*opath, "metadata"), where="outputs", output=oi, memo=memo, **kw)
            if mu is not None:
                units.append(mu)
    _flush_streams(group, units, cpath, kw)
    attachments = cell.get("attachments")
    if isinstance(attachments, Mapping):
        for name, bundle in attachments.items():
            if isinstance(bundle, Mapping):
                units.extend(
                    mime_units(
                        bundle,
                        (*cpath, "attachments", name),
                        where="attachments",
                        output=None,
                        **kw,
                    )
                )
    meta = cell.get("metadata")
    if meta:
        mu = json_unit(meta, (*cpath, "metadata"), where="metadata", memo=memo, **kw)
        if mu is not None:
            units.append(mu)
    return units


def metadata_units(meta: Any, memo: Memo | None = None) -> list[TextUnit]:
    """The text units of the notebook's own metadata (``meta``: ``nb.get("metadata")``)."""
    if not meta:
        return []
    mu = json_unit(meta, ("metadata",), cell=None, cell_id=None, where="metadata", memo=memo)
    return [mu] if mu is not None else []


def text_file_unit(text: str, filename: str) -> TextUnit | None:
    """A non-notebook text file as one unit (scanned line by line, keyword syntax by suffix)."""
    if not text:
        return None
    masked = mask_data_uris(text)
    suffix = os.path.splitext(filename)[1].lower()
    return TextUnit(
        text=masked,
        profile="file" + suffix,
        cell=None,
        cell_id=None,
        where=None,
        pieces=(Piece(("text",), 0, len(masked), masked == text),),
    )


def rendered_file_unit(text: str, filename: str) -> TextUnit | None:
    """For an SVG or HTML file, a unit of what it shows (:func:`rendered_text`), else None.

    Scanned besides the file's own text, so a value split over elements is found; the
    caller drops what this unit finds that the file's own text already shows.
    """
    kind = markup_kind(filename)
    if kind is None or not text:
        return None
    shown = mask_data_uris(rendered_text(text, kind))
    if not shown.strip():
        return None
    return TextUnit(
        text=shown,
        profile=PROFILE_OUTPUT,
        cell=None,
        cell_id=None,
        where=None,
        pieces=(Piece(("text",), 0, len(shown), False),),
    )
