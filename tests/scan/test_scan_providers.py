"""The provider layer (kingfisher in process): families, syntaxes, places, batching, precedence.

Every value is generated at run time by :mod:`jupyter_qsecure.testing.planted`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from pathlib import Path

import pytest

from jupyter_qsecure.cli.main import main
from jupyter_qsecure.scan import (
    Baseline,
    Fingerprinter,
    FingerprintIndex,
    Scanner,
    redact_notebook,
    redact_text,
)
from jupyter_qsecure.scan import fingerprints as fps
from jupyter_qsecure.scan import providers as prov
from jupyter_qsecure.scan.layers import is_placeholder_value, resolve
from jupyter_qsecure.testing import planted as pl

pytestmark = pytest.mark.usefixtures("data_dir")

#: Families the scanner found 0 times in 6 before kingfisher (issue 13), and more it adds.
KINGFISHER_FAMILIES = [
    "shopify",
    "digitalocean",
    "mailgun",
    "databricks",
    "hubspot",
    "datadog",
    "snyk",
    "age",
    "plaid",
    "airtable",
    "openai",
    "anthropic",
    "huggingface",
    "gcp",
    "linear",
    "doppler",
    "postman",
    "pulumi",
    "grafana",
    "sentry",
    "dynatrace",
    "heroku",
    "groq",
    "replicate",
    "vercel",
    "notion",
    "new-relic",
]


def _hits(result, secret: str):
    return [m for m in result.matches if secret in m.secret or m.secret in secret]


@pytest.mark.parametrize("family", KINGFISHER_FAMILIES)
def test_family_found_in_every_syntax_and_place_with_its_type(family: str) -> None:
    provider = pl.PROVIDER_BY_FAMILY[family]
    scanner = Scanner()
    problems = []
    for case in pl.cases(providers=[provider]):
        result = scanner.scan_notebook(case.notebook, path="planted.ipynb")
        hits = _hits(result, case.secret)
        if not hits:
            problems.append(f"{case.name}: not found")
        elif {m.finding.type for m in hits} != {provider.type}:
            problems.append(f"{case.name}: types {sorted({m.finding.type for m in hits})}")
        dumped = json.dumps(result.to_json()) + repr(result.findings)
        assert case.secret not in dumped
    assert problems == []


@pytest.mark.parametrize("family", KINGFISHER_FAMILIES)
def test_family_near_miss_is_not_reported(family: str) -> None:
    provider = pl.PROVIDER_BY_FAMILY[family]
    scanner = Scanner()
    noisy = [
        f"{case.name}: {[f.type for f in result.findings]}"
        for case in pl.cases(providers=[provider], positive=False)
        for result in [scanner.scan_notebook(case.notebook)]
        if result.findings
    ]
    assert noisy == []


def test_generated_values_match_their_provider_rule() -> None:
    """The generator is right about the formats: kingfisher alone finds each, in code."""
    for provider in pl.PROVIDERS:
        if provider.family in ("azure-storage", "aws"):
            # kingfisher pairs an AWS key id with its secret, and wants AccountKey= next
            # to an Azure key; detect-secrets' plugins find those two
            continue
        value = pl.make_secret(provider)
        text = pl.snippet(provider, "py", value)
        types = {d.type for _, d in prov.builtin_detections([text])[0]}
        assert provider.type in types, (provider.family, types)


def test_every_builtin_rule_has_a_short_type_name() -> None:
    import kingfisher_sdk

    rules = kingfisher_sdk.Rules()
    names = {m["id"]: prov.provider_type(m["id"]) for m in rules.metadata() if m["visible"]}
    assert len(names) > 400
    assert all(0 < len(n) <= 60 and "Uncovered" not in n for n in names.values())
    assert names["betterleaks.github-pat"] == "GitHub Token"
    assert names["betterleaks.aws-access-token"] == "AWS Access Key"
    assert names["betterleaks.slack-bot-token"] == "Slack Token"
    assert names["betterleaks.shopify-access-token"] == "Shopify Token"
    assert names["veles.secrets/digitaloceanapikey"] == "DigitalOcean Token"
    assert prov.provider_type("betterleaks.some-new-provider-token") == "Some Credential"


def test_one_native_call_per_scan_and_one_unit_after_an_edit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = prov.builtin_scan

    def counting(data: bytes):
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(prov, "builtin_scan", counting)
    provider = pl.PROVIDER_BY_FAMILY["shopify"]
    nb = pl.place_notebook(pl.snippet(provider, "py", pl.make_secret(provider)), "py", "stream")
    for i in range(30):
        nb["cells"].append(pl._cell("code", f"x{i} = {i}\nprint(x{i})", 100 + i))
    scanner = Scanner()
    assert scanner.scan_notebook(nb).findings
    assert len(calls) == 1
    nb["cells"][5]["source"] += "\n# edited"
    before = scanner.stats.units_scanned
    scanner.scan_notebook(nb)
    assert scanner.stats.units_scanned - before == 1
    assert len(calls) == 2 and calls[1] < calls[0] / 10


def test_offsets_map_back_through_non_ascii_units_and_redaction_is_exact() -> None:
    provider = pl.PROVIDER_BY_FAMILY["databricks"]
    value = pl.make_secret(provider)
    nb = pl.place_notebook("Überblick: 東京 🎉 données\n", "py", "markdown")
    nb["cells"].append(
        pl._cell("code", f"# café ☕ ünïcode\nDATABRICKS_TOKEN = '{value}'  # 🔑\n", 7)
    )
    scanner = Scanner()
    result = scanner.scan_notebook(nb)
    (finding,) = result.findings
    assert (finding.cell, finding.line, finding.type) == (2, 2, "Databricks Token")
    assert finding.fingerprint == scanner.fingerprinter(value)
    redacted = redact_notebook(nb, result, scanner=scanner)
    assert redacted["cells"][2]["source"] == (
        "# café ☕ ünïcode\nDATABRICKS_TOKEN = '«secret:Databricks Token»'  # 🔑\n"
    )


def test_no_keyword_then_value_match_across_two_units() -> None:
    value = pl.rand(pl._sys(), 32, pl.HEX)
    nb = pl.place_notebook("The mailgun key:", "py", "markdown")
    nb["cells"].append(pl._cell("markdown", f"key-{value}\n", 5))
    types = {f.type for f in Scanner().scan_notebook(nb).findings}
    assert "Mailgun API Key" not in types


def test_inline_allowlist_pragma_applies_to_provider_rules() -> None:
    provider = pl.PROVIDER_BY_FAMILY["shopify"]
    value = pl.make_secret(provider)
    scanner = Scanner()
    text = f'SHOPIFY = "{value}"  # pragma: allowlist secret\n'
    assert scanner.scan_text(text, path="a.py").findings == []
    assert scanner.scan_text(f'X = "{value}"  # gitleaks:allow\n', path="a.py").findings == []
    assert scanner.scan_text(f'SHOPIFY = "{value}"\n', path="a.py").findings


def test_one_finding_per_secret_with_the_full_token_hash() -> None:
    """detect-secrets' plugin and kingfisher both see the token: one finding, of the token."""
    token = pl.make_secret(pl.PROVIDER_BY_FAMILY["github"])
    scanner = Scanner()
    result = scanner.scan_text(f'GITHUB_TOKEN = "{token}"\n', path="a.py")
    (finding,) = result.findings
    assert finding.type == "GitHub Token"
    assert finding.fingerprint == scanner.fingerprinter(token)
    # detect-secrets' plugin captures only the prefix (``ghp``); we take its whole match,
    # so both layers report the token itself: one alias, of the full token
    sha1 = hashlib.sha1(token.encode()).hexdigest()  # noqa: S324
    assert result.matches[0].aliases == (("GitHub Token", sha1),)


def test_injected_value_outranks_every_provider_rule() -> None:
    token = pl.make_secret(pl.PROVIDER_BY_FAMILY["shopify"])
    result = Scanner().scan_text(f"token: {token}\n", path="a.yaml", exact_values={token})
    assert [f.type for f in result.findings] == ["Injected Secret"]


def test_registry_value_ranks_with_injected_values() -> None:
    """A value of the fingerprint registry is one finding of the registry's type, with the
    secret's name, whichever provider layers also know its format; a value the kernel
    still holds (exact match) is reported as that instead."""
    token = pl.make_secret(pl.PROVIDER_BY_FAMILY["github"])
    key = Fingerprinter.ephemeral()
    index = FingerprintIndex.of_values(key, {"gh": token}, on="2025-06-15")
    scanner = Scanner(fingerprinter=key)
    text = f'GITHUB_TOKEN = "{token}"\n'
    assert [f.type for f in scanner.scan_text(text, path="a.py").findings] == ["GitHub Token"]
    result = scanner.scan_text(text, path="a.py", injected=index)
    (finding,) = result.findings
    assert (finding.type, finding.secret_name, finding.injected_on) == (
        fps.REGISTRY_TYPE,
        "gh",
        "2025-06-15",
    )
    assert finding.fingerprint == key(token)
    assert "«secret:" in redact_text(text, scanner=scanner, path="a.py", injected=index)
    assert token not in redact_text(text, scanner=scanner, path="a.py", injected=index)
    both = scanner.scan_text(text, path="a.py", exact_values={token}, injected=index)
    assert [f.type for f in both.findings] == ["Injected Secret"]
    # the cache holds detections, not the registry's: without the index, the token again
    assert [f.type for f in scanner.scan_text(text, path="a.py").findings] == ["GitHub Token"]


def test_cached_units_take_the_fingerprint_key_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    token = pl.make_secret(pl.PROVIDER_BY_FAMILY["shopify"])
    first, second = Fingerprinter.ephemeral(), Fingerprinter.ephemeral()
    monkeypatch.setattr(fps, "_default", first)
    scanner = Scanner()
    text = f"token: {token}\n"
    assert [f.fingerprint for f in scanner.scan_text(text, path="a.yaml").findings] == [
        first(token)
    ]
    fps.set_process_fingerprinter(second)
    before = scanner.stats.units_cached
    assert [f.fingerprint for f in scanner.scan_text(text, path="a.yaml").findings] == [
        second(token)
    ]
    assert scanner.stats.units_cached == before + 1


def test_ambiguous_shape_rule_does_not_rename_our_provider() -> None:
    """``sk-`` + 48 characters is kingfisher's (medium) Kimi rule and our OpenAI family."""
    key = "sk-" + pl.rand(pl._sys(), 48)
    result = Scanner().scan_text(f'client = OpenAI(api_key="{key}")\n', path="a.py")
    assert [f.type for f in result.findings] == ["OpenAI API Key"]


def test_baseline_entry_for_any_layer_suppresses_the_merged_finding(tmp_path: Path) -> None:
    token = pl.make_secret(pl.PROVIDER_BY_FAMILY["github"])
    value = pl.rand(pl._sys(), 40)
    path = tmp_path / "settings.py"
    path.write_text(f'GITHUB_TOKEN = "{token}"\ndb_password = "{value}"\n')
    scanner = Scanner()
    found = scanner.scan_paths([path]).findings
    assert [f.type for f in found] == ["GitHub Token", "Secret Keyword"]
    (gh, kw) = scanner.scan_file(path).matches
    sha1 = hashlib.sha1(value.encode()).hexdigest()  # noqa: S324
    # the entry an earlier run wrote when the value came out as an entropy string
    for generic in ("Secret Keyword", "Base64 High Entropy String", "Hex High Entropy String"):
        baseline = Baseline([(str(path), generic, sha1)])
        assert [f.type for f in scanner.scan_paths([path], baseline=baseline).findings] == [
            "GitHub Token"
        ]
    # an entry for the token (every layer reports the whole token)
    for type_, alias_sha1 in gh.aliases:
        baseline = Baseline([(str(path), type_, alias_sha1)])
        assert [f.type for f in scanner.scan_paths([path], baseline=baseline).findings] == [
            "Secret Keyword"
        ]
    # detect-secrets' own plugin hashes only the prefix: such an entry would suppress every
    # GitHub token of the file, so it suppresses none (fail closed)
    prefix = hashlib.sha1(token[:3].encode()).hexdigest()  # noqa: S324
    baseline = Baseline([(str(path), "GitHub Token", prefix)])
    assert len(scanner.scan_paths([path], baseline=baseline).findings) == 2


def test_placeholder_inside_a_value() -> None:
    assert is_placeholder_value("ghp_" + "x" * 36)
    assert is_placeholder_value("sk-<your-openai-key>")
    assert is_placeholder_value("prefix-${TOKEN}")
    assert not is_placeholder_value(pl.make_secret(pl.PROVIDER_BY_FAMILY["shopify"]))
    assert resolve([]) == []


def test_pre_commit_entry_finds_provider_formats_without_extra_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hook's entry is the CLI; kingfisher is a base dependency, not an extra."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("kingfisher-secret-scanner") for d in project["dependencies"])
    provider = pl.PROVIDER_BY_FAMILY["digitalocean"]
    value = pl.make_secret(provider)
    (tmp_path / "deploy.env").write_text(pl.snippet(provider, "env", value))
    assert main(["scan", str(tmp_path / "deploy.env")]) == 1
    out = capsys.readouterr().out
    assert "DigitalOcean Token" in out and value not in out


def test_offsets_after_a_lone_surrogate() -> None:
    value = pl.make_secret(pl.PROVIDER_BY_FAMILY["databricks"])
    text = f'bad \ud800 char é\nDATABRICKS_TOKEN = "{value}"\n'
    result = Scanner().scan_text(text, path="x.py")
    (match,) = result.matches
    assert result.units[0].text[match.start : match.end] == value


# ---- what the gate's decoded and rendered units hold goes through the provider layer ------
def _split_svg(value: str, at: int) -> str:
    return f"<svg>\n<text><tspan>{value[:at]}</tspan><tspan x='3'>{value[at:]}</tspan></text>\n</svg>\n"


def test_provider_token_split_over_svg_elements_in_a_file(tmp_path: Path) -> None:
    provider = pl.PROVIDER_BY_FAMILY["shopify"]
    value = pl.make_secret(provider)
    path = tmp_path / "figure.svg"
    path.write_text(_split_svg(value, 9))
    assert prov.builtin_detections([path.read_text()])[0] == []  # not in the file's own text
    result = Scanner().scan_file(path)
    assert result is not None
    assert [f.type for f in result.findings] == [provider.type]
    assert value not in json.dumps(result.to_json())


@pytest.mark.parametrize("codec", ["cp1252", "utf-16", "utf-32"])
def test_provider_token_in_a_file_of_another_encoding(tmp_path: Path, codec: str) -> None:
    provider = pl.PROVIDER_BY_FAMILY["databricks"]
    value = pl.make_secret(provider)
    path = tmp_path / "export.env"
    path.write_bytes(f"# réglages\n{pl.snippet(provider, 'env', value)}".encode(codec))
    result = Scanner().scan_file(path)
    assert result is not None
    assert [(f.type, f.line) for f in result.findings] == [(provider.type, 2)]


def test_provider_tokens_in_attachments_and_rendered_outputs() -> None:
    import base64

    provider = pl.PROVIDER_BY_FAMILY["digitalocean"]
    in_attachment, in_svg = pl.make_secret(provider), pl.make_secret(provider)
    nb = pl.place_notebook("![notes](attachment:notes.txt)", "py", "markdown")
    payload = f"réglages\n{pl.snippet(provider, 'env', in_attachment)}".encode("utf-16")
    nb["cells"][-1]["attachments"] = {
        "notes.txt": {"text/plain": base64.b64encode(payload).decode()}
    }
    cell = pl._cell("code", "plot()", 9)
    cell["outputs"] = [
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"image/svg+xml": _split_svg(in_svg, 11)},
        }
    ]
    nb["cells"].append(cell)
    result = Scanner().scan_notebook(nb)
    assert sorted((f.where or "", f.type) for f in result.findings) == [
        ("attachments", provider.type),
        ("outputs", provider.type),
    ]


# ---- fragments of injected values rank with injected values --------------------------------
def test_fragment_of_an_injected_value_outranks_the_provider_rule(tmp_path: Path) -> None:
    """A run of an injected value (here the token half of an ``id:secret`` pair) is the
    injected value, not a new provider finding, and no organisation allowlist drops it."""
    from jupyter_qsecure.scan import ExactMatcher

    provider = pl.PROVIDER_BY_FAMILY["shopify"]
    token = pl.make_secret(provider)
    injected = f"{pl.rand(pl._sys(), 16)}:{token}"
    text = f"token: {token}\n"
    scanner = Scanner()
    assert [f.type for f in scanner.scan_text(text, path="a.yaml").findings] == [provider.type]
    matcher = ExactMatcher([injected], min_fragment=12)
    result = scanner.scan_text(text, path="a.yaml", exact_values=matcher)
    (finding,) = result.findings
    assert finding.type == "Injected Secret (fragment)"
    assert finding.fingerprint == scanner.fingerprinter(injected)
    assert provider.type in {t for t, _ in result.matches[0].aliases}
    assert injected not in json.dumps(result.to_json()) + repr(result.findings)
    rules = tmp_path / "org.toml"
    rules.write_text("[allowlist]\npaths = ['''^a\\.yaml$''']\n")
    allowing = Scanner(rules=rules)
    assert allowing.scan_text(text, path="a.yaml").findings == []
    kept = allowing.scan_text(text, path="a.yaml", exact_values=matcher).findings
    assert [f.type for f in kept] == ["Injected Secret (fragment)"]


def test_a_token_kingfisher_decodes_from_base64_is_that_token() -> None:
    """kingfisher decodes base64 one layer deep: the decoded token is fingerprinted (as
    written elsewhere it is the same secret), and where the unit also holds it as written
    (a short text attachment is scanned decoded and as stored) it is one finding."""
    import base64

    token = pl.make_secret(pl.PROVIDER_BY_FAMILY["github"])
    blob = base64.b64encode(f"my token {token}\n".encode()).decode()
    scanner = Scanner()
    (alone,) = scanner.scan_text(f"data:\n  token: {blob}\n", path="secret.yaml").findings
    assert (alone.type, alone.fingerprint) == ("GitHub Token", scanner.fingerprinter(token))
    nb = pl.place_notebook("![notes](attachment:notes.txt)", "py", "markdown")
    nb["cells"][-1]["attachments"] = {"notes.txt": {"text/plain": blob}}
    found = scanner.scan_notebook(nb).findings
    assert [(f.where, f.type, f.fingerprint) for f in found] == [
        ("attachments", "GitHub Token", scanner.fingerprinter(token))
    ]


def test_a_token_as_written_and_in_base64_in_one_text_is_one_finding_both_redacted() -> None:
    import base64

    token = pl.make_secret(pl.PROVIDER_BY_FAMILY["github"])
    blob = base64.b64encode(f"token: {token}\n".encode()).decode()
    text = f'GITHUB_TOKEN = "{token}"\nENCODED = "{blob}"\n'
    scanner = Scanner()
    result = scanner.scan_text(text, path="a.py")
    assert [(f.type, f.line) for f in result.findings] == [("GitHub Token", 1)]
    assert len(result.matches) == 2
    clean = redact_text(text, result, scanner=scanner, path="a.py")
    assert token not in clean and blob not in clean
    assert scanner.scan_text(clean, path="a.py").clean


def test_curl_credentials_are_the_password_and_judged_as_context_values() -> None:
    """kingfisher's curl rules find a value from a flag or header, not its format: a
    ``-u user:password`` pair is one finding of the password (the value the context layer
    reports too), and a version, UUID or public example there is no secret."""
    password = secrets.token_hex(16)
    scanner = Scanner()
    text = f"!curl -u alice:{password} https://api.example.com/v1\n"
    result = scanner.scan_text(text)
    (finding,) = result.findings
    assert finding.fingerprint == scanner.fingerprinter(password)
    assert redact_text(text, result) == (
        "!curl -u alice:«secret:Basic Auth Credentials» https://api.example.com/v1\n"
    )
    public_example = "AKIAIOSFODNN7EXAMPLE"  # pragma: allowlist secret (AWS's documented example)
    for near_miss in ("1.24.3", str(uuid.uuid4()), public_example, "12345678901"):
        for line in (
            f"!curl -u alice:{near_miss} https://api.example.com/v1\n",
            f"!curl -H 'X-Auth-Token: {near_miss}' https://api.example.com/v1\n",
        ):
            assert not scanner.scan_text(line).findings, line.split(":", 1)[0]
