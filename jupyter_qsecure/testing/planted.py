"""Planted secrets: provider formats × file syntaxes × notebook places, generated at run time.

Shared by the tests and ``benchmarks/scan_corpus.py``. Every value is made here from
random characters in its provider's documented format (prefix, alphabet, length), so
no secret-shaped literal is ever committed; :func:`near_miss` gives, per provider, a
value that must *not* be reported (the provider's prefix with a placeholder body, or
the format one character short).

    for case in cases(rng=random.Random(7)):       # one notebook per case
        nb = case.notebook                          # nbformat v4 dict
        case.secret                                 # what a scanner must find
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

LOWER = string.ascii_lowercase
UPPER = string.ascii_uppercase
DIGITS = string.digits
HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + DIGITS
URLSAFE = ALNUM + "-_"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

Rng = random.Random


def _sys() -> Rng:
    return random.SystemRandom()


def rand(rng: Rng, n: int, alphabet: str = ALNUM) -> str:
    """``n`` random characters; mixed digits/lower/upper when the alphabet has all three."""
    while True:
        s = "".join(rng.choice(alphabet) for _ in range(n))
        need = [set(a) & set(alphabet) for a in (DIGITS, LOWER, UPPER)]
        if all(not group or set(s) & group for group in need) or n < 12:
            return s


def _uuid(rng: Rng, upper: bool = False) -> str:
    parts = [rand(rng, n, HEX) for n in (8, 4, 4, 4, 12)]
    value = "-".join(parts)
    return value.upper() if upper else value


@dataclass(frozen=True)
class Provider:
    """A provider format: how to make a value, the name it is stored under, its type."""

    family: str
    type: str
    key: str
    make: Callable[[Rng], str] = field(repr=False)
    #: Characters of ``make``'s output that are its fixed prefix (kept in near misses).
    prefix: str = ""


def _p(family: str, type_: str, key: str, make: Callable[[Rng], str], prefix: str = "") -> Provider:
    return Provider(family, type_, key, make, prefix)


PROVIDERS: tuple[Provider, ...] = (
    # the families issue 13 found at zero recall
    _p(
        "shopify",
        "Shopify Token",
        "SHOPIFY_ACCESS_TOKEN",
        lambda r: "shpat_" + rand(r, 32, HEX),
        "shpat_",
    ),
    _p(
        "digitalocean",
        "DigitalOcean Token",
        "DIGITALOCEAN_TOKEN",
        lambda r: "dop_v1_" + rand(r, 64, HEX),
        "dop_v1_",
    ),
    _p(
        "mailgun",
        "Mailgun API Key",
        "MAILGUN_API_KEY",
        lambda r: "key-" + rand(r, 32, HEX),
        "key-",
    ),
    _p(
        "databricks",
        "Databricks Token",
        "DATABRICKS_TOKEN",
        lambda r: "dapi" + rand(r, 32, HEX),
        "dapi",
    ),
    _p("hubspot", "HubSpot API Key", "HUBSPOT_API_KEY", lambda r: _uuid(r, upper=True)),
    _p("datadog", "Datadog API Key", "DATADOG_API_KEY", lambda r: rand(r, 32, LOWER + DIGITS)),
    _p("snyk", "Snyk API Token", "SNYK_TOKEN", lambda r: _uuid(r)),
    _p(
        "age",
        "age Secret Key",
        "AGE_SECRET_KEY",
        lambda r: "AGE-SECRET-KEY-1" + rand(r, 58, BECH32).upper(),
        "AGE-SECRET-KEY-1",
    ),
    _p(
        "plaid",
        "Plaid Credential",
        "PLAID_ACCESS_TOKEN",
        lambda r: "access-production-" + _uuid(r),
        "access-production-",
    ),
    _p(
        "airtable",
        "Airtable Token",
        "AIRTABLE_TOKEN",
        lambda r: "pat" + rand(r, 14, ALNUM) + "." + rand(r, 64, HEX),
        "pat",
    ),
    _p(
        "openai",
        "OpenAI API Key",
        "OPENAI_API_KEY",
        # real keys end in a letter or digit (kingfisher's rule ends in \b)
        lambda r: (
            "sk-proj-" + rand(r, 74, URLSAFE) + "T3BlbkFJ" + rand(r, 73, URLSAFE) + r.choice(ALNUM)
        ),
        "sk-proj-",
    ),
    # well-known formats
    _p("github", "GitHub Token", "GITHUB_TOKEN", lambda r: "ghp_" + rand(r, 36), "ghp_"),
    _p(
        "github-fine-grained",
        "GitHub Token",
        "GH_PAT",
        lambda r: "github_pat_" + rand(r, 22) + "_" + rand(r, 59),
        "github_pat_",
    ),
    _p(
        "gitlab",
        "GitLab Token",
        "GITLAB_TOKEN",
        lambda r: "glpat-" + rand(r, 20, URLSAFE),
        "glpat-",
    ),
    _p(
        "slack",
        "Slack Token",
        "SLACK_BOT_TOKEN",
        lambda r: f"xoxb-{rand(r, 12, DIGITS)}-{rand(r, 13, DIGITS)}-{rand(r, 24)}",
        "xoxb-",
    ),
    _p(
        "aws",
        "AWS Access Key",
        "AWS_ACCESS_KEY_ID",
        lambda r: "AKIA" + rand(r, 16, UPPER + "234567"),
        "AKIA",
    ),
    _p(
        "stripe",
        "Stripe Access Key",
        "STRIPE_SECRET_KEY",
        lambda r: "sk_live_" + rand(r, 24),
        "sk_live_",
    ),
    _p(
        "sendgrid",
        "SendGrid API Key",
        "SENDGRID_API_KEY",
        lambda r: "SG." + rand(r, 22, URLSAFE) + "." + rand(r, 43, URLSAFE),
        "SG.",
    ),
    _p("npm", "NPM tokens", "NPM_TOKEN", lambda r: "npm_" + rand(r, 36), "npm_"),
    _p(
        "pypi",
        "PyPI Token",
        "PYPI_TOKEN",
        lambda r: "pypi-AgEIcHlwaS5vcmc" + rand(r, 70, URLSAFE),
        "pypi-AgEIcHlwaS5vcmc",
    ),
    _p(
        "anthropic",
        "Anthropic API Key",
        "ANTHROPIC_API_KEY",
        lambda r: "sk-ant-api03-" + rand(r, 93, URLSAFE) + "AA",
        "sk-ant-api03-",
    ),
    _p(
        "huggingface",
        "Hugging Face Token",
        "HF_TOKEN",
        lambda r: "hf_" + rand(r, 34, string.ascii_letters),
        "hf_",
    ),
    _p(
        "gcp",
        "Google API Key",
        "GOOGLE_API_KEY",
        lambda r: "AIza" + rand(r, 35, URLSAFE),
        "AIza",
    ),
    _p(
        "linear",
        "Linear API Key",
        "LINEAR_API_KEY",
        lambda r: "lin_api_" + rand(r, 40),
        "lin_api_",
    ),
    _p(
        "doppler",
        "Doppler Token",
        "DOPPLER_TOKEN",
        lambda r: "dp.pt." + rand(r, 43),
        "dp.pt.",
    ),
    _p(
        "postman",
        "Postman API Key",
        "POSTMAN_API_KEY",
        lambda r: "PMAK-" + rand(r, 24, HEX) + "-" + rand(r, 34, HEX),
        "PMAK-",
    ),
    _p(
        "pulumi",
        "Pulumi Token",
        "PULUMI_ACCESS_TOKEN",
        lambda r: "pul-" + rand(r, 40, HEX),
        "pul-",
    ),
    _p(
        "grafana",
        "Grafana Token",
        "GRAFANA_TOKEN",
        lambda r: "glsa_" + rand(r, 32) + "_" + rand(r, 8, HEX),
        "glsa_",
    ),
    _p(
        "sentry",
        "Sentry Token",
        "SENTRY_AUTH_TOKEN",
        lambda r: "sntryu_" + rand(r, 64, HEX),
        "sntryu_",
    ),
    _p(
        "dynatrace",
        "Dynatrace API Token",
        "DT_API_TOKEN",
        lambda r: "dt0c01." + rand(r, 24, UPPER + DIGITS) + "." + rand(r, 64, UPPER + DIGITS),
        "dt0c01.",
    ),
    _p(
        "heroku",
        "Heroku API Key",
        "HEROKU_API_KEY",
        lambda r: "HRKU-AA" + rand(r, 58, URLSAFE),
        "HRKU-AA",
    ),
    _p(
        "groq",
        "Groq API Key",
        "GROQ_API_KEY",
        lambda r: "gsk_" + rand(r, 52),
        "gsk_",
    ),
    _p(
        "replicate",
        "Replicate API Token",
        "REPLICATE_API_TOKEN",
        lambda r: "r8_" + rand(r, 37),
        "r8_",
    ),
    _p(
        "vercel",
        "Vercel Token",
        "VERCEL_TOKEN",
        lambda r: "vcp_" + rand(r, 56, URLSAFE),
        "vcp_",
    ),
    _p(
        "notion",
        "Notion Token",
        "NOTION_TOKEN",
        lambda r: "ntn_" + rand(r, 11, DIGITS) + rand(r, 35),
        "ntn_",
    ),
    _p(
        "vault",
        "Vault Token",
        "VAULT_TOKEN",
        # kingfisher's rule drops a token whose body starts with 24 letters (its filter for
        # legacy ``s.`` tokens); a digit early keeps about 1 in 140 generated values found
        lambda r: "hvs." + rand(r, 3, URLSAFE) + rand(r, 1, DIGITS) + rand(r, 91, URLSAFE),
        "hvs.",
    ),
    _p(
        "telegram",
        "Telegram Bot Token",
        "TELEGRAM_BOT_TOKEN",
        lambda r: rand(r, 10, DIGITS) + ":AA" + rand(r, 33, URLSAFE),
    ),
    _p(
        "new-relic",
        "New Relic API Key",
        "NEW_RELIC_API_KEY",
        lambda r: "NRAK-" + rand(r, 27, UPPER + DIGITS),
        "NRAK-",
    ),
    _p(
        "twilio",
        "Twilio API Key",
        "TWILIO_API_KEY",
        lambda r: "SK" + rand(r, 32, HEX),
        "SK",
    ),
    _p(
        "azure-storage",
        "Azure Storage Account access key",
        "AZURE_STORAGE_KEY",
        lambda r: base64.b64encode(bytes(r.getrandbits(8) for _ in range(64))).decode(),
    ),
)
PROVIDER_BY_FAMILY = {p.family: p for p in PROVIDERS}


def make_secret(provider: Provider, rng: Rng | None = None) -> str:
    """A random value in the provider's format that the scanner's placeholder filters
    would not take for a placeholder (about 1 draw in 50,000 begins ``xxx``, and a key
    written as ``xxx…`` is reported as a keyword assignment, not under its provider)."""
    from ..scan.providers import plausible  # the filters the provider layer applies

    rng = rng or _sys()
    while True:
        value = provider.make(rng)
        if plausible(value):
            return value


def near_miss(provider: Provider, rng: Rng | None = None) -> str:
    """A value that looks like the provider's but must not be reported.

    With a fixed prefix: the prefix and a placeholder body (``shpat_xxxx…``). Without
    one: a placeholder of the same length (``xxxx…``).
    """
    value = make_secret(provider, rng)
    return provider.prefix + "x" * (len(value) - len(provider.prefix))


# ---------------------------------------------------------------- syntaxes
def _snake(key: str) -> str:
    return key.lower()


def _camel(key: str) -> str:
    head, *rest = key.lower().split("_")
    return head + "".join(w.title() for w in rest)


SYNTAXES: dict[str, Callable[[str, str], str]] = {
    "py": lambda k, v: f'{k} = "{v}"\n',
    "json": lambda k, v: json.dumps({_snake(k): v}, indent=2) + "\n",
    "yaml": lambda k, v: f"{_snake(k)}: {v}\n",
    "ini": lambda k, v: f"[default]\n{_snake(k)} = {v}\n",
    "env": lambda k, v: f"{k}={v}\n",
    "toml": lambda k, v: f'{_snake(k)} = "{v}"\n',
    "xml": lambda k, v: f"<config>\n  <{_snake(k)}>{v}</{_snake(k)}>\n</config>\n",
    "go": lambda k, v: f"{_camel(k)} := `{v}`\n",
}
_FILE_NAMES = {
    "json": "config.json",
    "yaml": "config.yaml",
    "ini": "config.ini",
    "env": ".env",
    "toml": "config.toml",
    "xml": "config.xml",
    "go": "main.go",
}
PLACES = ("source", "stream", "execute_result", "markdown", "metadata")


def snippet(provider: Provider, syntax: str, value: str) -> str:
    return SYNTAXES[syntax](provider.key, value)


def _cell(cell_type: str, source: str, index: int, **extra: Any) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "cell_type": cell_type,
        "id": f"cell-{index}",
        "metadata": {},
        "source": source,
    }
    if cell_type == "code":
        cell.update({"execution_count": None, "outputs": []})
    cell.update(extra)
    return cell


def place_notebook(text: str, syntax: str, place: str) -> dict[str, Any]:
    """A v4 notebook (plain dicts) with ``text`` in one notebook place, and a clean cell."""
    cells = [_cell("code", "import os\nprint(os.getcwd())", 0)]
    out: dict[str, Any]
    if place == "source":
        source = text if syntax == "py" else f"%%writefile {_FILE_NAMES[syntax]}\n{text}"
        cells.append(_cell("code", source, 1))
    elif place == "markdown":
        cells.append(_cell("markdown", f"Settings used:\n\n```\n{text}```\n", 1))
    elif place == "stream":
        out = {"output_type": "stream", "name": "stdout", "text": text}
        cells.append(_cell("code", "show_config()", 1, outputs=[out]))
    elif place == "execute_result":
        out = {
            "output_type": "execute_result",
            "data": {"text/plain": text},
            "metadata": {},
            "execution_count": 1,
        }
        cells.append(_cell("code", "show_config()", 1, outputs=[out]))
    elif place == "metadata":
        cells.append(_cell("code", "show_config()", 1, metadata={"config": text}))
    else:
        raise ValueError(f"unknown notebook place {place!r}; one of {', '.join(PLACES)}")
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


@dataclass(frozen=True)
class Case:
    """One planted secret (or near miss) in one syntax and notebook place."""

    provider: Provider
    syntax: str
    place: str
    secret: str = field(repr=False)
    notebook: dict[str, Any] = field(repr=False)
    positive: bool = True

    @property
    def name(self) -> str:
        kind = "" if self.positive else " (near miss)"
        return f"{self.provider.family}/{self.syntax}/{self.place}{kind}"


def case(
    provider: Provider,
    syntax: str,
    place: str,
    *,
    positive: bool = True,
    rng: Rng | None = None,
) -> Case:
    value = make_secret(provider, rng) if positive else near_miss(provider, rng)
    nb = place_notebook(snippet(provider, syntax, value), syntax, place)
    return Case(provider, syntax, place, value, nb, positive)


def cases(
    *,
    providers: Sequence[Provider] = PROVIDERS,
    syntaxes: Sequence[str] = tuple(SYNTAXES),
    places: Sequence[str] = PLACES,
    positive: bool = True,
    rng: Rng | None = None,
) -> Iterator[Case]:
    """Every combination, one notebook each."""
    rng = rng or _sys()
    for provider in providers:
        for syntax in syntaxes:
            for place in places:
                yield case(provider, syntax, place, positive=positive, rng=rng)


def random_base64(n_bytes: int) -> str:
    """Standard base64 of ``n_bytes`` random bytes (what a generated key often looks like)."""
    return base64.b64encode(secrets.token_bytes(n_bytes)).decode()


def token(n: int = 32) -> str:
    """A random URL-safe string (for values without a provider format)."""
    return secrets.token_urlsafe(n)
