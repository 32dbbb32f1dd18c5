"""Context detection: a value next to a word that names it as a credential, in any syntax.

detect-secrets' keyword plugin knows a few code syntaxes per file type; people leak
secrets in many more places of a notebook (issue 13): ``password: X`` printed to a
stream or written in markdown prose, ``{'credential': 'X'}`` reprs, JSON keys at any
depth, HTML table rows, ``?api_key=X`` in a traceback's URL, unquoted YAML/INI/env/TOML,
XML elements and attributes, Go raw strings. This module finds them all with one
scanner, and reports each as a ``Secret Keyword`` (the type detect-secrets' keyword
plugin gives the same kind of find, so the type does not depend on which saw it):

1. *key names*: every occurrence of a credential stem (``pass``, ``secret``, ``token``,
   ``key``, ``credential``, ``auth``, ``sig``) in the lower-cased text is widened to the
   identifier around it (``db_password``, ``GITHUB_TOKEN``, ``x-api-key``, ``apiKey``,
   ``config.password``, ``API key``), which names a credential when its last word does
   (:func:`names_credential`: ``password_hash``, ``token_count``, ``key_id``,
   ``routing_pass``, ``publicKeyToken`` do not; ``key`` and ``sig`` alone only as URL
   query parameters);
2. *syntax*: what follows the name is parsed as one of ``=``, ``:``, ``:=``, ``=>``,
   ``==``, ``<-``, ``is``, an XML element's ``>`` (namespaced too), a URL query's ``=``,
   a command line flag, markdown emphasis around the name (``**Password:**``), a YAML
   block scalar, or two spaces or a tab when the name starts its line (a printed
   Series, a TSV); then a quoted value (``"…"``, ``'…'``, a Go raw ```…```) or an
   unquoted one (to a space, quote, ``,;&<>()[]{}|``). Fixed shapes without a
   separator: ``auth=("user", "pw")``, SQL ``PASSWORD 'pw'``, a ``.netrc`` line,
   ``curl -u user:pw``, ``docker login -p``, ``<input type="password" value=…>``, a
   Dockerfile ``ENV NAME value``, and name/value pairs (``{"name": "API_TOKEN",
   "value": …}``, ``<add key="ApiKey" value="…"/>``);
3. *precision from context* (:func:`plausible_secret`): placeholders and examples
   (``xxxx``, ``<your-token>``, ``${VAR}``, ``changeme``, ``your_api_key_here``, ``***``,
   public documentation keys ending in ``EXAMPLE``), references (``os.environ[…]``,
   ``getpass()``, calls, variables), paths, URLs, host names, numbers, dates,
   versions, UUIDs, words, low-entropy or sequential strings, and hex digests next to a
   hash word are not secrets (:func:`ruled_out` applies the same evidence to the other
   detectors' keyword and entropy finds). In a code cell an unquoted value is an
   expression, so only quoted values count there (except on ``%``/``!`` lines, in
   comments, inside string literals and in cells run by another interpreter, such as
   ``%%bash`` or ``%%writefile``).

Tables: :func:`table_lines` renders an HTML table cell whose header cell (``<th>`` of
the header row, or the row's own first cell) names a credential as a ``"name":
"value"`` line, which :mod:`.extract` appends to the text of an HTML output;
:func:`context_hits` reads raw or escaped ``<table>`` markup in other texts (markdown),
markdown pipe tables and text tables with aligned columns (a DataFrame's repr).

Hand-written rather than taken from a library: the rule engines we use (detect-secrets,
kingfisher) match one syntax per rule and need a provider format or a quoted value;
what is needed here is the same key/value parse across every syntax, cheap enough
to run on every autosave (one regex pass over the text for the stems, then work only
at the stems).
"""

from __future__ import annotations

import bisect
import functools
import html
import math
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

from .models import Detection

TYPE = "Secret Keyword"
#: How far back from a name the line around it is looked at (bounded work per hit).
LOOKBACK = 4096

# ---------------------------------------------------------------- key names
#: Stems searched in the lower-cased text; each hit is widened to a whole key name.
_STEM = re.compile(r"pass|pwd|secret|token|key|credential|auth|sig|creds")

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[_.\-\s]+")

#: A key name's last word that alone names a credential.
_LAST_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "passcode",
        "secret",
        "token",
        "apikey",
        "credential",
        "credentials",
        "creds",
        "auth",
        "authtoken",
        "accesstoken",
        "secretkey",
        "privatekey",
        "accesskey",
        "clientsecret",
    }
)
#: Names that are credentials only as a URL query parameter (``?key=…``, ``&sig=…``).
_QUERY_NAMES = frozenset({"key", "sig", "signature", "apikey", "api_key", "access_token"})
#: Words before ``pass`` that make it a password (``DB_PASS``); elsewhere a "pass" is
#: often a compiler or transpiler pass (``routing_pass``).
_PASS_QUALIFIERS = frozenset(
    {
        "db",
        "user",
        "admin",
        "root",
        "mysql",
        "pg",
        "postgres",
        "sql",
        "smtp",
        "ftp",
        "redis",
        "mail",
        "email",
        "login",
        "ldap",
        "proxy",
        "vpn",
        "wifi",
        "rabbitmq",
        "mongo",
    }
)
#: Suffixes that name a credential inside one word (``dbpassword``, ``myapikey``).
_SUFFIXES = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "secretkey",
    "privatekey",
    "accesskey",
    "credential",
    "credentials",
)
#: Words before ``key`` that make it a credential (``api key``, ``secret_key``...).
_KEY_QUALIFIERS = frozenset(
    {
        "api",
        "secret",
        "private",
        "access",
        "auth",
        "client",
        "encryption",
        "enc",
        "signing",
        "master",
        "account",
        "storage",
        "app",
        "application",
        "subscription",
        "consumer",
        "license",
        "licence",
        "admin",
        "service",
        "session",
        "shared",
        "sas",
        "primary",
        "secondary",
        "developer",
        "dev",
        "personal",
        "openai",
        "anthropic",
        "stripe",
        "mapbox",
        "sendgrid",
        "twilio",
        "hmac",
        "cipher",
        "crypt",
        "decryption",
    }
)
#: Last words that qualify a credential word before them (``password_value``, ``token_b64``).
_VALUE_SUFFIXES = frozenset({"value", "str", "string", "b64", "base64", "raw", "plain", "hex"})
#: Words that make a hex value a digest, not a credential.
_HASH_WORDS = re.compile(
    r"(?i)(?<![a-z])(?:sha\d*|md5|hash(?:es)?|digest|commit|checksum|fingerprint|revision|rev|"
    r"blake2?[bs]?|crc32|etag|oid|object[ _-]?id|hexdigest)(?![a-z])"
)


def key_words(name: str) -> list[str]:
    """``db_password`` → ``["db", "password"]``, ``apiKey`` → ``["api", "key"]``."""
    return [w for w in _SPLIT.split(_CAMEL.sub("_", name).lower()) if w]


@functools.lru_cache(maxsize=4096)
def names_credential(name: str, previous_word: str = "") -> bool:
    """Whether a key name names a credential; ``previous_word`` is the word before it
    in prose (``API key``), used when the name is the bare word ``key``."""
    words = key_words(name)
    if not words or words[0] in ("amz", "goog") or (len(words) > 1 and words[1] == "amz"):
        return False  # X-Amz-Credential: an access key id and a scope, not a secret
    if words[0] == "public":
        return False  # publicKeyToken, public_key: published by design
    last = words[-1].rstrip("0123456789") or words[-1]
    if last in _VALUE_SUFFIXES and len(words) > 1:
        words = words[:-1]
        last = words[-1]
    if last in _LAST_WORDS:
        return True
    if last == "pass":
        return len(words) > 1 and (name.isupper() or words[-2] in _PASS_QUALIFIERS)
    if last == "key":
        before = words[-2] if len(words) > 1 else previous_word.lower()
        return before in _KEY_QUALIFIERS
    return last.endswith(_SUFFIXES) and not last.endswith(("tokens", "secrets"))


# ---------------------------------------------------------------- values
#: Case-insensitive substrings of placeholders.
_PLACEHOLDER_WORDS = (
    "***",
    "...",
    "…",
    "example",
    "sample",
    "dummy",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "your",
    "redacted",
    "hidden",
    "masked",
    "todo",
    "fixme",
    "replace",
    "insert",
    "secret",
    "password",
    "passwd",
    "token",
    "apikey",
    "api_key",
    "«secret:",
)
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
#: Case-sensitive ones (a random token may hold "xXx", hardly "xxxx").
_PLACEHOLDER_RUNS = ("xxxx", "XXXX", "0000000")
_VERSION = re.compile(r"(?i)v?\d+(?:[._-]\d+)+(?:[._+-]?(?:rc|a|b|alpha|beta|dev|post|pre)\d*)*")
_UUID = re.compile(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_DIGEST = re.compile(r"(?i)(?:0x)?(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64})")
_DATE_OR_NUMBER = re.compile(r"[\d\s:.,/+\-TZ]+")
_DOMAIN = re.compile(r"[a-z0-9\-]+(?:\.[a-z0-9\-]+)+")
_IDENTIFIER_WORDS = re.compile(r"_*[A-Za-z]+\d{0,3}(?:[_\-.](?:[A-Za-z]+\d{0,3}|\d{1,3}))*")
_CAMEL_CHUNKS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_WORD_PUNCT = re.compile(r"[A-Za-z.,;:!?'\-]+")
_FILE_SUFFIX = re.compile(
    r"(?i)\.(?:json|txt|pem|key|ya?ml|env|cfg|ini|conf|toml|p12|pfx|crt|cer|pub|csv|"
    r"py|ipynb|sh|log|gpg|asc|der|jks)$"
)
_REFERENCE = re.compile(
    r"(?i)^(?:os\.|env\.|process\.env|sys\.|self\.|config\.|settings\.|secrets\.|getpass|"
    r"input\(|environ|vault:|arn:|ssm:|projects/|file:)"
)


def _shannon(data: str) -> float:
    counts: dict[str, int] = {}
    for ch in data:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _sequential(value: str) -> bool:
    """Mostly runs of consecutive characters (``abcdefgh1234``, ``qwerty``-free)."""
    steps = sum(1 for a, b in zip(value, value[1:], strict=False) if ord(b) - ord(a) in (1, -1))
    return steps >= 0.6 * (len(value) - 1)


#: Each placeholder word as people write it: lower, upper or capitalised (a random token
#: holds some word in mixed case, "TodO", far more often).
_PLACEHOLDER_FORMS = (
    tuple({f for w in _PLACEHOLDER_WORDS for f in (w, w.upper(), w.capitalize())})
    + _PLACEHOLDER_RUNS
)


def _placeholder(value: str) -> bool:
    return any(w in value for w in _PLACEHOLDER_FORMS)


def _identifier(value: str) -> bool:
    """A name in code: ``api_token_v2``, ``MY_API_KEY``, ``layer12``, ``myApiToken1``.

    Letters with at most a few digits at the end are a name when they read as words
    (:func:`_wordy`; a random mixed-case token does not).
    """
    if not _IDENTIFIER_WORDS.fullmatch(value):
        return False
    return all(_wordy(part) for part in re.split(r"[_\-.]+", value) if part)


_PATH_START = ("/", "./", "../", "~/", "\\\\")
_PATH_PARTS = re.compile(r"[/\\._\-]+")


def _path(value: str) -> bool:
    """A file path: starts like one and its parts read as words (a base64 secret may
    start with '/' too, but its parts change case every other letter)."""
    if not (value.startswith(_PATH_START) or value[1:3] == ":\\") or "+" in value:
        return False
    return all(_wordy(part) for part in _PATH_PARTS.split(value) if part)


def _wordy(part: str) -> bool:
    """Letters that read as words: ``TwoQubitPeephole``, ``api_token``, ``MYVALUE``.

    Split into camel-case chunks (an optional capital and lower-case letters, or a run
    of capitals), words average three letters or more; a random mixed-case token
    averages about two. Longer ones must also have the vowels words have.
    """
    letters = "".join(c for c in part if c.isalpha())
    if not letters:
        return True
    chunks = _CAMEL_CHUNKS.findall(letters)
    if len(letters) < 3.5 * len(chunks) and len(chunks) > 2:
        return False
    # and pronounceable: words are about 40% vowels, random letters about 20%
    vowels = sum(c in "aeiouyAEIOUY" for c in letters)
    return len(letters) < 8 or vowels >= 0.3 * len(letters)


def is_public_example(value: str) -> bool:
    """A key from public documentation: AWS's ``…EXAMPLE``/``…EXAMPLEKEY`` style."""
    upper = value.upper()
    return "EXAMPLE" in upper or "SAMPLE" in upper


def _decoded(value: str) -> str:
    """A percent-encoded value (in a URL) as it was before encoding."""
    if "%" in value and _PERCENT.search(value):
        return urllib.parse.unquote(value)
    return value


def plausible_secret(value: str) -> bool:
    """Whether a value written next to a credential's name can be a real credential."""
    value = _decoded(value)
    n = len(value)
    if n < 8 or n > 1024:
        return False
    if _placeholder(value) or is_public_example(value):
        return False
    if "-----" in value:
        return False  # a PEM block: the PEM detector reports it whole, with its type
    if value[0] in "$%{<[(#@&*=" or value[-1] in "}>)]":
        return False
    if "://" in value or _path(value):
        return False
    if _REFERENCE.match(value) or "(" in value or "[" in value:
        return False
    if _FILE_SUFFIX.search(value):
        return False
    digits = sum(c.isdigit() for c in value)
    letters = sum(c.isalpha() for c in value)
    others = n - digits - letters
    if letters < 2:
        return False  # numbers, dates
    if digits == 0 and _WORD_PUNCT.fullmatch(value) and (n < 16 or _wordy(value)):
        # words and names in letters, maybe with sentence or word punctuation
        # ("configuration.", "don't", "well-known"); a random token changes case often
        return False
    if _DATE_OR_NUMBER.fullmatch(value) or _VERSION.fullmatch(value) or _UUID.search(value):
        return False
    if _identifier(value) or _DOMAIN.fullmatch(value):
        return False
    if (
        value != value.strip()
        or value.count(" ") > 1
        or (" " in value and (digits + others) * 4 < n)
    ):
        return False  # words of a sentence, or text around a value
    if len(set(value)) < 6 or _shannon(value) < 2.8 or _sequential(value):
        return False
    return True


def ruled_out(value: str, before: str) -> bool:
    """Evidence that a value another detector found beside a credential word is not one:
    a public example, a placeholder, a version, UUID, date or number, a sequence, or a hex
    digest with a hash word before it (``before``: the text preceding the value)."""
    value = _decoded(value)
    return (
        is_public_example(value)
        or _placeholder(value)
        or len(set(value)) <= 3
        or _path(value)
        or "://" in value
        or bool(_VERSION.fullmatch(value) or _UUID.fullmatch(value))
        or bool(_DATE_OR_NUMBER.fullmatch(value))
        or (len(value) >= 8 and _sequential(value))
        or _is_digest(value, before[-60:])
    )


def _is_digest(value: str, before: str) -> bool:
    return bool(_HEX_DIGEST.fullmatch(value)) and bool(_HASH_WORDS.search(before))


# ---------------------------------------------------------------- syntax
_SEP = re.compile(r"[ \t]*(:=|=>|==|<-|=|:(?![:/])|[ \t](?:is|was)[ \t])[ \t]*")
#: A Python annotation between a name and its value: ``password: str = "…"``.
_ANNOTATION = re.compile(r"[A-Za-z_][\w.\[\], |]{0,40}?[ \t]*=(?!=)[ \t]*(?=[bBrRuUfF]{0,2}[\"'])")
_QUOTED = re.compile(r"""[bBrRuUfF]{0,2}("{3}|'{3}|["'`])([^\n]{0,1024}?)\1""")
_UNQUOTED = re.compile(r"""[^\s"'`,;&<>(){}\[\]|]{1,1024}""")
_TRAILING = ".:!?"
#: Cell magics whose body is not Python: their lines are read like text.
_TEXT_MAGIC = re.compile(r"\s*%%(?:bash|sh|script|writefile|file|html|markdown|latex|svg)\b")


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    value: str


class _CodeShape:
    """Which positions of a code cell are Python code (where unquoted values are names)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.all_text = _TEXT_MAGIC.match(text) is not None
        self._strings: list[tuple[int, int]] | None = None

    def _triple_strings(self) -> list[tuple[int, int]]:
        if self._strings is None:
            spans: list[tuple[int, int]] = []
            for m in re.finditer(r'"""|\'\'\'', self.text):
                if spans and spans[-1][1] == -1:
                    if self.text[spans[-1][0] - 3 : spans[-1][0]] == m.group(0):
                        spans[-1] = (spans[-1][0], m.start())
                else:
                    spans.append((m.end(), -1))
            self._strings = [(a, b if b != -1 else len(self.text)) for a, b in spans]
        return self._strings

    def is_text_at(self, pos: int) -> bool:
        if self.all_text:
            return True
        # the line up to ``pos``, at most LOOKBACK characters of it (bounded work per hit)
        line_start = self.text.rfind("\n", max(0, pos - LOOKBACK), pos) + 1
        line = self.text[max(line_start, pos - LOOKBACK) : pos].lstrip()
        if line.startswith(("%", "!", "#")):
            return True
        if line.count('"') % 2 or line.count("'") % 2:
            return True  # inside a string literal: data, not an expression
        if "#" in line:
            return True  # a comment (a '#' inside a string was caught above)
        strings = self._triple_strings()
        i = bisect.bisect_right(strings, (pos, len(self.text) + 1)) - 1
        return i >= 0 and strings[i][0] <= pos < strings[i][1]


def _value_at(text: str, pos: int, *, json_line: bool) -> tuple[int, int, bool] | None:
    """``(start, end, quoted)`` of the value beginning at ``pos``."""
    if pos >= len(text):
        return None
    if json_line and text[pos] == '"':
        # a JSON unit line '"key": "value"' holds the value as is (unescaped)
        eol = text.find("\n", pos)
        eol = len(text) if eol == -1 else eol
        if eol - 1 > pos and text[eol - 1] == '"':
            return pos + 1, eol - 1, True
    m = _QUOTED.match(text, pos)
    if m is not None:
        return m.start(2), m.end(2), True
    m = _UNQUOTED.match(text, pos)
    if m is None:
        return None
    end = m.end()
    if end < len(text) and text[end] in "([":
        return None  # a call or subscript: an expression, not a value
    while end > pos and text[end - 1] in _TRAILING:
        end -= 1
    return pos, end, False


def _key_span(text: str, hit: int, stem_end: int) -> tuple[int, int]:
    start, end = hit, stem_end
    n = len(text)
    while start > 0 and text[start - 1] in _KEY_CHARS:
        start -= 1
    while end < n and text[end] in _KEY_CHARS:
        end += 1
    while end > start and text[end - 1] in ".-":
        end -= 1
    while start < end and text[start] in ".-":
        start += 1  # --api-key: the flag's dashes are not part of the name
    return start, end


def _previous_word(text: str, start: int) -> str:
    if start < 2 or text[start - 1] != " ":
        return ""
    i = start - 1
    while i > 0 and start - i < 40 and text[i - 1].isalnum():
        i -= 1
    return text[i : start - 1]


def _parse_after_key(
    text: str, kstart: int, kend: int, *, json_line: bool
) -> tuple[int, int, bool] | None:
    """The value written after the key name ``text[kstart:kend]``, if any."""
    n = len(text)
    before = text[kstart - 1] if kstart > 0 else ""
    pos = kend
    if before == ":" and _XML_PREFIX.search(text, max(0, kstart - 40), kstart):
        before = "<"  # <cfg:password>: a namespaced element
    if before == "<":  # XML element: <password>value</password>
        close = text.find(">", pos, pos + 200)
        if close == -1 or text[pos:close].strip().endswith("/"):
            return None
        vstart = close + 1
        vend = text.find("<", vstart, vstart + 1025)
        if vend == -1:
            return None
        value = text[vstart:vend]
        stripped = value.strip()
        if not stripped or "\n" in stripped:
            return None
        lead = len(value) - len(value.lstrip())
        return vstart + lead, vstart + lead + len(stripped), True
    if before in ("?", "&", ";") and pos < n and text[pos] == "=":  # URL query parameter
        return _value_at(text, pos + 1, json_line=False)
    if before == "-" and kstart > 1 and text[kstart - 2] == "-":  # --password value
        if pos < n and text[pos] in " =":
            return _value_at(text, pos + 1, json_line=False)
        return None
    key_closed = False
    if pos < n and text[pos] in "\"'`":
        key_closed = True
        if text[pos] == before:
            pos += 1  # the key's closing quote
        elif _opens_multiword_key(text, kstart, text[pos]):
            pos += 1  # "API Key": the quote opened before the first word
    if pos < n and text[pos] == "]":
        pos += 1  # config["password"] = …
    emphasis = _emphasis_before(text, kstart)
    if emphasis and text.startswith(emphasis, pos):
        pos += len(emphasis)  # **Password**: X
    aligned = _ALIGNED.match(text, pos)
    if aligned is not None and _at_line_start(text, kstart):
        # "password    X" / "password<TAB>X": a printed Series, a TSV or aligned listing,
        # the value alone on the rest of its line
        return _value_at(text, aligned.end(), json_line=False)
    m = _SEP.match(text, pos)
    if m is None:
        return None
    vpos = m.end()
    if (
        before
        and before in "\"'`"
        and not key_closed
        and vpos < n
        and text[vpos] == before
        and (vpos + 1 == n or text[vpos + 1] in " \t\n+%),.]};")
    ):
        return None  # 'Credential=' + access_key: the string ends, an expression follows
    if emphasis and text.startswith(emphasis, vpos):
        vpos = _skip_blank(text, vpos + len(emphasis))  # **Password:** X
    if m.group(1) == ":":
        ann = _ANNOTATION.match(text, vpos)  # password: str = "…"
        if ann is not None and text[vpos : ann.end()].split("=")[0].strip().isidentifier():
            vpos = ann.end()
        block = _YAML_BLOCK.match(text, vpos)
        if block is not None:  # password: >-\n  value
            vpos = block.end()
    return _value_at(text, vpos, json_line=json_line)


_XML_PREFIX = re.compile(r"<[A-Za-z_][\w.\-]{0,30}:$")
#: Two or more spaces or a tab, then one token that ends its line.
_ALIGNED = re.compile(r"(?:\t+| {2,})(?=[^\s\n]{8,1024}[ \t]*(?:\n|$))")
_YAML_BLOCK = re.compile(r"[|>][+-]?[ \t]*\n[ \t]+")


def _emphasis_before(text: str, kstart: int) -> str:
    """The markdown emphasis (``**``, ``_``) that opens right before a key (or the word
    before it: ``**API key**``), if any."""
    j = kstart
    if j > 1 and text[j - 1] == " " and text[j - 2].isalnum():
        word = j - 1
        while word > 0 and j - word < 40 and text[word - 1].isalnum():
            word -= 1
        if word > 0 and text[word - 1] in "*_":
            j = word
    kstart = j
    while j > 0 and kstart - j < 3 and text[j - 1] in "*_":
        j -= 1
    return text[j:kstart]


def _skip_blank(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _at_line_start(text: str, pos: int) -> bool:
    line_start = text.rfind("\n", max(0, pos - 200), pos) + 1
    return (line_start > 0 or pos < 200) and not text[line_start:pos].strip(" \t*-•")


def _opens_multiword_key(text: str, kstart: int, quote: str) -> bool:
    """Whether ``quote`` opens a few words before ``kstart`` on its line ("API Key")."""
    line_start = text.rfind("\n", 0, kstart) + 1
    opened = text.rfind(quote, max(line_start, kstart - 30), kstart)
    return opened != -1 and all(c.isalnum() or c in " _-" for c in text[opened + 1 : kstart])


def _keyed_hits(text: str, lower: str, profile: str) -> Iterator[_Hit]:
    json_profile = profile.endswith(".json") and profile.startswith("values")
    code = _CodeShape(text) if profile.endswith(".py") else None
    done_until = -1
    for m in _STEM.finditer(lower):
        if m.start() < done_until:
            continue
        kstart, kend = _key_span(text, m.start(), m.end())
        done_until = kend
        name = text[kstart:kend]
        previous = _previous_word(text, kstart)
        if not names_credential(name, previous):
            if not (
                kstart > 0 and text[kstart - 1] in "?&" and name.lower() in _QUERY_NAMES
            ):  # ?key=… or &sig=… in a URL
                continue
        json_line = json_profile and kstart > 0 and text[kstart - 1] == '"'
        span = _parse_after_key(
            text, kstart, kend, json_line=json_line and (kstart == 1 or text[kstart - 2] == "\n")
        )
        if span is None:
            continue
        vstart, vend, quoted = span
        value = text[vstart:vend]
        if not quoted and code is not None and not code.is_text_at(kstart):
            continue  # an unquoted value in Python code is an expression
        if not plausible_secret(value):
            continue
        if _is_digest(value, text[max(0, kstart - 40) : kend]):
            continue
        yield _Hit(vstart, vend, value)


# ---------------------------------------------------------------- tables
_TABLE_GATE = re.compile(r"(?i)<t[dh]\b")
_ROW = re.compile(r"(?is)<tr\b[^>]*>(.*?)(?=<tr\b|</table\s*>|\Z)")
_CELL = re.compile(r"(?is)<(t[dh])\b[^>]*>(.*?)(?=<t[dh]\b|</tr\s*>|\Z)")
_TAGS = re.compile(r"(?s)<[^>]*>")


@dataclass(frozen=True)
class _Cell:
    text: str
    start: int
    end: int
    header: bool


def _cells(markup: str, row: re.Match[str]) -> list[_Cell]:
    cells = []
    for c in _CELL.finditer(markup, row.start(1), row.end(1)):
        raw = c.group(2)
        raw_end = raw.lower().rfind("</t")
        if raw_end != -1:
            raw = raw[:raw_end]
        cells.append(
            _Cell(
                html.unescape(_TAGS.sub(" ", raw)).strip(),
                c.start(2),
                c.start(2) + len(raw),
                c.group(1).lower() == "th",
            )
        )
    return cells


def table_pairs(markup: str) -> Iterator[tuple[str, _Cell]]:
    """``(name, value cell)`` for each table cell that a header or first cell names.

    A header is a cell of the first row when that row is all ``<th>``; a row's own
    first cell names the cell beside it (``<tr><th>password</th><td>…</td></tr>``).
    """
    headers: list[_Cell] = []
    first = True
    for row in _ROW.finditer(markup):
        cells = _cells(markup, row)
        if not cells:
            continue
        if first and all(c.header for c in cells):
            headers = cells
            first = False
            continue
        first = False
        named = False
        for i, cell in enumerate(cells[:-1]):
            if cell.text and names_credential(cell.text):
                yield cell.text, cells[i + 1]
                named = True
                break
        if headers and not named:
            offset = len(headers) - len(cells)  # align from the right (index columns)
            for i, cell in enumerate(cells):
                j = i + offset
                if 0 <= j < len(headers) and names_credential(headers[j].text):
                    yield headers[j].text, cell


def table_lines(markup: str) -> list[str]:
    """``"name": "value"`` lines for the credential cells of HTML tables in ``markup``."""
    if "<t" not in markup.lower() or not _TABLE_GATE.search(markup):
        return []
    if not _STEM.search(markup.lower()):
        return []
    return [
        f'"{name}": "{cell.text}"'
        for name, cell in table_pairs(markup)
        if plausible_secret(cell.text)
    ]


def _markup_table_hits(text: str) -> Iterator[_Hit]:
    for _name, cell in table_pairs(text):
        if plausible_secret(cell.text):
            raw = text[cell.start : cell.end]
            lead = len(raw) - len(raw.lstrip())
            trail = len(raw.rstrip())
            yield _Hit(cell.start + lead, cell.start + trail, cell.text)


def _escaped_table_hits(text: str) -> Iterator[_Hit]:
    """Tables in HTML-escaped markup (``&lt;td&gt;``): found in the unescaped text,
    located again in ``text`` by the value's escaped form."""
    cursor = 0  # hits come in document order: each is looked for after the last
    for hit in _markup_table_hits(html.unescape(text)):
        for form in (html.escape(hit.value), html.escape(hit.value, quote=False), hit.value):
            at = text.find(form, cursor)
            if at != -1:
                yield _Hit(at, at + len(form), hit.value)
                cursor = at + len(form)
                break


_PIPE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$")


def _pipe_cells(line: str, offset: int) -> list[tuple[str, int]]:
    """Cells of a pipe-table line: ``(text, offset of the text)``."""
    cells: list[tuple[str, int]] = []
    pos = 0
    for part in line.split("|"):
        stripped = part.strip()
        cells.append((stripped, offset + pos + (part.find(stripped) if stripped else 0)))
        pos += len(part) + 1
    return cells


def _pipe_table_hits(text: str) -> Iterator[_Hit]:
    """Markdown pipe tables: a header cell or a row's first cell names the value.

    The rule line (``|---|---|``) gives the number of columns; a header or row line may
    carry text before its first pipe (a log prefix), so cells are counted from the
    first pipe of a row and from the end of the header.
    """
    lines = text.split("\n")
    offsets = []
    pos = 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    for i in range(1, len(lines)):
        rule = lines[i]
        if "|" not in rule or "|" not in lines[i - 1] or not _PIPE_RULE.match(rule):
            continue
        columns = rule.strip().strip("|").count("|") + 1
        header = [c for c, _ in _pipe_cells(lines[i - 1], 0)]
        if header and not header[-1]:
            header.pop()
        header = header[-columns:]
        for j in range(i + 1, len(lines)):
            row = lines[j]
            if "|" not in row:
                break
            cells = _pipe_cells(row, offsets[j])[1:]  # from the first pipe
            for k, (cell, start) in enumerate(cells[:columns]):
                name = header[k] if k < len(header) else ""
                beside = cells[k - 1][0] if k > 0 else ""
                value = cell.strip("`")
                if (names_credential(name) or names_credential(beside)) and plausible_secret(value):
                    at = start + cell.find(value)
                    yield _Hit(at, at + len(value), value)


#: A cell of a text table: words separated by single spaces (columns are two or more
#: spaces apart, as pandas prints them).
_COLUMN_TOKEN = re.compile(r"\S+(?: \S+)*")


def _column_table_hits(text: str, lower: str) -> Iterator[_Hit]:
    """Text tables with aligned columns (a pandas DataFrame's repr): a value under a
    header word that names a credential, right- or left-aligned with it."""
    done_until = -1
    for m in _STEM.finditer(lower):
        if m.start() < done_until:
            continue
        kstart, kend = _key_span(text, m.start(), m.end())
        line_end = text.find("\n", m.start())
        done_until = max(kend, line_end)  # one header per line
        if line_end == -1 or not names_credential(text[kstart:kend]):
            continue
        line_start = text.rfind("\n", max(0, m.start() - LOOKBACK), m.start()) + 1
        if line_start == 0 and m.start() > LOOKBACK:
            continue  # a header line is short
        header = [
            (t.group(), t.start() - line_start, t.end() - line_start)
            for t in _COLUMN_TOKEN.finditer(text, line_start, line_end)
        ]
        if len(header) < 2:
            continue
        named = [(hs, he) for name, hs, he in header if names_credential(name)]
        if not named:
            continue
        header_width = line_end - line_start
        pos = line_end + 1
        for _ in range(50):  # rows below the header
            end = text.find("\n", pos)
            end = len(text) if end == -1 else end
            tokens = [
                (t.group(), t.start() - pos, t.end() - pos)
                for t in _COLUMN_TOKEN.finditer(text, pos, end)
            ]
            if len(tokens) < 2 or any(names_credential(t[0]) for t in tokens):
                break  # the table ended, or a new header starts (each row read once)
            row_width = end - pos
            for hs, he in named:
                for value, ts, te in tokens:
                    # aligned by either edge, or by the distance to the line's end (a
                    # prefix before the header, such as an error message, shifts it)
                    aligned = te == he or ts == hs or row_width - te == header_width - he
                    if aligned and plausible_secret(value):
                        yield _Hit(pos + ts, pos + te, value)
            if end >= len(text):
                break
            pos = end + 1


#: Secrets written without a separator after their name, one pattern each:
#: ``auth=("user", "pw")``, SQL ``PASSWORD 'pw'``/``IDENTIFIED BY 'pw'``, a .netrc
#: line, ``curl -u user:pw``, and a name/value pair (``{"name": "API_TOKEN", "value":
#: …}``, ``- name: API_TOKEN\n  value: …``, ``<add key="ApiKey" value="…"/>``) whose
#: name is checked with :func:`names_credential`.
_FIXED_SHAPES = (
    (
        ("auth",),
        re.compile(
            r"""(?i)\b(?:auth|HTTPBasicAuth|HTTPDigestAuth|BasicAuth)\s*(?:=\s*)?[(\[]\s*"""
            r"""[bru]{0,2}(["'])[^"'\n]{1,200}\1\s*,\s*[bru]{0,2}(["'])([^"'\n]{1,1024})\2"""
        ),
        3,
    ),
    (
        ("password", "identified"),
        re.compile(r"""(?i)\b(?:password|identified\s+by)\s+(["'])([^"'\n]{1,1024})\1"""),
        2,
    ),
    (
        ("machine",),
        re.compile(r"(?i)\bmachine\s+\S+\s+login\s+\S+\s+password\s+([^\s\"']{1,1024})"),
        1,
    ),
    (
        (" -u ", "--user"),
        re.compile(r"""(?:^|\s)(?:-u|--user)[\s=]+["']?[^\s:'"@]{1,200}:([^\s'"]{1,1024})"""),
        1,
    ),
    (
        (" -p ",),
        re.compile(
            r"(?i)\b(?:docker|podman|nerdctl|buildah|helm\s+registry)\s+login\b[^\n]*?"
            r"\s-p\s+([^\s\"']{1,1024})"
        ),
        1,
    ),
    (
        ("password",),
        re.compile(
            r"(?i)<input\b(?=[^>]*\btype\s*=\s*[\"']?password\b)[^>]*\bvalue\s*=\s*"
            r"([\"'])([^\"'\n]{1,1024})\1"
        ),
        2,
    ),
)
#: A Dockerfile ``ENV NAME value`` line; the name is checked with names_credential.
_DOCKER_ENV = re.compile(
    r"(?m)^[ \t]*ENV[ \t]+([A-Za-z_][\w.\-]{1,100})[ \t]+([^\s=]\S{0,1023})[ \t]*$"
)
_NAME_VALUE = re.compile(
    r"""(?i)["']?\b(?:name|key)["']?\s*[:=]\s*["']?([\w.\-]{2,100})["']?"""
    r"""(?:\s*[,;]?\s*|[^\n]{0,40}\n[ \t\-]*)["']?\bvalue["']?\s*[:=]\s*"""
)


def _shape_hits(text: str, lower: str, stem: bool) -> Iterator[_Hit]:
    if not stem and not (
        " -u " in lower or "--user" in lower or "identified" in lower or " -p " in lower
    ):
        return
    for gates, regex, group in _FIXED_SHAPES:
        if not any(g in lower for g in gates):
            continue
        for m in regex.finditer(text):
            value = m.group(group).rstrip(_TRAILING)
            if plausible_secret(value):
                yield _Hit(m.start(group), m.start(group) + len(value), value)
    if stem and "env" in lower:
        for m in _DOCKER_ENV.finditer(text):
            value = m.group(2)
            if names_credential(m.group(1)) and plausible_secret(value):
                yield _Hit(m.start(2), m.end(2), value)
    if stem and "value" in lower:
        for m in _NAME_VALUE.finditer(text):
            if not names_credential(m.group(1)):
                continue
            span = _value_at(text, m.end(), json_line=False)
            if span is None:
                continue
            value = text[span[0] : span[1]]
            if plausible_secret(value):
                yield _Hit(span[0], span[1], value)


# ---------------------------------------------------------------- entry point
def context_hits(text: str, lower: str, profile: str) -> Iterator[Detection]:
    """Every value named by a credential word in ``text`` (``lower`` is ``text.lower()``)."""
    stem = _STEM.search(lower) is not None
    hits: list[_Hit] = list(_shape_hits(text, lower, stem))
    if stem:
        hits.extend(_keyed_hits(text, lower, profile))
        if "<t" in lower and _TABLE_GATE.search(text):
            hits.extend(_markup_table_hits(text))
        if "&lt;t" in lower:  # a table shown as escaped markup
            hits.extend(_escaped_table_hits(text))
        if "|" in text and "---" in text:
            hits.extend(_pipe_table_hits(text))
        if "  " in text:
            hits.extend(_column_table_hits(text, lower))
    seen: set[tuple[int, int]] = set()
    for hit in hits:
        if (hit.start, hit.end) in seen:
            continue
        seen.add((hit.start, hit.end))
        yield Detection(TYPE, hit.value, hit.start, hit.end)
