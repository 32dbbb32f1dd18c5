"""Context detection (issue 13): a value beside a word naming it, in every syntax and place.

Every case is generated at run time by :mod:`jupyter_qsecure.testing.planted_context`; failure
messages name the case (value kind / syntax / place), never the value.
"""

from __future__ import annotations

import html
import json
import random
import secrets
import string
from collections.abc import Iterable
from typing import Any

import pytest
import scan_fakes as fk

from jupyter_qsecure.scan import Scanner, redact_notebook, scan_text
from jupyter_qsecure.scan.context import names_credential, plausible_secret, ruled_out
from jupyter_qsecure.testing import planted_context as P

SCANNER = Scanner()
#: True value kinds the per-syntax test rotates through; near misses checked in every place.
TRUE_KINDS = ("alnum-32", "urlsafe-43", "base64-40", "hex-32", "typed-password")
NEAR_MISSES = ("placeholder-x", "placeholder-angle", "public-example", "hash-64", "version")


def _findings(nb: Any) -> list[Any]:
    return SCANNER.scan_notebook(nb).findings


def _run(cases: Iterable[P.Planted]) -> P.Score:
    return P.score(_findings, iter(cases))


def _cases(value: str, syntax: str, place: str | None = None, **kw: Any) -> list[P.Planted]:
    places = [P.place_named(place)] if place else None
    return list(
        P.cases(
            values=[P.value_named(value)],
            syntaxes=[P.syntax_named(syntax)],
            places=places,
            **kw,
        )
    )


def _one(value: str, syntax: str, place: str) -> P.Planted:
    (case,) = _cases(value, syntax, place)
    return case


def _assert_caught(case: P.Planted) -> None:
    result = SCANNER.scan_notebook(case.notebook)
    assert P.caught(case, result.findings), f"missed {case.name} (key {case.key!r})"
    assert case.secret is not None
    assert case.secret not in json.dumps(result.to_json())
    assert case.secret not in repr(result)


def _assert_silent(case: P.Planted) -> None:
    found = _findings(case.notebook)
    assert not found, f"false alarm on {case.name}: {[f.type for f in found]}"


# ------------------------------------------------------------ every syntax x place
@pytest.mark.parametrize(
    "syntax", [s.name for s in P.SYNTAXES if not s.keyless and s.name != "py-expr"]
)
def test_syntax_in_every_place_true_case_and_near_misses(syntax: str) -> None:
    rng = random.Random(secrets.randbits(32))
    kind = TRUE_KINDS[rng.randrange(len(TRUE_KINDS))]
    true = P.score(
        _findings,
        P.cases(rng=rng, values=[P.value_named(kind)], syntaxes=[P.syntax_named(syntax)]),
    )
    assert true.secrets, f"no place takes {syntax}"
    assert not true.missed, f"{kind} in {syntax} missed in {true.missed}"
    near = P.score(
        _findings,
        P.cases(
            rng=rng,
            values=[P.value_named(n) for n in NEAR_MISSES],
            syntaxes=[P.syntax_named(syntax)],
        ),
    )
    assert not near.alarms, f"false alarms: {near.alarms}"


def test_code_expressions_are_not_values() -> None:
    near = _run(
        c for name in ("env-lookup", "getpass", "setting") for c in _cases(name, "py-expr", "code")
    )
    assert near.near_misses == 3 and not near.alarms, near.alarms


@pytest.mark.parametrize(
    "kind",
    ["path", "url", "template", "printf", "masked-tail", "number", "date", "uuid", "sequence"],
)
def test_more_near_misses_in_printed_key_values(kind: str) -> None:
    score = _run(c for syntax in ("colon", "equals", "py-dict") for c in _cases(kind, syntax))
    assert score.near_misses and not score.alarms, score.alarms


# ------------------------------------------------------------ issue 13's misses, by name
@pytest.mark.parametrize("place", ["stdout", "stderr", "markdown"])
def test_password_colon_printed_or_in_prose(place: str) -> None:
    _assert_caught(_one("typed-password", "colon", place))
    _assert_caught(_one("alnum-32", "prose", place))
    _assert_silent(_one("placeholder-stars", "colon", place))
    _assert_silent(_one("placeholder-changeme", "prose", place))


def test_credential_in_dict_repr_execute_result() -> None:
    rng = random.Random(secrets.randbits(32))
    for value in ("alnum-32", "typed-password"):
        (case,) = P.cases(
            rng=rng,
            values=[P.value_named(value)],
            syntaxes=[P.syntax_named("py-dict")],
            places=[P.place_named("text/plain")],
        )
        _assert_caught(case)
    _assert_silent(_one("placeholder-your", "py-dict", "text/plain"))


@pytest.mark.parametrize("place", ["application/json", "notebook-metadata", "cell-metadata"])
def test_token_in_json_output_and_metadata_at_depth(place: str) -> None:
    secret = fk.rand(32)
    nb = P.empty_notebook()
    payload = {"a": {"b": [{"c": {"api_token": secret}}]}}
    P.place_named(place).plant(nb, payload)
    found = _findings(nb)
    assert [P.reports(f, secret) for f in found] == [True]
    assert found[0].type == "Secret Keyword"
    _assert_silent(_one("placeholder-env", "json-object", place))
    _assert_silent(_one("hash-40", "json-object", place))


@pytest.mark.parametrize("syntax", ["html-row", "html-header", "html-entities"])
@pytest.mark.parametrize("place", ["text/html", "markdown"])
def test_html_table_cell_named_by_header_or_first_cell(syntax: str, place: str) -> None:
    _assert_caught(_one("urlsafe-43", syntax, place))
    _assert_silent(_one("public-example", syntax, place))
    _assert_silent(_one("placeholder-angle", syntax, place))


@pytest.mark.parametrize("place", ["text/html", "text/plain", "stdout", "markdown"])
def test_html_table_shown_as_escaped_markup(place: str) -> None:
    secret = fk.rand(28)
    table = (
        "<table><tr><th>user</th><th>password</th></tr>"
        f"<tr><td>alice</td><td>{secret}</td></tr></table>"
    )
    nb = P.empty_notebook()
    # markup shown as text: escaped once (text/plain, a stream) or twice (inside HTML)
    P.place_named(place).plant(nb, html.escape(table))
    assert [P.reports(f, secret) for f in _findings(nb)] == [True]


@pytest.mark.parametrize("place", ["traceback", "stderr", "text/plain"])
def test_api_key_url_query_and_userinfo_in_errors(place: str) -> None:
    _assert_caught(_one("urlsafe-43", "url-query", place))
    _assert_caught(_one("base64-40", "url-userinfo", place))  # percent-encoded '/', '+', '='
    _assert_silent(_one("placeholder-x", "url-query", place))
    _assert_silent(_one("template", "url-userinfo", place))


@pytest.mark.parametrize("place", ["stdout", "markdown", "text/plain"])
def test_aws_secret_access_key_in_output_and_prose(place: str) -> None:
    secret = fk.rand(40, string.ascii_letters + string.digits + "/+")
    for text in (f"aws_secret_access_key={secret}", f"Your AWS secret access key: {secret}"):
        nb = P.empty_notebook()
        P.place_named(place).plant(nb, text)
        found = _findings(nb)
        assert any(P.reports(f, secret) for f in found), text.split("=")[0]
    example = P.example_key(random.Random(secrets.randbits(32)))
    nb = P.empty_notebook()
    P.place_named(place).plant(nb, f"aws_secret_access_key={example}")
    assert _findings(nb) == []


def test_openai_project_key_with_dashes_and_underscores() -> None:
    for place in ("code", "stdout", "markdown"):
        # about 1 random key in 100 has neither: draw until one has (the case this test is for)
        for _ in range(50):
            case = _one("openai-project", "equals", place)
            assert case.secret is not None
            if "-" in case.secret[8:] or "_" in case.secret[8:]:
                break
        assert "-" in case.secret[8:] or "_" in case.secret[8:]
        _assert_caught(case)
    body = fk.rand(74, string.ascii_letters + string.digits + "-_")
    types = {f.type for f in scan_text(f"key = 'sk-proj-{body}-'", path="a.py").findings}
    assert types == {"OpenAI API Key"}


def test_github_token_inside_a_call_is_reported_whole() -> None:
    case = _one("github-classic", "client-ctor", "code")
    result = SCANNER.scan_notebook(case.notebook)
    assert [(f.type, P.reports(f, str(case.secret))) for f in result.findings] == [
        ("GitHub Token", True)
    ]


@pytest.mark.parametrize(
    "syntax",
    ["yaml", "ini", "env", "toml", "xml-element", "xml-attribute", "go-raw", "dotenv"],
)
def test_config_syntaxes_in_code_and_output(syntax: str) -> None:
    places = ["code", "stdout"] if syntax != "go-raw" else ["code"]
    for place in places:
        _assert_caught(_one("alnum-32", syntax, place))
        _assert_silent(_one("low-entropy", syntax, place))


# ------------------------------------------------------------ findings and redaction
def test_redaction_removes_context_secrets_everywhere() -> None:
    rng = random.Random(secrets.randbits(32))
    nb = P.empty_notebook()
    planted: list[str] = []
    for syntax, place in (
        ("colon", "stdout"),
        ("html-header", "text/html"),
        ("url-query", "traceback"),
        ("json-object", "notebook-metadata"),
        ("pipe-table", "markdown"),
        ("xml-element", "code"),
    ):
        value = P.token(rng, 30)
        form = P.syntax_named(syntax)
        render = form.in_code if place == "code" and form.in_code is not None else form.render
        P.place_named(place).plant(nb, render("password", value))
        planted.append(value)
    scanner = Scanner()
    result = scanner.scan_notebook(nb)
    reported = {i for i, v in enumerate(planted) for f in result.findings if P.reports(f, v)}
    assert reported == set(range(len(planted)))
    assert all(any(P.reports(f, v) for v in planted) for f in result.findings)
    safe = redact_notebook(nb, result, scanner=scanner)
    assert scanner.scan_notebook(safe).clean
    dumped = json.dumps(safe)
    assert not [i for i, v in enumerate(planted) if v in dumped]


def test_type_is_the_same_in_every_place() -> None:
    rng = random.Random(secrets.randbits(32))
    cases = P.cases(rng=rng, values=[P.value_named("alnum-32")], syntaxes=[P.syntax_named("colon")])
    types = {f.type for c in cases for f in _findings(c.notebook)}
    assert types == {"Secret Keyword"}


def test_pragma_allowlist_applies_to_context_hits() -> None:
    secret = fk.rand(24)
    assert scan_text(f"password: {secret}  # pragma: allowlist secret", path="a.yaml").clean
    assert not scan_text(f"password: {secret}", path="a.yaml").clean


# ------------------------------------------------------------ the rules themselves
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("password", True),
        ("db_password", True),
        ("DB_PASS", True),
        ("apiKey", True),
        ("x-api-key", True),
        ("GITHUB_TOKEN", True),
        ("aws_secret_access_key", True),
        ("client_secret", True),
        ("mypassword", True),
        ("password_value", True),
        ("password_hash", False),
        ("token_count", False),
        ("max_tokens", False),
        ("tokenizer", False),
        ("key_id", False),
        ("sort_key", False),
        ("key", False),
        ("Pass", False),
        ("X-Amz-Credential", False),
        ("secret_name", False),
    ],
)
def test_names_credential(name: str, expected: bool) -> None:
    assert names_credential(name) is expected


def test_names_credential_key_after_a_word() -> None:
    assert names_credential("key", "API") and names_credential("Key", "secret")
    assert not names_credential("key", "primary_sort")


def test_plausible_secret_rejects_what_is_not_one() -> None:
    rng = random.Random(secrets.randbits(32))
    assert plausible_secret(P.token(rng, 24))
    not_secrets = [
        "changeme",
        "x" * 20,
        "<your-token>",
        "${API_TOKEN}",
        "%(password)s",
        "your_api_key_here",
        "*" * 12,
        P.example_key(rng),
        "os.environ['TOKEN']",
        "getpass.getpass()",
        "MY_API_TOKEN",
        "layer12",
        "/home/alice/.ssh/id_rsa",
        "https://example.com/a",
        "db.example.com",
        "2024-05-01T12:00:00Z",
        "3.12.1rc1",
        "123e4567-e89b-12d3-a456-426614174000",
        "abcdefghijklmnop1234",
        "12345678901234",
        "the quick brown fox",
    ]
    accepted = [i for i, v in enumerate(not_secrets) if plausible_secret(v)]
    assert not accepted, [not_secrets[i] for i in accepted]


def test_hex_digest_beside_a_hash_word_is_ruled_out() -> None:
    digest = secrets.token_hex(32)
    assert ruled_out(digest, "sha256: ")
    assert ruled_out(digest[:40], "commit ")
    assert not ruled_out(digest[:32], "api_key: ")


def test_provider_values_from_the_companion_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    companion = types.ModuleType("jupyter_qsecure.testing.planted")

    class Provider:
        family = "example-cloud"

        @staticmethod
        def make(rng: random.Random) -> str:
            return "exc_" + P.token(rng, 36)

    companion.PROVIDERS = (Provider(),)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "jupyter_qsecure.testing.planted", companion)
    import jupyter_qsecure.testing as testing_pkg

    monkeypatch.setattr(testing_pkg, "planted", companion, raising=False)
    (value,) = P.provider_values()
    assert value.name == "provider-example-cloud" and value.formatted and value.secret
    score = _run(P.cases(values=[value], syntaxes=[P.syntax_named("py-assign")]))
    assert score.secrets == len(P.PLACES) and not score.missed


def test_public_example_keys_are_not_reported_by_any_detector() -> None:
    rng = random.Random(secrets.randbits(32))
    access = "AKIA" + P.token(rng, 9, string.ascii_uppercase + string.digits) + "EXAMPLE"
    real = "AKIA" + P.token(rng, 16, string.ascii_uppercase + "234567")
    assert scan_text(f'AWS_ACCESS_KEY_ID = "{real}"', path="a.py").findings
    for source in (
        f'AWS_ACCESS_KEY_ID = "{access}"',
        f'aws_secret_access_key = "{P.example_key(rng)}"',
        f"aws_access_key_id={access}\naws_secret_access_key={P.example_key(rng)}",
    ):
        found = scan_text(source, path="credentials.ini").findings
        assert found == [], [f.type for f in found]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("profile", ["output.txt", "cell.py", "cell.md"])
def test_context_work_stays_linear_on_adversarial_text(profile: str) -> None:
    """Inputs that made one search per hit rescan the text (quadratic) before."""
    from jupyter_qsecure.scan.context import context_hits

    rng = random.Random(secrets.randbits(32))
    values = [P.token(rng, 24) for _ in range(20_000)]
    escaped_rows = "".join(
        f"&lt;tr&gt;&lt;td&gt;password&lt;/td&gt;&lt;td&gt;{v}&lt;/td&gt;&lt;/tr&gt;"
        for v in values
    )
    texts = [
        "password=abc " * 80_000,  # one 1 MB line of names (code: the line looked back)
        ("password  token  secret  api_key\n" + "aaaa  bbbb  cccc  dddd\n" * 3) * 20_000,
        "&lt;table&gt;" + escaped_rows,
        '"""a"""\n' * 50_000 + "password = abc\n" * 20_000,
    ]
    found = [len(list(context_hits(t, t.lower(), profile))) for t in texts]
    assert found == [0, 0, sum(map(plausible_secret, values)), 0]
