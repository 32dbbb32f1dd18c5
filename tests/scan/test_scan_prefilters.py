"""The scanner's prefilters never drop a true secret.

Gates (literal words, regex gates) skip a detect-secrets plugin on a text where it cannot
fire; case-insensitive regexes run case-sensitively over the folded text; rendered HTML
is computed without its offset map. Each test here compares against the plugin's own
regexes (or the full computation) run without the shortcut, on values generated at run
time, so a gate that is too narrow fails it.
"""

from __future__ import annotations

import random
import re
import secrets
import string
import sys

import pytest
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
from detect_secrets.plugins.keyword import KeywordDetector

from jupyter_qsecure.scan import detectors as D
from jupyter_qsecure.scan.rendered import visible_only, visible_text

ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"


def _rand(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _samples() -> dict[str, list[str]]:
    """One or more lines per plugin that its own regexes match (values fresh each run)."""
    return {
        "AWSKeyDetector": [
            "AKIA" + _rand(string.ascii_uppercase + string.digits, 16),
            f'aws_secret_token = "{_rand(B64, 40)}"',
            f'AWS_Secret_Key: "{_rand(B64, 40)}"',
        ],
        "ArtifactoryDetector": [
            f"x AKC{_rand(ALNUM, 12)} y",
            f'token="AP{secrets.choice("0123456789ABCDEF")}{_rand(ALNUM, 10)}"',
        ],
        "AzureStorageKeyDetector": [f"AccountKey={_rand(B64, 88)}"],
        "CloudantDetector": [
            f'cloudant_apikey = "{_rand(HEX, 64)}"',
            f"CL_PASSWORD: {_rand(string.ascii_lowercase, 24)}",
            f"https://u:{_rand(HEX, 64)}@acct.Cloudant.com",
        ],
        "DiscordBotTokenDetector": [
            "M" + _rand(ALNUM, 23) + "." + _rand(ALNUM, 6) + "." + _rand(ALNUM, 27)
        ],
        "GitHubTokenDetector": ["ghp_" + _rand(ALNUM, 36)],
        "GitLabTokenDetector": ["glpat-" + _rand(ALNUM, 20), "GR1348941" + _rand(ALNUM, 20)],
        "IPPublicDetector": [
            f"host {random.randint(11, 99)}.{random.randint(0, 255)}.{random.randint(0, 255)}."
            f"{random.randint(0, 255)}:8080"
        ],
        "IbmCloudIamDetector": [
            f'IBM_CLOUD_IAM_API_KEY = "{_rand(ALNUM + "_-", 44)}"',
            f"ibm-iam-Token => {_rand(ALNUM, 44)}",
            f"Password   {_rand(ALNUM, 44)}",
        ],
        "IbmCosHmacDetector": [f'cos_hmac_secret_access_key = "{_rand(HEX, 48)}"'],
        "JwtTokenDetector": [
            "eyJ" + _rand(ALNUM, 20) + "." + _rand(ALNUM, 30) + "." + _rand(ALNUM, 20)
        ],
        "KeywordDetector": [
            f'Password = "{_rand(ALNUM, 14)}"',
            f"DB_PASS: {_rand(ALNUM, 14)}",
            f'contraseña = "{_rand(ALNUM, 14)}"',
        ],
        "MailchimpDetector": [_rand(LOWER_ALNUM, 32) + "-us12"],
        "NpmDetector": ["//registry.npmjs.org/:_authToken=npm_" + _rand(ALNUM, 36)],
        "OpenAIDetector": ["sk-" + _rand(ALNUM, 20) + "T3BlbkFJ" + _rand(ALNUM, 20)],
        "PrivateKeyDetector": ["-----BEGIN RSA PRIVATE KEY-----"],  # pragma: allowlist secret
        "PypiTokenDetector": ["pypi-AgEIcHlwaS5vcmc" + _rand(ALNUM, 70)],
        "SendGridDetector": ["SG." + _rand(ALNUM, 22) + "." + _rand(ALNUM, 43)],
        "SlackDetector": [
            f"xoxb-{random.randint(10, 99999)}-{random.randint(10, 99999)}-{_rand(LOWER_ALNUM, 20)}",
            "https://hooks.slack.com/services/T"
            + _rand(ALNUM, 8)
            + "/B"
            + _rand(ALNUM, 8)
            + "/"
            + _rand(ALNUM, 24),
        ],
        "SoftlayerDetector": [
            f'SOFTLAYER_API_KEY = "{_rand(LOWER_ALNUM, 64)}"',
            f"sl_token: {_rand(LOWER_ALNUM, 64)}",
            f"https://api.softlayer.com/soap/v3/{_rand(LOWER_ALNUM, 64)}",
        ],
        "SquareOAuthDetector": ["sq0csp-" + _rand(ALNUM, 43)],
        "StripeDetector": ["sk_live_" + _rand(ALNUM, 24)],
        "TelegramBotTokenDetector": [
            f"{random.randint(10**8, 10**9 - 1)}:{_rand(ALNUM + '_-', 35)}"
        ],
        "TwilioKeyDetector": ["AC" + _rand(LOWER_ALNUM, 32), "SK" + _rand(LOWER_ALNUM, 32)],
        "Base64HighEntropyString": [f'api_key = "{_rand(B64, 40)}"'],
        "HexHighEntropyString": [f"secret: '{_rand(HEX, 40)}'"],
        "BasicAuthDetector": [f"postgres://admin:{_rand(ALNUM, 12)}@db.example:5432/x"],
    }


def _plugin(name: str) -> object:
    return next(p for p in D._plugins() if type(p).__name__ == name)


def _reference_lines(plugin: object, text: str) -> set[int]:
    """Lines where the plugin's own regexes match, with no gate and no folding."""
    lines = D.Lines(text)

    def line_set(regex: re.Pattern[str]) -> set[int]:
        out: set[int] = set()
        for m in regex.finditer(text):
            out.update(
                range(lines.index_of(m.start()), lines.index_of(max(m.start(), m.end() - 1)) + 1)
            )
        return out

    if isinstance(plugin, KeywordDetector):
        return line_set(D._KEYWORD_TRIGGER)
    if isinstance(plugin, HighEntropyStringsPlugin):
        return line_set(D._SECRETISH) & line_set(plugin.regex)
    assert isinstance(plugin, RegexBasedDetector)
    out: set[int] = set()
    for regex in plugin.denylist:
        out |= line_set(regex)
    return out


#: Text around the samples: plain ASCII; non-ASCII that folds (é, Kelvin sign); and
#: characters that make folding unusable (long s, dotless i, dotted capital I).
_NOISE = [
    "x = 1",
    "print('done')",
    "café au lait",
    "K\u212a temperature",
    "pa\u017fs",
    "\u0131d",
    "\u0130stanbul",
]


@pytest.mark.parametrize("noise", _NOISE)
def test_every_gated_plugin_still_sees_its_true_samples(noise: str) -> None:
    for name, lines in _samples().items():
        plugin = _plugin(name)
        for sample in lines:
            for variant in {sample, sample.upper(), sample.lower(), sample.swapcase()}:
                text = f"{noise}\n{variant}\n{noise}"
                expected = _reference_lines(plugin, text)
                if variant == sample:
                    assert 1 in expected, f"sample for {name} does not match its regexes"
                ctx = D._Context(text, "cell.py")
                got = set(D._trigger_lines(plugin, ctx))  # type: ignore[arg-type]
                assert expected <= got, f"{name}: a prefilter dropped a true line"


def test_trigger_lines_equal_the_unfiltered_regexes_on_mixed_texts() -> None:
    rng = random.Random(secrets.randbits(32))
    pool = [line for lines in _samples().values() for line in lines]
    pool += [*_NOISE, "key = sorted(x, key=len)", "API docs: see AP123", "a = 'abc' 'def'"]
    for _ in range(60):
        picked = rng.choices(pool, k=rng.randint(1, 12))
        text = "\n".join(rng.choice([s, s.upper(), s.lower()]) for s in picked)
        ctx = D._Context(text, "cell.py")
        for plugin in D._plugins():
            got = set(D._trigger_lines(plugin, ctx))
            assert got == _reference_lines(plugin, text), type(plugin).__name__


def test_folding_matches_case_insensitive_matching_over_all_of_unicode() -> None:
    """:func:`folded_text`'s premise: apart from its exceptions (and characters whose lower
    case is two characters, for which it gives up), ``(?i)`` of a lower-case pattern
    matches a character exactly when the pattern matches the character's lower case."""
    letters = re.compile("(?i)[a-z\u00f1]")
    classes = [re.compile(p) for p in (r"\w", r"\d", r"\s")]
    odd = []
    for cp in range(128, sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        low = c.lower()
        if len(low) != 1:
            assert D.folded_text(c, low) is None
            continue
        if letters.match(c) and not (low.isascii() or low == "\u00f1"):
            odd.append(cp)
        elif any(bool(r.match(c)) != bool(r.match(low)) for r in classes):
            odd.append(cp)
    assert odd == [0x131, 0x17F]
    assert all(D.folded_text(f"a{chr(cp)}", f"a{chr(cp)}".lower()) is None for cp in odd)
    assert D.folded_text("Café", "café") == "café"


def test_caseless_only_for_lower_case_patterns() -> None:
    assert D.caseless(D._KEYWORD_TRIGGER) is not None
    assert D.caseless(D._SECRETISH) is not None
    assert D.caseless(re.compile(r"[A-Z]\w+", re.IGNORECASE)) is None
    assert D.caseless(re.compile(r"\W\S\d+", re.IGNORECASE)) is not None
    assert D.caseless(re.compile("abc")) is None  # already case-sensitive


@pytest.mark.parametrize("noise", ["", "café ", "\u017f "])
def test_ibm_quantum_token_found_in_any_case(noise: str) -> None:
    token = _rand(HEX, 128)
    for call in ("QiskitRuntimeService", "qiskitruntimeservice", "QISKIT_IBM"):
        for value in (token, token.upper()):
            text = f'{noise}{call}(channel="ibm_quantum", token="{value}")'
            found = [d for d in D.detect(text, "cell.py") if d.type == "IBM Quantum API Token"]
            assert [d.secret for d in found] == [value]
            assert text[found[0].start : found[0].end] == value


def test_vault_token_gate() -> None:
    token = "hvs." + _rand(ALNUM, 90)
    found = D.detect(f'client.token = "{token}"', "cell.py")
    assert any(d.type == "Vault Token" and d.secret == token for d in found)


def _markup(rng: random.Random) -> str:
    parts = [
        "<b>",
        "</b>",
        "<span class='a>b'>",
        "<!-- c -->",
        "<![CDATA[",
        "]]>",
        "&amp;",
        "&lt;",
        "&#65;",
        "&#x42;",
        "&nosuch;",
        "&amp",
        "a < b",
        "text",
        "\n",
        "é",
        '<tspan x="1">',
        "&",
        ";",
        "<",
        ">",
    ]
    return "".join(rng.choice(parts) for _ in range(rng.randint(0, 40)))


def _json_text(rng: random.Random) -> str:
    parts = ["\\n", "\\/", "\\\\/", "\\\\", '\\"', "\\u00e9", "\\ud83d\\ude00", "\\q", "a", "/"]
    return "".join(rng.choice(parts) for _ in range(rng.randint(0, 30)))


def test_visible_only_is_visible_text_without_the_map() -> None:
    rng = random.Random(secrets.randbits(32))
    for _ in range(500):
        for kind in ("html", "svg"):
            source = _markup(rng)
            assert visible_only(source, kind) == visible_text(source, kind)[0], source
        ansi = "".join(
            rng.choice(["\x1b[31m", "\x1b[0m", "a", "\x1b]0;t\x07", "b\n"]) for _ in range(20)
        )
        assert visible_only(ansi, "ansi") == visible_text(ansi, "ansi")[0]
        source = _json_text(rng)
        assert visible_only(source, "json") == visible_text(source, "json")[0], source
    with pytest.raises(ValueError, match="unknown kind"):
        visible_only("x", "pdf")


def test_gate_words_overlap() -> None:
    """A gate word inside another ("key" in "accountkey=") is present too."""
    present = D._Context("AccountKey=abc", "cell.py").present()
    assert {"key", "accountkey="} <= present


def test_gate_words_in_a_text_with_a_lone_surrogate() -> None:
    present = D._Context("bad \ud800 AccountKey=abc AP", "cell.py").present()
    assert {"key", "accountkey=", "\0AP"} <= present
