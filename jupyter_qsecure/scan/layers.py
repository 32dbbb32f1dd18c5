"""One secret, one finding, one type: how the detection layers are merged.

Several layers may see the same secret: an injected value matched exactly, an
organisation's rule, kingfisher's provider rule, our own provider detectors and
detect-secrets' plugins, keyword/context detectors and the entropy plugins. Every
detection carries its layer's :class:`Rank`; detections of one text unit whose spans
overlap (directly or through a chain) are one secret, reported once, with the type of
the detection that sorts first by

1. rank: injected value (matched in memory: whole, in an encoding, or a run of at
   least ``min_fragment`` characters of it, type ``Injected Secret (fragment)``; or
   through the fingerprint registry of earlier injections) > organisation rule > kingfisher provider rule of high
   confidence (a distinctive prefix or structure) > our provider detectors (and
   detect-secrets' provider plugins) > kingfisher rule of medium confidence (a bare
   shape such as ``sk-`` + 48 characters, which several providers share, or a keyword
   near a value) > keyword/context > entropy;
2. the longer span (the outer one: a whole PEM block before its header line);
3. the earlier start, then the type name, then the secret itself.

That order is total, so the type of a finding does not depend on the order in which the
layers ran, on set or dict iteration order (which changes with ``PYTHONHASHSEED`` from
one process to the next), on the thread that scanned the text, or on what the cache
held. The merged finding spans every detection of the group, so redaction removes all
of it; the group's other ``(type, secret)`` pairs are kept as aliases so a
detect-secrets baseline entry written for any of them still suppresses the finding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from .models import Detection


class Rank(IntEnum):
    """A layer's precedence: lower wins."""

    EXACT = 0  # injected values: in memory (ExactMatcher: whole, encoded, fragments), registry
    ORG_RULE = 1
    PROVIDER_RULE = 2
    OUR_PROVIDER = 3
    PROVIDER_GUESS = 4
    CONTEXT = 5
    ENTROPY = 6


ENTROPY_TYPES = frozenset({"Base64 High Entropy String", "Hex High Entropy String"})
#: Types our detectors report from a name standing next to a value, not a format.
CONTEXT_TYPES = frozenset({"Secret Keyword", "Basic Auth Credentials"})
#: Fixed-format types of our own detectors and detect-secrets' provider plugins.
OUR_PROVIDER_TYPES = frozenset(
    {
        "AWS Access Key",
        "Artifactory Credentials",
        "Azure Storage Account access key",
        "Cloudant Credentials",
        "Discord Bot Token",
        "GitHub Token",
        "GitLab Token",
        "IBM COS HMAC Credentials",
        "IBM Cloud IAM Key",
        "JSON Web Token",
        "Mailchimp Access Key",
        "NPM tokens",
        "OpenAI Token",
        "Private Key",
        "Public IP (ipv4)",
        "PyPI Token",
        "SendGrid API Key",
        "Slack Token",
        "SoftLayer Credentials",
        "Square OAuth Secret",
        "Stripe Access Key",
        "Telegram Bot Token",
        "Twilio API Key",
        # ours (detectors.FAMILIES)
        "PEM Private Key",
        "Vault Token",
        "IBM Quantum API Token",
        "Azure Storage Connection String",
        "OpenAI API Key",
        "HTTP Authorization",
        "Connection String Password",
        "Plaid Credential",
        "Snyk API Token",
        "HubSpot API Key",
    }
)


#: A placeholder inside a value: ``shpat_xxxxxxxx…``, ``key-********``, ``sk-<your-key>``,
#: ``${TOKEN}``. A random token (or base64 of random bytes) has no such run: six ``x`` in a
#: row in 64 random base64 characters is a one-in-ten-million event.
_PLACEHOLDER_IN_VALUE = re.compile(
    r"(?i)x{6,}|\*{4,}|\.{6,}|_{6,}|#{6,}|<[a-z][\w .-]{0,40}>|\$\{[^}\s]{1,64}\}|\{\{[^}]{1,64}\}\}"
)


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.+/=*")


def is_placeholder_value(secret: str) -> bool:
    """True for a value with a placeholder inside (applied to every layer but exact values).

    The detectors' own filters look at whole values (``xxxx``, ``<your-token>``); a
    provider prefix in front (``ghp_xxxx…``) hides the placeholder from them.
    """
    return _PLACEHOLDER_IN_VALUE.search(secret) is not None


def token_around(text: str, start: int, end: int, limit: int = 512) -> str:
    """The detection widened to the whole token it sits in (at most ``limit`` more each side).

    Some detect-secrets plugins report only a token's prefix (``ghp`` of a GitHub token):
    the placeholder check must see the rest.
    """
    lo = start
    while lo > 0 and start - lo < limit and text[lo - 1] in _TOKEN_CHARS:
        lo -= 1
    hi = end
    while hi < len(text) and hi - end < limit and text[hi] in _TOKEN_CHARS:
        hi += 1
    return text[lo:hi]


def rank_of_ours(type_: str) -> Rank:
    """The rank of a detection from :func:`.detectors.detect` (by its type).

    A type this table does not know (a new context detector) ranks as context.
    """
    if type_ in ENTROPY_TYPES:
        return Rank.ENTROPY
    if type_ in OUR_PROVIDER_TYPES:
        return Rank.OUR_PROVIDER
    return Rank.CONTEXT


@dataclass(frozen=True)
class Layered:
    """A detection with its layer's rank and, for rule layers, the rule id."""

    rank: Rank
    detection: Detection
    rule: str = ""

    def sort_key(self) -> tuple[int, int, int, str, str]:
        d = self.detection
        return (int(self.rank), d.start - d.end, d.start, d.type, d.secret)


@dataclass(frozen=True)
class Resolved:
    """One secret: the winning detection, the merged span, and the group's aliases."""

    winner: Layered
    start: int
    end: int
    members: tuple[Layered, ...] = field(repr=False)

    @property
    def detection(self) -> Detection:
        return self.winner.detection


def resolve(found: Iterable[Layered]) -> list[Resolved]:
    """Group overlapping detections of one text; one :class:`Resolved` per group, by start."""
    ordered = sorted(set(found), key=lambda x: (x.detection.start, x.sort_key()))
    groups: list[list[Layered]] = []
    group_end = -1
    for item in ordered:
        d = item.detection
        if groups and d.start < group_end:
            groups[-1].append(item)
            group_end = max(group_end, d.end)
        else:
            groups.append([item])
            group_end = d.end
    out: list[Resolved] = []
    for group in groups:
        winner = min(group, key=Layered.sort_key)
        out.append(
            Resolved(
                winner,
                min(x.detection.start for x in group),
                max(x.detection.end for x in group),
                tuple(sorted(group, key=Layered.sort_key)),
            )
        )
    return out
