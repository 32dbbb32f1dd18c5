"""Keyed fingerprints of secrets, and finding registered fingerprints in text.

A *fingerprint* is HMAC-SHA-256 (hex) of the exact secret string (UTF-8) under a
256-bit key that is not stored next to the fingerprints: in OpenBao/Vault KV when
the server uses one (read once at start-up with the credentials the process
already has and kept in memory), else a local key file (mode 0600) in the data
dir. Findings, 422 bodies, ledger entries and the injected-value registry carry
fingerprints, never an unkeyed hash: an unsalted SHA-256 of a human-chosen
password is a dictionary-attack target for whoever reads the ledger. (The
OpenBao transit ``hmac`` endpoint was not used: the scanner fingerprints
candidate tokens by the thousand, which must not cost a network round trip each.)

:class:`FingerprintIndex` finds registered values in arbitrary text without
knowing them: the text is cut into candidate tokens (see :func:`candidate_tokens`),
only candidates whose length is a registered length are fingerprinted, and a
fingerprint found in the index is a finding. So a value written raw in a log
line, inside quotes, as ``key=value`` or ``key: value``, in JSON, in CSV or at the
end of a sentence is found.

Deliberately not found: a value split, transformed or encoded (base64, URL
encoding, JSON escapes other than line breaks) in the text; a value glued to
characters that are not separators (``xVALUE``, a path segment ``/VALUE/``); a
value that itself contains separators where those cut it (it is still found
written raw between whitespace); whole values containing whitespace (only their
parts are registered: PEM body lines, secret-named JSON fields, a URL's
password); values shorter than :data:`MIN_REGISTERED_LENGTH` characters.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._lru import LRU
from ..errors import QSecureError
from .models import Detection

if TYPE_CHECKING:
    from ..config import QSecure

__all__ = [
    "KEY_FIELD",
    "MIN_REGISTERED_LENGTH",
    "REGISTRY_PART_TYPE",
    "REGISTRY_TYPE",
    "FingerprintError",
    "FingerprintIndex",
    "Fingerprinter",
    "Registered",
    "candidate_tokens",
    "fingerprinter_from_settings",
    "shape_of",
    "process_fingerprinter",
    "registrable_forms",
    "set_process_fingerprinter",
]

KEY_BYTES = 32
#: Shorter values are not registered: too many words of the text would be candidates.
MIN_REGISTERED_LENGTH = 8
#: Parts of a structured value (PEM lines, JSON fields) shorter than this are not registered.
PART_MIN_LENGTH = 20
REGISTRY_TYPE = "Injected Secret (registry)"
REGISTRY_PART_TYPE = "Injected Secret (registry, part)"
#: The KV v2 field holding the key (standard base64).
KEY_FIELD = "key"
_KEY_ID_MESSAGE = b"jupyter-qsecure fingerprint key id v1"


class FingerprintError(QSecureError):
    """The fingerprint key could not be read or created."""


class Fingerprinter:
    """HMAC-SHA-256 under one key. ``repr`` and errors never show the key."""

    __slots__ = ("_key", "key_id", "source")

    def __init__(self, key: bytes, source: str) -> None:
        if len(key) != KEY_BYTES:
            raise FingerprintError(f"the fingerprint key from {source} is not a 256-bit key")
        self._key = key
        #: Where the key lives (for messages): "local:PATH", "openbao:ADDR MOUNT/PATH", "ephemeral".
        self.source = source
        #: Names the key without revealing it (so a registry can say which key made an entry).
        self.key_id = hmac.new(key, _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:16]

    @classmethod
    def ephemeral(cls) -> Fingerprinter:
        """A random key for this process only (fingerprints comparable within it)."""
        return cls(secrets.token_bytes(KEY_BYTES), "ephemeral")

    def __call__(self, secret: str) -> str:
        """The fingerprint (hex) of the exact string ``secret``."""
        return hmac.new(
            self._key, secret.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()

    def digest(self, data: bytes) -> bytes:
        return hmac.digest(self._key, data, "sha256")

    def __repr__(self) -> str:
        return f"Fingerprinter(key_id={self.key_id}, source={self.source})"

    def __reduce__(self) -> tuple[Any, ...]:  # worker processes of a folder scan
        return (Fingerprinter, (self._key, self.source))


_default: Fingerprinter | None = None
_default_lock = threading.Lock()


def process_fingerprinter() -> Fingerprinter:
    """The fingerprinter of a :class:`~.engine.Scanner` built without one: the one set
    with :func:`set_process_fingerprinter` (the server and the command line set the
    configured key at start), else a key of this process only, so fingerprints are
    keyed even where no key was configured."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Fingerprinter.ephemeral()
    return _default


def set_process_fingerprinter(fingerprinter: Fingerprinter) -> None:
    """Key the fingerprints of every scanner built without an explicit fingerprinter."""
    global _default
    with _default_lock:
        _default = fingerprinter


# ---- where the key lives -----------------------------------------------------------------
def local_key_file(settings: QSecure) -> Path:
    return settings.data_path / "keys" / "fingerprint.key"


def fingerprinter_from_settings(settings: QSecure, *, create: bool) -> Fingerprinter:
    """The configured key: OpenBao KV when ``vault_addr`` is set, else the local key file.

    ``create``: make the key when there is none yet (the server does; the command line
    does not, and uses a one-off key then: nothing can have been fingerprinted with a
    key that does not exist).
    """
    if settings.vault_addr:
        return _from_openbao(settings, create=create)
    path = local_key_file(settings)
    if not create and not path.exists():
        return Fingerprinter.ephemeral()
    from .._keyfile import load_or_create_key

    key = load_or_create_key(path, what="fingerprint key", error=FingerprintError)
    return Fingerprinter(key, f"local:{path}")


def _from_openbao(settings: QSecure, *, create: bool) -> Fingerprinter:
    import hvac.exceptions
    import requests

    from ..vault import layout
    from ..vault.client import client_from_settings

    path = layout.fingerprint_key_path(settings.environment)
    mount = layout.KV_MOUNT
    where = f"{mount}/{path}"
    source = f"openbao:{settings.vault_addr} {where}"
    policy = layout.server_policy(settings.environment)
    fix = (
        f"the server's token needs policy {policy} as `jupyter qsecure vault setup` (or "
        "`vault up`) writes it: re-run that to update the policy"
    )
    client = client_from_settings(settings)
    kv = client.secrets.kv.v2

    def read() -> bytes | None:
        try:
            response = kv.read_secret_version(
                path=path, mount_point=mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return None
        data = ((response or {}).get("data") or {}).get("data") or {}
        try:
            return base64.b64decode(str(data[KEY_FIELD]), validate=True)
        except (KeyError, binascii.Error, ValueError):
            raise FingerprintError(
                f"the fingerprint key at {where} in OpenBao is not a base64 key in field "
                f"{KEY_FIELD!r}",
                hint="restore it from backup, or delete it to have a new one made (existing "
                "fingerprints then no longer match)",
            ) from None

    try:
        key = read()
        if key is None and create:
            fresh = secrets.token_bytes(KEY_BYTES)
            try:  # cas=0: only if nobody created it meanwhile
                kv.create_or_update_secret(
                    path=path,
                    secret={KEY_FIELD: base64.b64encode(fresh).decode("ascii")},
                    cas=0,
                    mount_point=mount,
                )
                key = fresh
            except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden):
                # Lost the race (a check-and-set mismatch, or "update" denied: the policy
                # allows only "create"): use the winner's key.
                key = read()
                if key is None:
                    raise hvac.exceptions.Forbidden() from None
    except hvac.exceptions.Forbidden:
        raise FingerprintError(
            f"OpenBao/Vault at {settings.vault_addr} refused access to the fingerprint key {where}",
            hint=fix,
        ) from None
    except (requests.exceptions.RequestException, hvac.exceptions.VaultError) as exc:
        raise FingerprintError(
            f"cannot read the fingerprint key {where} from OpenBao/Vault at "
            f"{settings.vault_addr} ({type(exc).__name__})",
            hint="start or unseal it (`jupyter qsecure vault up`) or fix BAO_ADDR/VAULT_ADDR",
        ) from None
    if key is None:
        return Fingerprinter.ephemeral()
    return Fingerprinter(key, source)


# ---- what of a value is registered -------------------------------------------------------
#: JSON fields whose value is a secret of its own (``private_key_id``, not ``token_uri``).
_SECRET_FIELD = re.compile(
    r"(?i)(?:^|_)(?:private_?key(?:_?id)?|pass(?:word|wd|phrase)?|secret|api_?key|"
    r"access_?key|token|credentials?)$"
)
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----(.*?)-----END [A-Z0-9 ]+-----", re.S)


def registrable_forms(value: str) -> tuple[str | None, list[str]]:
    """``(whole, parts)`` of ``value`` to fingerprint for the registry.

    ``whole`` is the value itself when a token of text can equal it (no whitespace,
    at least :data:`MIN_REGISTERED_LENGTH` characters). ``parts`` are pieces that can
    be found on their own: each PEM body line, secret-named string fields of a JSON
    value (and their PEM lines), a URL's password.
    """
    whole = value if len(value) >= MIN_REGISTERED_LENGTH and not _has_space(value) else None
    parts: list[str] = []

    def add(piece: str, minimum: int = PART_MIN_LENGTH) -> None:
        if len(piece) >= minimum and not _has_space(piece) and piece != value:
            if piece not in parts:
                parts.append(piece)

    def pem_lines(text: str) -> None:
        for block in _PEM.findall(text):
            for line in block.replace("\\n", "\n").split():
                add(line)

    pem_lines(value)
    stripped = value.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = None
        for key, text in _string_fields(parsed, ""):
            if _SECRET_FIELD.search(key):
                add(text, MIN_REGISTERED_LENGTH)
                pem_lines(text)
    if "://" in value and "@" in value and not _has_space(value):
        # userinfo up to the last '@': urlsplit stops at a '/' inside the password
        userinfo = value.split("://", 1)[1].rpartition("@")[0]
        password = userinfo.partition(":")[2]
        if password:
            add(password, MIN_REGISTERED_LENGTH)
    return whole, parts


def _string_fields(node: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _string_fields(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _string_fields(v, key)
    elif isinstance(node, str):
        yield key, node


def _has_space(text: str) -> bool:
    return any(ch.isspace() for ch in text)


# ---- tokenising ----------------------------------------------------------------------------
# On UTF-8 bytes with bytes.split/translate/replace, which run at C speed: one pass costs
# about 8 ms per MB of text, where a regular-expression pass costs 6 to 20 ms per MB and
# a Python loop per character far more. ASCII separators never occur inside a multi-byte
# UTF-8 sequence, so cutting there is safe.
#: Characters that end a fine token, besides ASCII whitespace ('=' is kept: base64 padding).
_SEP = b"\"'`<>()[]{},;|&*"
_FINE = bytes.maketrans(_SEP, b" " * len(_SEP))
#: Also at '=', sentence punctuation and '@': key=value, key:value, a value ending a
#: sentence, the password in scheme://user:password@host.
_FINER_SEP = _SEP + b"=.:!?@"
_FINER = bytes.maketrans(_FINER_SEP, b" " * len(_FINER_SEP))
_SPACE = frozenset(b" \t\n\r\x0b\x0c")
_FINE_CUT = frozenset(_SEP) | _SPACE
_FINER_CUT = frozenset(_FINER_SEP) | _SPACE

#: How a value is tokenised (see :func:`candidate_tokens`).
Shape = Literal["plain", "punctuated", "raw"]
SHAPES: tuple[Shape, ...] = ("plain", "punctuated", "raw")


def shape_of(value: str) -> Shape:
    """``plain``: no separator inside (random tokens, hex, most base64); ``punctuated``:
    ``=.:!?@`` inside but no quote, bracket or ``,;|&*`` (padded base64, JWTs, DSNs);
    ``raw``: one of those too (some passwords), found only between whitespace."""
    data = value.encode("utf-8", "surrogatepass")
    if any(byte in _FINE_CUT for byte in data):
        return "raw"
    if any(byte in _FINER_CUT for byte in data):
        return "punctuated"
    return "plain"


@functools.lru_cache(maxsize=64)
def _after_assignment(shortest: int) -> re.Pattern[bytes]:
    """What follows each ``=`` or ``:`` up to a separator, ``=`` and ``:`` kept
    (``key=b64==``); a look-ahead, so that matches may overlap (``url=https://...``)."""
    return re.compile(rb"[=:](?=([^\s\"'`<>()\[\]{},;|&*]{%d,}+))" % max(1, shortest))


def candidate_tokens(
    text: str,
    plain: frozenset[int],
    punctuated: frozenset[int] = frozenset(),
    raw: frozenset[int] = frozenset(),
) -> set[bytes]:
    """Candidate tokens of ``text`` (UTF-8) of a registered length in bytes, by shape.

    ``plain`` lengths (:func:`shape_of`): the tokens cut at whitespace, quotes,
    brackets and ``,;|&*=.:!?@``. Any context that ends a plain value at separators
    (JSON, CSV, ``key=value``, ``key: value``, Python reprs, the end of a sentence, a
    URL's password) makes it one of these. ``punctuated`` lengths: the tokens cut only
    at whitespace, quotes, brackets and ``,;|&*`` (JSON, CSV, reprs), and what follows
    each ``=`` or ``:`` up to such a cut (``key=base64==``). ``raw`` lengths: each
    whitespace-separated word (the value written raw). JSON ``\\n`` escapes cut
    tokens too (a PEM key inside a JSON string). One pass of the text per shape
    present, two for punctuated values.
    """
    if not text or not (plain or punctuated or raw):
        return set()
    data = text.encode("utf-8", "surrogatepass")
    unescaped = data.replace(b"\\n", b"  ") if b"\\n" in data else data
    out: set[bytes] = set()
    if plain:
        out.update(t for t in unescaped.translate(_FINER).split() if len(t) in plain)
    if punctuated:
        out.update(t for t in unescaped.translate(_FINE).split() if len(t) in punctuated)
        found = _after_assignment(min(punctuated)).findall(data)
        out.update(t for t in found if len(t) in punctuated)
    if raw:
        out.update(w for w in data.split() if len(w) in raw)
    return out


# ---- the index -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Registered:
    """What a fingerprint in the registry stands for (never the value)."""

    name: str
    injected_on: str  # YYYY-MM-DD of the last injection
    length: int  # of the value in UTF-8 bytes: the tokeniser's pre-filter
    shape: Shape = "raw"  # which separators the value holds (shape_of): how to tokenise
    part: bool = False
    environment: str = ""


class FingerprintIndex:
    """Registered fingerprints (one key), by fingerprint (hex); finds their values in text."""

    def __init__(
        self,
        fingerprinter: Fingerprinter,
        registered: Mapping[str, Registered],
        *,
        cache_entries: int = 50_000,
    ) -> None:
        self.fingerprinter = fingerprinter
        self._registered = {bytes.fromhex(fp): info for fp, info in registered.items()}
        self.lengths = {
            shape: frozenset(r.length for r in registered.values() if r.shape == shape)
            for shape in SHAPES
        }
        self._cache: LRU[bytes, tuple[Detection, ...]] = LRU(cache_entries)

    @classmethod
    def of_values(
        cls, fingerprinter: Fingerprinter, values: Mapping[str, str], *, on: str = ""
    ) -> FingerprintIndex:
        """An index of ``values`` (name -> value), e.g. for tests and benchmarks."""
        return cls(
            fingerprinter,
            {
                fingerprinter(value): Registered(
                    name, on, len(value.encode("utf-8", "surrogatepass")), shape_of(value)
                )
                for name, value in values.items()
            },
        )

    def __bool__(self) -> bool:
        return bool(self._registered)

    def __len__(self) -> int:
        return len(self._registered)

    def __repr__(self) -> str:
        return f"FingerprintIndex({len(self._registered)} fingerprints, key {self.fingerprinter.key_id})"

    def __reduce__(self) -> tuple[Any, ...]:  # worker processes of a folder scan
        return (
            FingerprintIndex,
            (self.fingerprinter, {d.hex(): r for d, r in self._registered.items()}),
        )

    def find(self, text: str, key: bytes | None = None) -> list[Detection]:
        """Registered values in ``text``. ``key``: a digest of ``text`` to cache the result by."""
        if not self or not text:
            return []
        if key is not None:
            hit = self._cache.get(key)
            if hit is not None:
                return list(hit)
        found: list[Detection] = []
        digest = self.fingerprinter.digest
        lengths = self.lengths
        for candidate in candidate_tokens(
            text, lengths["plain"], lengths["punctuated"], lengths["raw"]
        ):
            mac = digest(candidate)
            info = self._registered.get(mac)
            if info is None:
                continue
            token = candidate.decode("utf-8", "surrogatepass")
            kind = REGISTRY_PART_TYPE if info.part else REGISTRY_TYPE
            start = text.find(token)
            while start >= 0:
                found.append(
                    Detection(
                        kind,
                        token,
                        start,
                        start + len(token),
                        fingerprint=mac.hex(),
                        secret_name=info.name,
                        injected_on=info.injected_on,
                    )
                )
                start = text.find(token, start + len(token))
        found.sort(key=lambda d: (d.start, d.end))
        if key is not None:
            self._cache.put(key, tuple(found))
        return found
