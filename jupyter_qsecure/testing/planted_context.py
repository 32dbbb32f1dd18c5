"""Planted secrets: fake credentials written the ways people leak them, in every notebook place.

Shared by the scanner's tests (``tests/scan/test_scan_context.py``) and
``benchmarks/planted_recall.py`` (recall on the generated set). Nothing here is a real
secret and no secret-shaped literal is in this file: every value is generated when a
case is built. The companion module :mod:`jupyter_qsecure.testing.planted` (provider
formats, when present) plugs in through :func:`provider_values`.

A case is the product of three registries, each a plain list that other modules may
extend (append an entry; names must be unique):

- :data:`VALUES`: what is leaked, a generator of a true secret (random tokens of a few
  alphabets, provider formats), or of a near-miss that is *not* a secret (placeholder,
  public example key, hash, UUID, version, low-entropy string, environment reference);
- :data:`SYNTAXES`: how it is written next to a word that names it (``key = "v"``,
  ``key: v``, dict and JSON reprs, YAML/INI/env/TOML, XML elements and attributes, Go
  raw strings, URL query parameters and userinfo, HTML table rows, ...). A syntax
  renders ``(key, value)`` into a payload of one *medium*: ``text``, ``html`` or
  ``json`` (a JSON-able object);
- :data:`PLACES`: where in a notebook the payload goes (code and markdown source,
  stdout/stderr, ``execute_result`` text/plain, ``display_data`` text/html and
  application/json, an error's value and traceback, cell and notebook metadata). A
  place accepts some media and plants a payload into a copy of a carrier notebook.

:func:`cases` yields every compatible combination as :class:`Planted`, each holding
the notebook, the secret (``None`` for a near-miss) and where it was put. A secret
value never appears in a case's ``repr``.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
import secrets
import string
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Medium = Literal["text", "html", "json"]
Rng = random.Random

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
B64 = ALNUM + "+/"
HEX = "0123456789abcdef"
#: Punctuation a typed password may hold; none of it needs quoting in the syntaxes here.
PUNCT = "!#%*+-.?@^_~"


# ---------------------------------------------------------------------------- values
def token(rng: Rng, n: int, alphabet: str = ALNUM) -> str:
    """``n`` characters of ``alphabet``; with a digit, a lower- and an upper-case letter
    whenever the alphabet has them (what a generated credential nearly always has)."""
    need = [
        cls
        for cls in (string.digits, string.ascii_lowercase, string.ascii_uppercase)
        if set(cls) & set(alphabet)
    ]
    while True:
        s = "".join(rng.choice(alphabet) for _ in range(n))
        if all(any(c in cls for c in s) for cls in need) and s[0] not in "-_+/":
            return s


def typed_password(rng: Rng) -> str:
    """A password a person chose: letters, digits and a punctuation mark, 14-20 long."""
    while True:
        n = rng.randint(14, 20)
        s = token(rng, n - 2) + rng.choice(PUNCT) + rng.choice(string.digits)
        chars = list(s)
        rng.shuffle(chars)
        out = "".join(chars)
        if out[0].isalnum() and out[-1].isalnum():
            return out


def example_key(rng: Rng) -> str:
    """A public documentation key in AWS's style: random upper case ending in EXAMPLE."""
    return token(rng, 30, string.ascii_letters + string.digits + "/") + "EXAMPLEKEY"


@dataclass(frozen=True)
class Value:
    """A value generator. ``secret`` false: a near-miss that must not be reported.

    ``keys`` overrides the key names it is written next to (a hash beside ``sha256``);
    ``syntaxes``, when set, limits the syntaxes it is written in (``excluded``: not
    in these); ``formatted``: the value
    has a provider format of its own, so it is also written with no key at all.
    """

    name: str
    make: Callable[[Rng], str]
    secret: bool = True
    keys: tuple[str, ...] | None = None
    syntaxes: tuple[str, ...] | None = None
    formatted: bool = False
    excluded: tuple[str, ...] = ()


#: Key names that name a credential (a case picks one per combination).
CREDENTIAL_KEYS: tuple[str, ...] = (
    "password",
    "db_password",
    "DB_PASS",
    "passwd",
    "passphrase",
    "secret",
    "client_secret",
    "SECRET_KEY",
    "api_key",
    "apiKey",
    "x-api-key",
    "token",
    "access_token",
    "auth_token",
    "GITHUB_TOKEN",
    "api_token",
    "credential",
    "credentials",
    "aws_secret_access_key",
    "Password",
    "refresh_token",
    "sessionToken",
    "bearer_token",
    "OPENAI_API_KEY",
    "private_key",
)
#: Key names as people write them in sentences.
PROSE_KEYS: tuple[str, ...] = ("API key", "password", "access token", "secret key", "Password")
#: Key names a URL query parameter carrying a credential has.
QUERY_KEYS: tuple[str, ...] = ("api_key", "apikey", "key", "token", "access_token", "password")
#: Key names a hash or digest sits next to.
HASH_KEYS: tuple[str, ...] = (
    "sha256",
    "commit",
    "md5",
    "digest",
    "checksum",
    "git_sha",
    "password_hash",
    "token_sha256",
)

VALUES: list[Value] = [
    # true secrets, provider-agnostic
    Value("alnum-32", lambda r: token(r, 32)),
    Value("urlsafe-43", lambda r: token(r, 43, URLSAFE)),
    Value("base64-40", lambda r: token(r, 38, B64) + "=="),
    Value("hex-32", lambda r: token(r, 32, HEX)),
    Value("typed-password", typed_password),
    # provider formats named by issue 13
    Value(
        "openai-project",
        lambda r: "sk-proj-" + token(r, 74, URLSAFE) + "T3BlbkFJ" + token(r, 74, URLSAFE),
        formatted=True,
    ),
    Value("github-classic", lambda r: "ghp_" + token(r, 36), formatted=True),
    # near misses
    Value("placeholder-x", lambda r: "x" * r.randint(12, 32), secret=False),
    Value("placeholder-angle", lambda r: "<your-token>", secret=False),
    Value("placeholder-env", lambda r: "${API_TOKEN}", secret=False),
    Value("placeholder-changeme", lambda r: "changeme", secret=False),
    Value("placeholder-your", lambda r: "your_api_key_here", secret=False),
    Value("placeholder-stars", lambda r: "*" * r.randint(8, 16), secret=False),
    Value("public-example", example_key, secret=False),
    Value("low-entropy", lambda r: r.choice(string.ascii_lowercase) * 20, secret=False),
    Value("sequence", lambda r: "abcdefghijklmnop1234", secret=False),
    Value(
        "hash-40",
        lambda r: token(r, 40, HEX),
        secret=False,
        keys=HASH_KEYS,
    ),
    Value("hash-64", lambda r: token(r, 64, HEX), secret=False, keys=HASH_KEYS),
    Value(
        "uuid",
        lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
        secret=False,
        excluded=("url-userinfo",),  # a UUID as a URL's password may well be one
    ),
    Value(
        "version",
        lambda r: f"{r.randint(0, 9)}.{r.randint(0, 40)}.{r.randint(0, 20)}rc{r.randint(1, 3)}",
        secret=False,
    ),
    Value(
        "env-lookup",
        lambda r: 'os.environ["API_TOKEN"]',
        secret=False,
        syntaxes=("py-expr",),
    ),
    Value("getpass", lambda r: "getpass.getpass()", secret=False, syntaxes=("py-expr",)),
    Value("setting", lambda r: "settings.API_KEY", secret=False, syntaxes=("py-expr",)),
    Value("path", lambda r: "/home/alice/.config/service/credentials.json", secret=False),
    Value("url", lambda r: "https://vault.example.com/v1/secret/data/app", secret=False),
    Value("template", lambda r: "{{ secrets.API_KEY }}", secret=False),
    Value("printf", lambda r: "%(password)s", secret=False),
    Value("masked-tail", lambda r: "*" * 28 + token(r, 4), secret=False),
    Value("number", lambda r: str(r.randint(10**13, 10**14)), secret=False),
    Value("date", lambda r: f"2024-0{r.randint(1, 9)}-1{r.randint(0, 9)}T12:00:00Z", secret=False),
]


def provider_values() -> list[Value]:
    """The provider formats of :mod:`jupyter_qsecure.testing.planted` (its ``PROVIDERS``,
    each with a ``family`` and a ``make(rng)``) as true values with a format, written in
    this module's syntaxes and places; empty when that module is not there."""
    try:
        from . import planted  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return []
    providers = getattr(planted, "PROVIDERS", ())
    return [
        Value(f"provider-{p.family}", p.make, formatted=True)
        for p in providers
        if isinstance(getattr(p, "family", None), str) and callable(getattr(p, "make", None))
    ]


# ---------------------------------------------------------------------------- syntaxes
@dataclass(frozen=True)
class Syntax:
    """How a value is written beside its key: ``render(key, value)`` gives a payload.

    ``keys``: the key names it accepts (``None``: any of the value's keys);
    ``keyless``: the key is not written at all, so only a value with a format of its
    own can be found (a bare ``Github("…")`` argument); ``in_code``: how the syntax is
    written in a code cell when that is not as it is (a comment, ``%env``, a
    ``%%writefile`` cell, a string); ``encode``: how the value is written (URLs
    percent-encode it), the finding may report either form.
    """

    name: str
    medium: Medium
    render: Callable[[str, str], Any]
    keys: tuple[str, ...] | None = None
    keyless: bool = False
    in_code: Callable[[str, str], str] | None = None
    encode: Callable[[str], str] | None = None


class Markup(str):
    """A payload that is HTML markup (planted as it is; other text is escaped in HTML)."""

    __slots__ = ()


def _env_name(key: str) -> str:
    return key.replace("-", "_").upper()


def _html_row(key: str, value: str) -> str:
    return Markup(
        "<table>\n<tr><th>setting</th><th>value</th></tr>\n"
        f"<tr><td>{html.escape(key)}</td><td>{html.escape(value)}</td></tr>\n"
        "<tr><td>region</td><td>eu-west-1</td></tr>\n</table>"
    )


def _html_header(key: str, value: str) -> str:
    # A pandas DataFrame's to_html(): an index column, the header row in <thead>.
    return Markup(
        '<table border="1" class="dataframe">\n  <thead>\n    <tr style="text-align: right;">\n'
        f"      <th></th>\n      <th>user</th>\n      <th>{html.escape(key)}</th>\n"
        "      <th>host</th>\n    </tr>\n  </thead>\n  <tbody>\n    <tr>\n"
        "      <th>0</th>\n      <td>alice</td>\n"
        f"      <td>{html.escape(value)}</td>\n      <td>db.example.com</td>\n"
        "    </tr>\n  </tbody>\n</table>"
    )


def _html_entities(key: str, value: str) -> str:
    coded = "".join(f"&#{ord(c)};" if i % 2 else c for i, c in enumerate(value))
    return Markup(f"<table><tr><td><b>{html.escape(key)}</b></td><td>{coded}</td></tr></table>")


def _ident(key: str) -> str:
    return key.replace("-", "_").replace(" ", "_")


def _flag(key: str) -> str:
    return key.replace("_", "-").replace(" ", "-").lower()


def _dataframe_text(key: str, value: str) -> str:
    """A pandas DataFrame's text repr: right-aligned columns under their headers."""
    rows = [("", "user", key, "host"), ("0", "alice", value, "db"), ("1", "bob", "-", "db2")]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _series_text(key: str, value: str) -> str:
    """A pandas Series' text repr: index names padded, then the values."""
    width = max(len("user"), len(key)) + 4
    return f"{'user':<{width}}alice\n{_ident(key):<{width}}{value}\nName: 0, dtype: object"


def _url_encode(value: str) -> str:
    return urllib.parse.quote(value, safe="-_.~")


def _yaml(k: str, v: str) -> str:
    return f"service:\n  host: db.example.com\n  {k}: {v}\n"


def _ini(k: str, v: str) -> str:
    return f"[default]\nregion = eu-west-1\n{k} = {v}\n"


SYNTAXES: list[Syntax] = [
    Syntax("py-assign", "text", lambda k, v: f'{k.replace("-", "_")} = "{v}"'),
    Syntax("py-dict", "text", lambda k, v: repr({"user": "alice", k: v})),
    Syntax("json-inline", "text", lambda k, v: json.dumps({"service": {k: v}})),
    Syntax("colon", "text", lambda k, v: f"{k}: {v}", in_code=lambda k, v: f"# {k}: {v}"),
    Syntax(
        "equals",
        "text",
        lambda k, v: f"{k}={v}",
        in_code=lambda k, v: f'!curl -s -d "{k}={v}" https://api.example.com/login',
    ),
    Syntax(
        "prose",
        "text",
        lambda k, v: f"Log in with the following {k}: {v} (do not share)",
        in_code=lambda k, v: f"# Log in with the following {k}: {v} (do not share)",
    ),
    Syntax("yaml", "text", _yaml, in_code=lambda k, v: "%%writefile config.yaml\n" + _yaml(k, v)),
    Syntax("ini", "text", _ini, in_code=lambda k, v: "%%writefile settings.ini\n" + _ini(k, v)),
    Syntax(
        "env",
        "text",
        lambda k, v: f"export {_env_name(k)}={v}",
        in_code=lambda k, v: f"%env {_env_name(k)}={v}",
    ),
    Syntax("toml", "text", lambda k, v: f'[service]\nhost = "db"\n{k.replace("-", "_")} = "{v}"'),
    Syntax(
        "xml-element",
        "text",
        lambda k, v: f"<config><{k}>{v}</{k}></config>",
        in_code=lambda k, v: f'config = """<config><{k}>{v}</{k}></config>"""',
    ),
    Syntax(
        "xml-attribute",
        "text",
        lambda k, v: f'<connection host="db" {k}="{v}" />',
        in_code=lambda k, v: f"""xml = '<connection host="db" {k}="{v}" />'""",
    ),
    Syntax("go-raw", "text", lambda k, v: f"{k.replace('-', '_')} := `{v}`"),
    Syntax(
        "url-query",
        "text",
        lambda k, v: f"GET https://api.example.com/v1/items?limit=10&{k}={v} failed",
        keys=QUERY_KEYS,
        in_code=lambda k, v: (
            f'r = requests.get("https://api.example.com/v1/items?limit=10&{k}={v}")'
        ),
        encode=_url_encode,
    ),
    Syntax(
        "url-userinfo",
        "text",
        lambda k, v: f"connecting to https://alice:{v}@db.example.com:8443/data",
        keys=("password",),
        in_code=lambda k, v: f'engine = create_engine("https://alice:{v}@db.example.com/data")',
        encode=_url_encode,
    ),
    Syntax("py-kwarg", "text", lambda k, v: f'client = Client(region="eu", {_ident(k)}="{v}")'),
    Syntax("py-environ", "text", lambda k, v: f'os.environ["{_env_name(k)}"] = "{v}"'),
    Syntax(
        "json-pretty", "text", lambda k, v: json.dumps({"service": {"name": "db", k: v}}, indent=2)
    ),
    Syntax("yaml-quoted", "text", lambda k, v: f'{k}: "{v}"', in_code=lambda k, v: f'# {k}: "{v}"'),
    Syntax(
        "dotenv",
        "text",
        lambda k, v: f'{_env_name(k)}="{v}"',
        in_code=lambda k, v: f'%%writefile .env\n{_env_name(k)}="{v}"\n',
    ),
    Syntax(
        "cli-flag",
        "text",
        lambda k, v: f"mytool login --user alice --{_flag(k)} {v}",
        in_code=lambda k, v: f"!mytool login --user alice --{_flag(k)} {v}",
    ),
    Syntax(
        "log-kv",
        "text",
        lambda k, v: f"2024-05-01 12:00:01,123 INFO client: user=alice {_ident(k)}={v} region=eu",
        in_code=lambda k, v: f"# 2024-05-01 INFO client: user=alice {_ident(k)}={v} region=eu",
    ),
    Syntax(
        "repr-kwargs",
        "text",
        lambda k, v: f"Credentials(username='alice', {_ident(k)}='{v}', region='eu')",
    ),
    Syntax(
        "prose-is",
        "text",
        lambda k, v: f"The {k} is {v}. Keep it safe.",
        keys=PROSE_KEYS,
        in_code=lambda k, v: f"# The {k} is {v}. Keep it safe.",
    ),
    Syntax(
        "prose-code",
        "text",
        lambda k, v: f"Your {k}: `{v}` (valid for 30 days)",
        keys=PROSE_KEYS,
        in_code=lambda k, v: f"# Your {k}: `{v}` (valid for 30 days)",
    ),
    Syntax(
        "name-value-yaml",
        "text",
        lambda k, v: f"env:\n  - name: {_env_name(k)}\n    value: {v}\n",
        in_code=lambda k, v: (
            "%%writefile deploy.yaml\n" + f"env:\n  - name: {_env_name(k)}\n    value: {v}\n"
        ),
    ),
    Syntax(
        "name-value-json",
        "json",
        lambda k, v: {"env": [{"name": _env_name(k), "value": v}, {"name": "REGION"}]},
    ),
    Syntax(
        "xml-appsetting",
        "text",
        lambda k, v: f'<appSettings>\n  <add key="{k}" value="{v}" />\n</appSettings>',
        in_code=lambda k, v: f"""xml = '<add key="{k}" value="{v}" />'""",
    ),
    Syntax("php-array", "text", lambda k, v: f"$config = ['host' => 'db', '{k}' => '{v}'];"),
    Syntax(
        "sql-password",
        "text",
        lambda k, v: f"CREATE USER alice WITH PASSWORD '{v}';",
        keys=("password",),
        in_code=lambda k, v: f"%sql CREATE USER alice WITH PASSWORD '{v}';",
    ),
    Syntax(
        "netrc",
        "text",
        lambda k, v: f"machine api.example.com login alice password {v}",
        keys=("password",),
        in_code=lambda k, v: (
            f"%%writefile .netrc\nmachine api.example.com login alice password {v}\n"
        ),
    ),
    Syntax(
        "curl-user",
        "text",
        lambda k, v: f"curl -u alice:{v} https://api.example.com/v1/items",
        keys=("password",),
        in_code=lambda k, v: f"!curl -u alice:{v} https://api.example.com/v1/items",
    ),
    Syntax(
        "requests-auth",
        "text",
        lambda k, v: f'r = requests.get(url, auth=("alice", "{v}"))',
        keys=("password",),
    ),
    Syntax(
        "pipe-table",
        "text",
        lambda k, v: f"| user | {k} | host |\n|------|------|------|\n| alice | {v} | db |\n",
        in_code=lambda k, v: f'table = """\n| user | {k} |\n|---|---|\n| alice | {v} |\n"""',
    ),
    Syntax("dataframe-text", "text", _dataframe_text),
    # added after a first measurement, as a held-out set (see benchmarks/scan_corpus.py)
    Syntax(
        "json-spaced-key",
        "text",
        lambda k, v: json.dumps({k: v, "region": "eu"}),
        keys=PROSE_KEYS,
    ),
    Syntax(
        "pandas-series",
        "text",
        _series_text,
        in_code=lambda k, v: f'expected = """\n{_series_text(k, v)}\n"""',
    ),
    Syntax(
        "md-bold-colon-in",
        "text",
        lambda k, v: f"**{k}:** {v}",
        keys=PROSE_KEYS,
        in_code=lambda k, v: f"# **{k}:** {v}",
    ),
    Syntax(
        "md-bold-colon-out",
        "text",
        lambda k, v: f"**{k}**: {v}",
        keys=PROSE_KEYS,
        in_code=lambda k, v: f"# **{k}**: {v}",
    ),
    Syntax(
        "xml-namespaced",
        "text",
        lambda k, v: f"<cfg:settings><cfg:{_ident(k)}>{v}</cfg:{_ident(k)}></cfg:settings>",
        in_code=lambda k, v: f'xml = "<cfg:{_ident(k)}>{v}</cfg:{_ident(k)}>"',
    ),
    Syntax(
        "html-input",
        "text",
        lambda k, v: f'<input type="password" name="pw" value="{v}">',
        keys=("password",),
    ),
    Syntax(
        "docker-login",
        "text",
        lambda k, v: f"docker login -u alice -p {v} registry.example.com",
        keys=("password",),
        in_code=lambda k, v: f"!docker login -u alice -p {v} registry.example.com",
    ),
    Syntax(
        "yaml-block",
        "text",
        lambda k, v: f"{k}: >-\n  {v}\n",
        in_code=lambda k, v: f"%%writefile values.yaml\n{k}: >-\n  {v}\n",
    ),
    Syntax("js-const", "text", lambda k, v: f'const {_ident(k)} = "{v}";'),
    Syntax("r-assign", "text", lambda k, v: f'{_ident(k)} <- "{v}"'),
    Syntax(
        "properties",
        "text",
        lambda k, v: f"db.{_ident(k)}={v}",
        in_code=lambda k, v: f"%%writefile app.properties\ndb.{_ident(k)}={v}\n",
    ),
    Syntax("powershell", "text", lambda k, v: f'$env:{_env_name(k)} = "{v}"'),
    Syntax(
        "curl-header",
        "text",
        lambda k, v: f'curl -H "{k}: {v}" https://api.example.com/v1',
        keys=("X-API-Key", "X-Auth-Token", "Private-Token"),
        in_code=lambda k, v: f'!curl -H "{k}: {v}" https://api.example.com/v1',
    ),
    Syntax(
        "tsv",
        "text",
        lambda k, v: f"name\tvalue\nuser\talice\n{_ident(k)}\t{v}\n",
        in_code=lambda k, v: f"%%writefile settings.tsv\nname\tvalue\n{_ident(k)}\t{v}\n",
    ),
    Syntax(
        "dockerfile-env",
        "text",
        lambda k, v: f"FROM python:3.12\nENV {_env_name(k)} {v}\n",
        in_code=lambda k, v: f"%%writefile Dockerfile\nFROM python:3.12\nENV {_env_name(k)} {v}\n",
    ),
    Syntax("fstring-debug", "text", lambda k, v: f"{_ident(k)}='{v}'"),
    Syntax("py-expr", "text", lambda k, v: f"{k.replace('-', '_')} = {v}"),
    Syntax("client-ctor", "text", lambda k, v: f'client = Github("{v}")', keyless=True),
    Syntax("html-row", "html", _html_row),
    Syntax("html-header", "html", _html_header),
    Syntax("html-entities", "html", _html_entities),
    Syntax("json-object", "json", lambda k, v: {"settings": {"service": {"name": "db", k: v}}}),
]


# ---------------------------------------------------------------------------- places
Notebook = dict[str, Any]


@dataclass(frozen=True)
class Place:
    """Where a payload is put: ``plant(nb, payload)`` edits ``nb`` and returns the index
    of the cell it went into (``None`` for notebook metadata). A place appends cells or
    sets a key of ``nb["metadata"]``; it never changes a cell that was there."""

    name: str
    media: tuple[Medium, ...]
    plant: Callable[[Notebook, Any], int | None]


def _as_text(payload: Any) -> str:
    return payload if isinstance(payload, str) else json.dumps(payload, indent=1)


def _cell(nb: Notebook, cell_type: str, source: str) -> int:
    cell: dict[str, Any] = {
        "cell_type": cell_type,
        "id": f"planted-{len(nb['cells'])}",
        "metadata": {},
        "source": source,
    }
    if cell_type == "code":
        cell["execution_count"] = None
        cell["outputs"] = []
    nb["cells"].append(cell)
    return len(nb["cells"]) - 1


def _output_cell(nb: Notebook, output: dict[str, Any]) -> int:
    index = _cell(nb, "code", "run_job()")
    nb["cells"][index]["outputs"].append(output)
    return index


def _stream(name: str) -> Callable[[Notebook, Any], int | None]:
    def plant(nb: Notebook, payload: Any) -> int | None:
        text = f"Connecting to service ...\n{_as_text(payload)}\nDone in 0.42 s\n"
        return _output_cell(nb, {"output_type": "stream", "name": name, "text": text})

    return plant


def _plant_code(nb: Notebook, payload: Any) -> int | None:
    if payload.startswith("%%"):  # a cell magic is the cell's first line
        return _cell(nb, "code", payload)
    return _cell(nb, "code", f"import requests\n\n{payload}\nresult = run_job()\n")


def _plant_markdown(nb: Notebook, payload: Any) -> int | None:
    return _cell(nb, "markdown", f"## Setup\n\nThe service settings:\n\n{payload}\n")


def _plant_plain(nb: Notebook, payload: Any) -> int | None:
    data = {"text/plain": _as_text(payload)}
    return _output_cell(
        nb, {"output_type": "execute_result", "execution_count": 1, "data": data, "metadata": {}}
    )


def _plant_html(nb: Notebook, payload: Any) -> int | None:
    markup = payload if isinstance(payload, Markup) else f"<pre>{html.escape(payload)}</pre>"
    data = {"text/html": f"<div>{markup}</div>", "text/plain": "<IPython.core.display.HTML>"}
    return _output_cell(nb, {"output_type": "display_data", "data": data, "metadata": {}})


def _plant_json(nb: Notebook, payload: Any) -> int | None:
    value = payload if not isinstance(payload, str) else {"log": [payload]}
    data = {"application/json": value, "text/plain": "<IPython.core.display.JSON object>"}
    return _output_cell(nb, {"output_type": "display_data", "data": data, "metadata": {}})


def _plant_error(nb: Notebook, payload: Any) -> int | None:
    text = _as_text(payload)
    traceback = [
        "\x1b[0;31m" + "-" * 75 + "\x1b[0m",
        "\x1b[0;31mHTTPError\x1b[0m                                 Traceback (most recent call last)",
        "\x1b[0;32m----> 1\x1b[0m run_job()",
        f"\x1b[0;31mHTTPError\x1b[0m: 401 Client Error: {text}",
    ]
    return _output_cell(
        nb,
        {
            "output_type": "error",
            "ename": "HTTPError",
            "evalue": f"401 Client Error: {text}",
            "traceback": traceback,
        },
    )


def _plant_cell_metadata(nb: Notebook, payload: Any) -> int | None:
    index = _cell(nb, "code", "run_job()")
    value = payload if not isinstance(payload, str) else {"notes": payload}
    nb["cells"][index]["metadata"]["app"] = value
    return index


def _plant_notebook_metadata(nb: Notebook, payload: Any) -> int | None:
    value = payload if not isinstance(payload, str) else {"notes": payload}
    nb.setdefault("metadata", {})["app"] = value
    return None


PLACES: list[Place] = [
    Place("code", ("text",), _plant_code),
    Place("markdown", ("text", "html"), _plant_markdown),
    Place("stdout", ("text",), _stream("stdout")),
    Place("stderr", ("text",), _stream("stderr")),
    Place("text/plain", ("text",), _plant_plain),
    Place("text/html", ("text", "html"), _plant_html),
    Place("application/json", ("text", "json"), _plant_json),
    Place("traceback", ("text",), _plant_error),
    Place("cell-metadata", ("text", "json"), _plant_cell_metadata),
    Place("notebook-metadata", ("text", "json"), _plant_notebook_metadata),
]

#: Syntaxes only written in code (an expression as the value) and where they go.
CODE_ONLY = frozenset({"py-expr", "client-ctor", "go-raw"})


# ---------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Planted:
    """One notebook with one planted value (``secret`` is None for a near-miss)."""

    value: str
    syntax: str
    place: str
    key: str
    notebook: Notebook = field(repr=False)
    secret: str | None = field(repr=False)
    cell: int | None
    #: The value as written when it is encoded (percent-encoded in a URL).
    written: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.value}/{self.syntax}/{self.place}"

    @property
    def expected(self) -> bool:
        return self.secret is not None


def _fresh(base: Mapping[str, Any]) -> Notebook:
    """A copy of ``base`` a place may plant into: places only append cells and set keys
    of the notebook's metadata, so the cell list and the metadata dict are copied and
    the rest is shared (a real notebook as carrier is not copied whole for every case)."""
    nb = dict(base)
    nb["cells"] = list(base.get("cells") or [])
    nb["metadata"] = dict(base.get("metadata") or {})
    return nb


def empty_notebook() -> Notebook:
    return {
        "cells": [],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def compatible(value: Value, syntax: Syntax, place: Place) -> bool:
    """Whether ``value`` written in ``syntax`` can go to ``place``."""
    if syntax.medium not in place.media:
        return False
    if syntax.name in CODE_ONLY and place.name != "code":
        return False
    if value.syntaxes is not None and syntax.name not in value.syntaxes:
        return False
    if syntax.name in value.excluded:
        return False
    if value.syntaxes is None and syntax.name == "py-expr":
        return False
    if syntax.keyless:
        return value.formatted
    if syntax.name == "url-userinfo":
        return value.keys is None
    return not (value.keys is not None and syntax.keys is not None)


def _keys(value: Value, syntax: Syntax) -> Sequence[str]:
    if value.keys is not None:
        return value.keys
    return syntax.keys if syntax.keys is not None else CREDENTIAL_KEYS


def cases(
    *,
    carrier: Mapping[str, Any] | None = None,
    rng: Rng | None = None,
    values: Sequence[Value] | None = None,
    syntaxes: Sequence[Syntax] | None = None,
    places: Sequence[Place] | None = None,
) -> Iterator[Planted]:
    """Every compatible (value, syntax, place), each planted in a copy of ``carrier``.

    ``rng``: the random source for the values and key choices (a seeded
    ``random.Random`` gives the same set again; default: the OS's CSPRNG).
    """
    rng = rng or secrets.SystemRandom()
    base = dict(carrier) if carrier is not None else empty_notebook()
    for value in values if values is not None else VALUES:
        for syntax in syntaxes if syntaxes is not None else SYNTAXES:
            for place in places if places is not None else PLACES:
                if not compatible(value, syntax, place):
                    continue
                key = rng.choice(list(_keys(value, syntax)))
                made = value.make(rng)
                written = syntax.encode(made) if syntax.encode is not None else made
                render = syntax.render
                if place.name == "code" and syntax.in_code is not None:
                    render = syntax.in_code
                nb = _fresh(base)
                cell = place.plant(nb, render(key, written))
                yield Planted(
                    value=value.name,
                    syntax=syntax.name,
                    place=place.name,
                    key=key,
                    notebook=nb,
                    secret=made if value.secret else None,
                    cell=cell,
                    written=written if written != made else None,
                )


def value_named(name: str) -> Value:
    for value in VALUES:
        if value.name == name:
            return value
    raise KeyError(f"no planted value named {name!r}; known: {[v.name for v in VALUES]}")


def syntax_named(name: str) -> Syntax:
    for syntax in SYNTAXES:
        if syntax.name == name:
            return syntax
    raise KeyError(f"no planted syntax named {name!r}; known: {[s.name for s in SYNTAXES]}")


def place_named(name: str) -> Place:
    for place in PLACES:
        if place.name == name:
            return place
    raise KeyError(f"no planted place named {name!r}; known: {[p.name for p in PLACES]}")


# ---------------------------------------------------------------------------- scoring
def reports(finding: Any, value: str) -> bool:
    """Whether ``finding`` is of exactly ``value``: by its keyed ``fingerprint`` (HMAC with
    the process-wide key, as a default ``Scanner`` makes it), or by the SHA-256
    ``hashed_secret`` that findings carried before keyed fingerprints."""
    fingerprint = getattr(finding, "fingerprint", None)
    if fingerprint is not None:
        from jupyter_qsecure.scan import fingerprints  # type: ignore[attr-defined,unused-ignore]

        return bool(fingerprint == fingerprints.process_fingerprinter()(value))
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return bool(getattr(finding, "hashed_secret", None) == digest)


def caught(case: Planted, findings: Sequence[Any]) -> bool:
    """Whether ``findings`` report the case's secret (see :func:`reports`), as written or
    as encoded in the notebook (percent-encoded in a URL).

    A near-miss is "caught" when anything at all is reported (a false alarm), so the
    carrier must scan clean on its own.
    """
    if case.secret is None:
        return bool(findings)
    forms = [f for f in (case.secret, case.written) if f is not None]
    return any(reports(finding, form) for finding in findings for form in forms)


@dataclass
class Score:
    """Recall on the secrets and false alarms on the near-misses of a set of cases."""

    secrets: int = 0
    found: int = 0
    near_misses: int = 0
    false_alarms: int = 0
    missed: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)

    def add(self, case: Planted, hit: bool) -> None:
        if case.expected:
            self.secrets += 1
            self.found += hit
            if not hit:
                self.missed.append(case.name)
        else:
            self.near_misses += 1
            self.false_alarms += hit
            if hit:
                self.alarms.append(case.name)

    @property
    def recall(self) -> float:
        return self.found / self.secrets if self.secrets else 1.0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.near_misses if self.near_misses else 0.0


def score(scan: Callable[[Notebook], Sequence[Any]], planted: Iterator[Planted]) -> Score:
    """Run ``scan`` (notebook → findings) over ``planted`` cases and count."""
    result = Score()
    for case in planted:
        result.add(case, caught(case, scan(case.notebook)))
    return result
