"""Secret detectors: detect-secrets' plugins and filters used as a library, plus ours.

detect-secrets is used as a library, never re-implemented and never through its
process-global settings: the plugin classes are instantiated directly (one set per
thread, because ``HighEntropyStringsPlugin`` swaps its regex in eager mode) and
its heuristic filters are called as plain functions. Nothing here mutates
``detect_secrets.settings``, so concurrent scans from many threads are safe, and a
caller that does use detect-secrets' settings elsewhere in the process does not
change what we find.

Bounded cost on pathological input:

- each plugin first runs its own regexes over the whole text in one pass (C
  speed); only lines that hit are analysed line by line;
- lines longer than :data:`MAX_LINE` are analysed in overlapping windows;
- line filters that backtrack (``is_indirect_reference``) only see candidate lines,
  with whitespace runs collapsed and at most 1000 characters.

Families detect-secrets lacks (ours): Vault/OpenBao tokens, IBM Quantum API
tokens, connection strings/URLs with a password (any scheme), Azure storage
connection strings, OpenAI-style keys, HTTP Basic/Bearer authorization values and
PEM private keys across lines (also JSON-escaped ``\\n``-joined ones).

Precision (no false alarm on real notebooks): the entropy plugins only report a
string that stands next to a secret-sounding word on its line, or one assigned to
a name; see :func:`_entropy_in_context`.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import ahocorasick_rs
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters import allowlist as ds_allowlist
from detect_secrets.filters import heuristic as ds_heuristic
from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
from detect_secrets.plugins.keyword import DENYLIST_REGEX, KeywordDetector
from detect_secrets.util.code_snippet import get_code_snippet

from .context import context_hits, is_public_example, ruled_out
from .models import Detection

#: Lines longer than this are analysed by detect-secrets' plugins in windows.
MAX_LINE = 4096
#: Overlap between windows, so a secret on a window edge is seen whole in one window.
WINDOW_OVERLAP = 512

_lock = threading.Lock()
_plugin_classes: list[type[BasePlugin]] | None = None
_local = threading.local()


def plugin_classes() -> list[type[BasePlugin]]:
    """detect-secrets' built-in plugin classes (resolved once, under a lock)."""
    global _plugin_classes
    if _plugin_classes is None:
        with _lock:
            if _plugin_classes is None:
                mapping: dict[str, Any] = get_mapping_from_secret_type_to_class()
                _plugin_classes = sorted(
                    (
                        cls
                        for cls in mapping.values()
                        if cls.__module__.startswith("detect_secrets.")
                    ),
                    key=lambda c: c.__name__,
                )
    return _plugin_classes


def _plugins() -> list[BasePlugin]:
    plugins: list[BasePlugin] | None = getattr(_local, "plugins", None)
    if plugins is None:
        plugins = [cls() for cls in plugin_classes()]
        _local.plugins = plugins
    return plugins


# ------------------------------------------------------------------ line helpers
class Lines:
    """Line index of a text: offsets of line starts, line text by index."""

    def __init__(self, text: str) -> None:
        self.text = text
        starts = [0]
        find = text.find
        pos = find("\n")
        while pos != -1:
            starts.append(pos + 1)
            pos = find("\n", pos + 1)
        self.starts = starts

    def index_of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def span(self, index: int) -> tuple[int, int]:
        start = self.starts[index]
        end = self.starts[index + 1] - 1 if index + 1 < len(self.starts) else len(self.text)
        return start, end

    def line(self, index: int) -> str:
        start, end = self.span(index)
        return self.text[start:end]

    def __len__(self) -> int:
        return len(self.starts)


def _windows(start: int, end: int) -> Iterator[tuple[int, int]]:
    if end - start <= MAX_LINE:
        yield start, end
        return
    pos = start
    while pos < end:
        yield pos, min(end, pos + MAX_LINE)
        if pos + MAX_LINE >= end:
            break
        pos += MAX_LINE - WINDOW_OVERLAP


# ------------------------------------------------------------------ filters
_WS_RUN = re.compile(r"\s{2,}")
_SECRETISH = re.compile(
    r"(?:api[_-]?key|apikey|secret|passw(?:or)?d|passwd|pwd|token|auth|credential|"
    r"access[_-]?key|private[_-]?key|client[_-]?key|sig(?:nature)?\b)",
    re.IGNORECASE,
)
_ASSIGNED = re.compile(r"""[\w\]'")]\s*(?::=|=|:)\s*[bru]{0,2}['"]?$""")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:x{3,}.*|\*{3,}.*|\.{3,}.*|<[^>]*>|\{[^}]*\}|\$\{?\w+\}?|%\(?\w*\)?s|"
    r"(?:your|my|the|some|example|sample|dummy|fake|test|changeme|placeholder|redacted|"
    r"secret|password|passwd|token|none|null|undefined|string|str|value|foo|bar)"
    r"(?-i:[_-]?[a-z_]*))$"
)


#: Characters that case-insensitive matching takes for an ASCII letter but ``str.lower``
#: leaves alone (dotless i, long s). Every other character whose lower case is one
#: character matches a lower-case pattern as ``(?i)`` matches it (checked over all of
#: Unicode by tests/scan/test_scan_prefilters.py).
_FOLD_EXCEPTIONS = re.compile("[\u0131\u017f]")


def folded_text(text: str, lower: str) -> str | None:
    """``lower`` (``text.lower()``) if a lower-case pattern matched over it case-sensitively
    finds exactly what its ``(?i)`` form finds over ``text``, at the same offsets; else None.

    Case-insensitive matching is the slowest thing ``re`` does (about 10x a plain pattern),
    and detect-secrets' keyword regex and our secret-word regex run over every text.
    """
    if text.isascii():
        return lower
    if len(lower) != len(text) or _FOLD_EXCEPTIONS.search(text) is not None:
        return None  # a character lowers to two (İ) or (?i) folds it otherwise
    return lower


_CASELESS: dict[re.Pattern[str], re.Pattern[str] | None] = {}
_ESCAPE = re.compile(r"\\.")


def caseless(regex: re.Pattern[str]) -> re.Pattern[str] | None:
    """``regex`` without ``re.IGNORECASE``, for :func:`folded_text`; None when that would
    not be the same pattern (it names an upper-case letter outside an escape)."""
    if regex in _CASELESS:
        return _CASELESS[regex]
    plain: re.Pattern[str] | None = None
    if regex.flags & re.IGNORECASE and not any(c.isupper() for c in _ESCAPE.sub("", regex.pattern)):
        plain = re.compile(regex.pattern, regex.flags & ~re.IGNORECASE)
    _CASELESS[regex] = plain
    return plain


def is_line_allowlisted(line: str, previous_line: str) -> bool:
    """detect-secrets' inline ``pragma: allowlist secret`` (and ``nextline``) check."""
    if "pragma" not in line and "pragma" not in previous_line:
        return False
    context = get_code_snippet([previous_line, line], 2)
    return bool(ds_allowlist.is_line_allowlisted(filename="", line=line, context=context))


def _indirect_reference(line: str) -> bool:
    if len(line) > 1000:  # detect-secrets' own bound, applied to the original line
        return False
    return bool(ds_heuristic.is_indirect_reference(_WS_RUN.sub(" ", line)))


def is_filtered_secret(secret: str, line: str, plugin: BasePlugin | None) -> bool:
    """detect-secrets' default heuristic filters, called as functions."""
    return bool(
        ds_heuristic.is_templated_secret(secret)
        or ds_heuristic.is_prefixed_with_dollar_sign(secret)
        or ds_heuristic.is_sequential_string(secret)
        or ds_heuristic.is_potential_uuid(secret)
        or ds_heuristic.is_not_alphanumeric_string(secret)
        or ds_heuristic.is_likely_id_string(secret, line, plugin)
    )


def looks_like_placeholder(secret: str) -> bool:
    s = secret.strip("'\"` ")
    if len(s) < 6 or _PLACEHOLDER.match(s):
        return True
    return len(set(s.lower())) <= 3


def shannon(data: str) -> float:
    if not data:
        return 0.0
    counts: dict[str, int] = {}
    for ch in data:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _entropy_in_context(secret: str, line: str, index: int) -> bool:
    """An entropy hit counts only next to a secret-sounding word (key, token, password…).

    Quoted high-entropy strings in notebooks are overwhelmingly hashes, job and
    circuit ids, base64 plot payloads and transpiler output. A real credential in a
    quoted string sits next to a telling name (``API_KEY = "…"``, ``{'token': '…'}``,
    ``headers={'Authorization': …}``); keyword-less ones are left to the
    fixed-format detectors and to exact-value matching.
    """
    before = line[max(0, index - 80) : index]
    return bool(_SECRETISH.search(before))


# ------------------------------------------------------------------ detect-secrets
_KEYWORD_TRIGGER = re.compile(DENYLIST_REGEX, re.IGNORECASE)

#: Literal gates: a plugin whose regexes all need one of these (lower-cased) words
#: cannot fire on a text that has none of them, so its regexes are not run at all.
#: Case-insensitive alternations are the slowest regexes in detect-secrets; these
#: checks are plain substring searches.
_GATES: dict[str, tuple[str, ...]] = {
    "KeywordDetector": ("key", "pass", "pwd", "secret", "contrase"),
    "IbmCloudIamDetector": ("key", "pwd", "pass", "token"),
    "IbmCosHmacDetector": ("secret",),
    "CloudantDetector": ("cloudant", "key", "pwd", "pass", "token"),
    "SoftlayerDetector": ("softlayer", "key", "pwd", "pass", "token"),
    "AWSKeyDetector": ("a3t", "abia", "acca", "akia", "asia", "aws"),
    "SlackDetector": ("xox", "hooks.slack.com"),
    "StripeDetector": ("k_live_",),
    "SquareOAuthDetector": ("sq0csp-",),
    "PypiTokenDetector": ("pypi-",),
    "NpmDetector": ("_authtoken",),
    "PrivateKeyDetector": ("private key", "putty-user-key"),
    "OpenAIDetector": ("t3blbkfj",),
    "AzureStorageKeyDetector": ("accountkey=",),
}
#: The same for plugins whose regexes are case-sensitive: words as written in the text
#: (``AP`` is rare, ``ap`` is in every other text).
_RAW_GATES: dict[str, tuple[str, ...]] = {
    "ArtifactoryDetector": ("AKC", "AP"),
    "TwilioKeyDetector": ("AC", "SK"),
    "MailchimpDetector": ("-us",),
    "SendGridDetector": ("SG.",),
    "JwtTokenDetector": ("eyJ",),
    "GitHubTokenDetector": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "GitLabTokenDetector": ("gl", "GR1348941"),
}
#: Regex gates: every match of the plugin's regexes contains a match of the gate, which
#: starts with a literal (``re`` then skips to it at C speed) or, for ``(?i)`` plugins,
#: runs case-sensitively over the folded text (:func:`folded_text`; no gate without it).
#: ``(gate, over the folded text)``. Tests check each against the plugin's own regexes.
_REGEX_GATES: dict[str, tuple[re.Pattern[str], bool]] = {
    "TelegramBotTokenDetector": (re.compile(r":[\w-]{35}"), False),
    "DiscordBotTokenDetector": (re.compile(r"\.[\w-]{6}\.[\w-]{27}"), False),
    "IPPublicDetector": (re.compile(r"\.\d{1,3}\.\d{1,3}\.\d"), False),
    "CloudantDetector": (
        re.compile(r"cl(?:ou(?:dant)?)?[_-]?(?:api)?(?:key|pwd|pw|pass|token)|cloudant\.com"),
        True,
    ),
    "SoftlayerDetector": (
        re.compile(r"softlayer|sl[_-]?(?:api)?[_-]?(?:key|pwd|pass|token)"),
        True,
    ),
    "IbmCloudIamDetector": (
        re.compile(
            r"(?:key|pwd|password|pass|token)[\"']?\]? *(?:=>?|:=?|::| +) *[\"']?[a-z0-9_\-]{44}"
        ),
        True,
    ),
}
#: Words an entropy hit must follow (see :func:`_entropy_in_context`); lower-cased gate.
_SECRETISH_GATE = ("key", "secret", "pass", "pwd", "token", "auth", "credential", "sig")


#: Every gate word, found in one pass per text (:meth:`_Context.present`); words as
#: written carry a ``\0`` prefix, so ``AP`` as written and ``ap`` in lower case stay apart.
_GATE_WORDS = tuple(sorted({w for ws in _GATES.values() for w in ws} | set(_SECRETISH_GATE)))
_RAW_GATE_WORDS = tuple(sorted({w for ws in _RAW_GATES.values() for w in ws}))
_GATE_SEARCH = ahocorasick_rs.AhoCorasick(list(_GATE_WORDS))
_RAW_GATE_SEARCH = ahocorasick_rs.AhoCorasick(list(_RAW_GATE_WORDS))
_PLUGIN_WORDS: dict[str, tuple[frozenset[str], ...]] = {
    name: tuple(
        frozenset(prefix + w for w in table[name])
        for table, prefix in ((_GATES, ""), (_RAW_GATES, "\0"))
        if name in table
    )
    for name in {*_GATES, *_RAW_GATES}
}
#: present words -> names of the plugins whose word gates they pass (few distinct sets)
_PASSING: dict[frozenset[str], frozenset[str]] = {}


def _word_gated_out(present: frozenset[str]) -> frozenset[str]:
    """Names of the plugins whose word gates ``present`` fails."""
    out = _PASSING.get(present)
    if out is None:
        out = frozenset(
            name
            for name, words in _PLUGIN_WORDS.items()
            if any(ws.isdisjoint(present) for ws in words)
        )
        if len(_PASSING) < 4096:
            _PASSING[present] = out
    return out


def _gated_out(name: str, ctx: _Context) -> bool:
    """True when the plugin ``name`` cannot fire on ``ctx``'s text (its gate is absent)."""
    if name in _word_gated_out(ctx.present()):
        return True
    gate = _REGEX_GATES.get(name)
    if gate is not None:
        regex, on_folded = gate
        where = ctx.folded if on_folded else ctx.text
        if where is not None and regex.search(where) is None:
            return True
    return False


def _line_set(regex: re.Pattern[str], ctx: _Context) -> set[int]:
    """Lines holding a match of ``regex`` (case-insensitive ones over the folded text)."""
    text = ctx.text
    plain = caseless(regex) if regex.flags & re.IGNORECASE else None
    if plain is not None and ctx.folded is not None:
        regex, text = plain, ctx.folded
    lines = ctx.lines
    hit: set[int] = set()
    for m in regex.finditer(text):
        first = lines.index_of(m.start())
        last = lines.index_of(max(m.start(), m.end() - 1))
        hit.update(range(first, last + 1))
    return hit


class _Context:
    """Per-text state shared by the plugins: lower-cased text, line index, lazy line sets."""

    def __init__(self, text: str, profile: str) -> None:
        self.text = text
        self.profile = profile
        self.lower = text.lower()
        self.folded = folded_text(text, self.lower)
        self.lines = Lines(text)
        self._secretish: set[int] | None = None
        self._present: frozenset[str] | None = None

    def present(self) -> frozenset[str]:
        """The gate words in the text (each searched once, not once per plugin)."""
        if self._present is None:
            lower, text = self.lower, self.text
            try:
                # overlapping: "key" inside "accountkey=" counts too
                found = {
                    _GATE_WORDS[i]
                    for i, _, _ in _GATE_SEARCH.find_matches_as_indexes(lower, overlapping=True)
                }
                found.update(
                    "\0" + _RAW_GATE_WORDS[i]
                    for i, _, _ in _RAW_GATE_SEARCH.find_matches_as_indexes(text, overlapping=True)
                )
            except UnicodeEncodeError:  # a lone surrogate (not UTF-8): word by word
                found = {w for w in _GATE_WORDS if w in lower}
                found.update("\0" + w for w in _RAW_GATE_WORDS if w in text)
            self._present = frozenset(found)
        return self._present

    def secretish_lines(self) -> set[int]:
        if self._secretish is None:
            if not self.present().isdisjoint(_SECRETISH_GATE):
                self._secretish = _line_set(_SECRETISH, self)
            else:
                self._secretish = set()
        return self._secretish


def _trigger_lines(plugin: BasePlugin, ctx: _Context) -> Iterable[int]:
    """Indices of lines where the plugin could fire (one C-speed pass over the text)."""
    name = type(plugin).__name__
    if _gated_out(name, ctx):
        return ()
    if isinstance(plugin, KeywordDetector):
        return sorted(_line_set(_KEYWORD_TRIGGER, ctx))
    if isinstance(plugin, HighEntropyStringsPlugin):
        # An entropy hit is only kept next to a secret-sounding word on its line, so only
        # those lines are searched (the plugin's quoted-string regex never spans lines).
        search = plugin.regex.search
        return sorted(li for li in ctx.secretish_lines() if search(ctx.text, *ctx.lines.span(li)))
    if isinstance(plugin, RegexBasedDetector):
        hit: set[int] = set()
        for regex in plugin.denylist:
            hit |= _line_set(regex, ctx)
        return sorted(hit)
    return range(len(ctx.lines))  # pragma: no cover - every built-in plugin is one of the above


#: Plugins whose regex captures only a prefix (``(ghp|gho|…)_…``): detect-secrets reports
#: that group as the secret, so the whole match is taken instead.
_WHOLE_MATCH = frozenset({"GitHubTokenDetector", "GitLabTokenDetector"})
#: Plugins whose hits are dropped on a line like ``token = get_token()``.
_REFERENCE_FILTERED = frozenset(
    {"KeywordDetector", "BasicAuthDetector", "Base64HighEntropyString", "HexHighEntropyString"}
)


def _whole_matches(plugin: RegexBasedDetector, line: str) -> Iterator[str]:
    for regex in plugin.denylist:
        for m in regex.finditer(line):
            yield m.group(0)


def _detect_secrets_hits(ctx: _Context) -> Iterator[Detection]:
    text, profile, lines = ctx.text, ctx.profile, ctx.lines
    collapsed: dict[int, str] = {}
    for plugin in _plugins():
        for li in _trigger_lines(plugin, ctx):
            lstart, lend = lines.span(li)
            raw_line = text[lstart:lend]
            if len(raw_line) > MAX_LINE:
                # Long line: whitespace runs collapsed (so a keyword and its value far
                # apart still meet in one window), then analysed in windows; secrets
                # are located again in the original line.
                if li not in collapsed:
                    collapsed[li] = _WS_RUN.sub(" ", raw_line)
                work, mapped = collapsed[li], False
            else:
                work, mapped = raw_line, True
            previous = lines.line(li - 1) if li > 0 else ""
            pragma_probe = work if len(work) <= MAX_LINE else work[-MAX_LINE:]
            if is_line_allowlisted(pragma_probe.rstrip(), previous[-MAX_LINE:]):
                continue
            indirect: bool | None = None
            for wstart, wend in _windows(0, len(work)):
                line = work[wstart:wend].rstrip()
                if isinstance(plugin, RegexBasedDetector) and type(plugin).__name__ in _WHOLE_MATCH:
                    values: Iterable[str | None] = _whole_matches(plugin, line)
                else:
                    found = plugin.analyze_line(filename=profile, line=line, line_number=li + 1)
                    values = (p.secret_value for p in found or ())
                for secret in values:
                    if not secret or is_filtered_secret(secret, line, plugin):
                        continue
                    if isinstance(
                        plugin, (KeywordDetector, BasicAuthDetector)
                    ) and looks_like_placeholder(secret):
                        continue
                    if type(plugin).__name__ in _REFERENCE_FILTERED:
                        # ``secret = get_secret()``: only for plugins that read a value
                        # from its name; a provider format stays one inside a call.
                        if indirect is None:
                            indirect = _indirect_reference(raw_line)
                        if indirect:
                            continue
                    pattern = re.compile(re.escape(secret))
                    in_context = [
                        m
                        for m in pattern.finditer(line)
                        if not isinstance(plugin, HighEntropyStringsPlugin)
                        or _entropy_in_context(secret, line, m.start())
                    ]
                    if not in_context:
                        continue
                    if mapped:
                        spans = [(wstart + m.start(), wstart + m.end()) for m in in_context]
                    else:
                        spans = [(m.start(), m.end()) for m in pattern.finditer(raw_line)]
                    for a, b in spans:
                        yield Detection(plugin.secret_type, secret, lstart + a, lstart + b)


# ------------------------------------------------------------------ our families
@dataclass(frozen=True)
class Family:
    """One of our regex families: ``group`` is the secret, ``check`` a final sanity test."""

    type: str
    regex: re.Pattern[str]
    group: int = 1
    check: Callable[[str, re.Match[str]], bool] | None = None
    placeholder_filter: bool = True
    #: Lower-cased words one of which must be in the text for the regex to run.
    gate: tuple[str, ...] = ()
    #: A regex every match contains (starting with a literal, so ``re`` skips to it).
    needs: re.Pattern[str] | None = None


def _mixed(secret: str, *, min_entropy: float = 3.0) -> bool:
    has_digit = any(c.isdigit() for c in secret)
    has_alpha = any(c.isalpha() for c in secret)
    return has_digit and has_alpha and shannon(secret) >= min_entropy


def _vault_ok(secret: str, m: re.Match[str]) -> bool:
    body = secret.split(".", 1)[1]
    if secret.startswith("hv"):
        return _mixed(body, min_entropy=3.5)
    return (
        _mixed(body, min_entropy=3.5)
        and any(c.isupper() for c in body)
        and any(c.islower() for c in body)
    )


def _hex128_ok(secret: str, m: re.Match[str]) -> bool:
    return shannon(secret) >= 3.0


def _password_ok(secret: str, m: re.Match[str]) -> bool:
    s = secret
    if len(s) < 3 or s.startswith(("$", "%", "{", "<", "[")) or s.endswith(("}", ">")):
        return False
    if re.fullmatch(
        r"(?i)(?:x+|\*+|\.+|pass(?:word)?|passwd|pwd|secret|changeme|"
        r"your[_-]?\w*|<\w+>|\w*placeholder\w*|null|none|password\d?)",
        s,
    ):
        return False
    return len(set(s)) > 2


def _bearer_ok(secret: str, m: re.Match[str]) -> bool:
    return len(secret) >= 16 and _mixed(secret, min_entropy=3.3)


def _basic_ok(secret: str, m: re.Match[str]) -> bool:
    import base64
    import binascii

    try:
        decoded = base64.b64decode(secret + "=" * (-len(secret) % 4), validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return ":" in decoded and len(decoded.split(":", 1)[1]) >= 3


_OPENAI_PREFIX = re.compile(r"sk-(?:(?:proj|svcacct|admin|None|ant-api\d\d)-)?")


def _openai_ok(secret: str, m: re.Match[str]) -> bool:
    # The body after the prefix may itself hold '-' and '_' (project keys do).
    prefix = _OPENAI_PREFIX.match(secret)
    body = secret[prefix.end() if prefix else 3 :]
    return _mixed(body, min_entropy=3.5) and len(body.replace("-", "").replace("_", "")) >= 16


def _azure_ok(secret: str, m: re.Match[str]) -> bool:
    return _mixed(secret, min_entropy=3.5)


_PEM_BODY = r"(?:[A-Za-z0-9+/=:,\- \t\r\n]|\\[rn]){64,20000}?"

_UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
#: A UUID assigned to a name (``key = "…"``, ``token: …``, ``"api_key": "…"``): group 1
#: the name, group 2 the value. Lower case: it runs over the folded text (caseless()).
_NAMED_UUID = re.compile(
    r"(?<![\w.-])([a-z_][\w.-]{0,60})[\"'\]]?[ \t]*(?:=>|:=|[:=])[ \t]*[bru]{0,2}[\"'`]?"
    r"(" + _UUID_RE + r")(?![\w-])",
    re.IGNORECASE,
)
_CREDENTIAL_NAME = re.compile(r"token|key|secret|passw|pwd|auth|credential")
_ID_NAME = re.compile(r"(?:id|ids|uuid|guid|name|url|uri|path|type)$")
#: How far from a UUID its provider's name may stand (the cell's lines around it).
PROVIDER_WINDOW = 400


def _named_by(provider: str) -> Callable[[str, re.Match[str]], bool]:
    """A UUID is this provider's key when a credential's name holds it and the provider's
    name stands near: Snyk tokens and HubSpot keys are bare UUIDs, which notebooks are
    full of as ids, so neither the name alone (``key = …``) nor the shape is enough."""

    def check(secret: str, m: re.Match[str]) -> bool:
        name = m.group(1).lower().rstrip("_-.")
        if not _CREDENTIAL_NAME.search(name) or _ID_NAME.search(name):
            return False
        around = m.string[max(0, m.start(2) - PROVIDER_WINDOW) : m.end(2) + PROVIDER_WINDOW]
        return provider in around.lower()

    return check


FAMILIES: tuple[Family, ...] = (
    Family(
        # Plaid access tokens name themselves: access-<environment>-<uuid>
        "Plaid Credential",
        re.compile(
            r"(?<![\w-])(access-(?:sandbox|development|production)-" + _UUID_RE + r")(?![\w-])"
        ),
        gate=("access-",),
    ),
    Family("Snyk API Token", _NAMED_UUID, group=2, check=_named_by("snyk"), gate=("snyk",)),
    Family("HubSpot API Key", _NAMED_UUID, group=2, check=_named_by("hubspot"), gate=("hubspot",)),
    Family(
        "PEM Private Key",
        re.compile(
            r"(-----BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY(?: BLOCK)?-----"
            + _PEM_BODY
            + r"-----END \2PRIVATE KEY(?: BLOCK)?-----)"
        ),
        placeholder_filter=False,
        gate=("private key",),
    ),
    Family(
        "Vault Token",
        re.compile(
            r"(?<![\w.\-/])((?:hv[sbr]\.[A-Za-z0-9_-]{24,256})|(?:[sbr]\.[A-Za-z0-9]{24}))"
            r"(?![\w.\-/])"
        ),
        check=_vault_ok,
        needs=re.compile(r"\.[A-Za-z0-9_-]{24}"),
    ),
    Family(
        "IBM Quantum API Token",
        re.compile(
            # lower case, so it runs case-sensitively over the folded text (caseless())
            r"(?:token|api[_-]?key|save_account|enable_account|qiskitruntimeservice|ibmq|"
            r"ibm_quantum|ibmprovider|qiskit_ibm)[^\n]{0,120}?(?<![0-9a-f])([0-9a-f]{128})"
            r"(?![0-9a-f])",
            re.IGNORECASE,
        ),
        check=_hex128_ok,
        gate=("token", "api", "account", "qiskit", "ibm"),
    ),
    Family(
        "Azure Storage Connection String",
        re.compile(r"(?i)(?:AccountKey|SharedAccessKey)\s*=\s*([A-Za-z0-9+/]{30,}={0,2})"),
        check=_azure_ok,
        gate=("accountkey", "sharedaccesskey"),
    ),
    Family(
        "OpenAI API Key",
        re.compile(
            r"(?<![\w-])(sk-(?:(?:proj|svcacct|admin|None|ant-api\d\d)-)?[A-Za-z0-9_-]{20,200})"
            r"(?![\w-])"
        ),
        check=_openai_ok,
        gate=("sk-",),
    ),
    Family(
        "HTTP Authorization",
        re.compile(r"(?i)\bBearer\s+([A-Za-z0-9\-._~+/]{16,4096}=*)(?![\w\-.~+/=])"),
        check=_bearer_ok,
        gate=("bearer",),
    ),
    Family(
        "HTTP Authorization",
        re.compile(r"(?i)\bBasic\s+([A-Za-z0-9+/]{8,1024}={0,2})(?![\w+/=])"),
        check=_basic_ok,
        gate=("basic",),
    ),
    Family(
        "Connection String Password",
        re.compile(
            r"(?i)\b[a-z][a-z0-9+.\-]{1,30}://[^\s:/@'\"<>]{0,256}:([^\s@/'\"<>]{1,256})@"
            r"[\w.\-\[\]]"
        ),
        check=_password_ok,
        gate=("://",),
    ),
    Family(
        "Connection String Password",
        re.compile(
            r"(?i)(?:^|[;\"'\s])(?:password|pwd)\s*=\s*([^;'\"\s]{1,256})\s*;"
            r"(?=[^\n]{0,200}?(?:server|host|data source|user id|uid|database|initial catalog)"
            r"\s*=)|(?:server|host|data source|user id|uid|database|initial catalog)"
            r"\s*=[^;\n]{0,200};"
            r"[^\n]{0,200}?\b(?:password|pwd)\s*=\s*([^;'\"\s]{1,256})"
        ),
        group=0,
        check=_password_ok,
        gate=("password", "pwd"),
    ),
)


def _family_hits(ctx: _Context) -> Iterator[Detection]:
    text, lines = ctx.text, ctx.lines
    for family in FAMILIES:
        if family.gate and not any(w in ctx.lower for w in family.gate):
            continue
        if family.needs is not None and family.needs.search(text) is None:
            continue
        regex, where = family.regex, text
        plain = caseless(regex) if regex.flags & re.IGNORECASE else None
        if plain is not None and ctx.folded is not None:
            regex, where = plain, ctx.folded  # same offsets; the secret is read from text
        for m in regex.finditer(where):
            if family.group == 0:
                g = 1 if m.group(1) is not None else 2
            else:
                g = family.group
            start, end = m.span(g)
            if start < 0 or start == end:
                continue
            secret = text[start:end]
            if family.check is not None and not family.check(secret, m):
                continue
            li = lines.index_of(start)
            lstart, lend = lines.span(li)
            line = (
                text[lstart : min(lend, lstart + MAX_LINE)]
                if start - lstart < MAX_LINE
                else (text[max(lstart, start - 256) : min(lend, end + 256)])
            )
            if is_line_allowlisted(line, lines.line(li - 1) if li > 0 else ""):
                continue
            if family.placeholder_filter and (
                ds_heuristic.is_templated_secret(secret)
                or ds_heuristic.is_prefixed_with_dollar_sign(secret)
                or ds_heuristic.is_sequential_string(secret)
            ):
                continue
            yield Detection(family.type, secret, start, end)


# ------------------------------------------------------------------ entry point
#: Preference when two detections cover the same text (lower wins).
_PRIORITY = {f.type: i for i, f in enumerate(FAMILIES)}


def _priority(d: Detection) -> int:
    if d.type in _PRIORITY:
        return _PRIORITY[d.type]
    if d.type == "Secret Keyword":
        return 200
    if d.type in ("Base64 High Entropy String", "Hex High Entropy String"):
        return 300
    return 100


def dedupe(detections: Iterable[Detection]) -> list[Detection]:
    """Drop a detection whose span lies inside another one (keep the outer, specific one).

    The order is total (type and secret break ties), so which of two detections of the
    same span survives never depends on set iteration order (``PYTHONHASHSEED``).
    """
    ordered = sorted(
        set(detections),
        key=lambda d: (d.start, -(d.end - d.start), _priority(d), d.type, d.secret),
    )
    kept: list[Detection] = []
    max_end = -1
    for d in ordered:
        if kept and d.end <= max_end:
            continue
        kept.append(d)
        max_end = max(max_end, d.end)
    return kept


def _context_hits(ctx: _Context) -> Iterator[Detection]:
    """:mod:`.context`'s hits, minus those on a ``pragma: allowlist secret`` line."""
    for d in context_hits(ctx.text, ctx.lower, ctx.profile):
        if "pragma" in ctx.lower:
            li = ctx.lines.index_of(d.start)
            line = ctx.lines.line(li)[:MAX_LINE]
            if is_line_allowlisted(line, ctx.lines.line(li - 1)[:MAX_LINE] if li > 0 else ""):
                continue
        yield d


#: Types found from a word beside a value (not a format): checked by ``ruled_out``.
_CONTEXT_TYPES = frozenset(
    {
        "Secret Keyword",
        "Base64 High Entropy String",
        "Hex High Entropy String",
        "Basic Auth Credentials",
        "Connection String Password",
    }
)


def _before(ctx: _Context, start: int) -> str:
    line_start = ctx.text.rfind("\n", max(0, start - 200), start) + 1
    return ctx.text[max(line_start, start - 200) : start]


def detect(text: str, profile: str) -> list[Detection]:
    """All secrets in ``text``; ``profile`` is a file-name hint for keyword syntax."""
    if not text or not text.strip():
        return []
    ctx = _Context(text, profile)
    found = list(_family_hits(ctx))
    found.extend(_detect_secrets_hits(ctx))
    found.extend(_context_hits(ctx))
    # A redaction placeholder (``«secret:TYPE»``) is not a secret; neither is a public
    # example key, nor (beside a word) a placeholder, version, hash... (see .context).
    found = [
        d
        for d in found
        if "«secret:" not in d.secret
        and not is_public_example(d.secret)
        and not (d.type in _CONTEXT_TYPES and ruled_out(d.secret, _before(ctx, d.start)))
    ]
    # detect-secrets' Private Key plugin reports only the "BEGIN … PRIVATE KEY" header;
    # ours covers the whole block, so the header hit inside it is dropped by dedupe().
    return dedupe(found)
