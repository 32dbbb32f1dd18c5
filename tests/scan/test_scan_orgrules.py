"""Organisation rules: gitleaks TOML and kingfisher YAML files, allowlists, config and CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from jupyter_qsecure.cli.main import main
from jupyter_qsecure.config import QSecure
from jupyter_qsecure.scan import (
    Baseline,
    Fingerprinter,
    FingerprintIndex,
    OrgRules,
    ScanError,
    Scanner,
    scanner_for_settings,
)
from jupyter_qsecure.testing import planted as pl

pytestmark = pytest.mark.usefixtures("data_dir")

RULES_TOML = """
title = "acme"

[[rules]]
id = "acme-api-token"
description = "Acme API Token"
regex = '''\\b(acme_[a-z0-9]{32})\\b'''
secretGroup = 1
entropy = 3.0
keywords = ["acme_"]

[[rules.allowlists]]
regexes = ['''^acme_test''']

[[rules]]
id = "acme-deploy-key"
description = "Acme Deploy Key"
regex = '''ACMEDK-[A-Z0-9]{24}'''
path = '''\\.ipynb$'''

[allowlist]
description = "fixtures and documented examples"
paths = ['''(^|/)fixtures/''']
regexes = ['''EXAMPLE''']
stopwords = ["sample"]
"""


def org_token(prefix: str = "acme_", body: int = 32) -> str:
    return prefix + pl.rand(pl._sys(), body, pl.LOWER + pl.DIGITS)


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "acme-rules.toml"
    path.write_text(RULES_TOML)
    return path


def _types(result) -> list[str]:
    return [f.type for f in result.findings]


def test_org_rule_finds_org_token_in_every_place(rules_file: Path) -> None:
    scanner = Scanner(rules=rules_file)
    for place in pl.PLACES:
        token = org_token()
        nb = pl.place_notebook(f"ACME = '{token}'\n", "py", place)
        result = scanner.scan_notebook(nb, path="work.ipynb")
        assert _types(result) == ["Acme API Token"], place
        assert token not in json.dumps(result.to_json())
    assert Scanner().scan_text(f"ACME = '{org_token()}'\n", path="a.py").findings == []


def test_rule_allowlist_entropy_keywords_and_path(rules_file: Path) -> None:
    scanner = Scanner(rules=rules_file)
    assert scanner.scan_text(f"x = {org_token('acme_test', 28)}\n", path="a.py").findings == []
    low = "acme_" + "ab" * 16  # entropy 1.0 < 3.0
    assert scanner.scan_text(f"x = {low}\n", path="a.py").findings == []
    deploy = "ACMEDK-" + pl.rand(pl._sys(), 24, pl.UPPER + pl.DIGITS)
    assert scanner.scan_text(f"k = {deploy}\n", path="deploy.txt").findings == []
    nb = pl.place_notebook(f"k = {deploy}\n", "py", "stream")
    assert _types(scanner.scan_notebook(nb, path="nb/deploy.ipynb")) == ["Acme Deploy Key"]


def test_global_allowlist_by_path_regex_stopword_applies_to_every_layer(
    rules_file: Path, tmp_path: Path
) -> None:
    scanner = Scanner(rules=rules_file)
    github = pl.make_secret(pl.PROVIDER_BY_FAMILY["github"])
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    (fixtures / "conf.py").write_text(f'GITHUB_TOKEN = "{github}"\nA = "{org_token()}"\n')
    (tmp_path / "real.py").write_text(f'GITHUB_TOKEN = "{github}"\n')
    report = scanner.scan_paths([tmp_path])
    assert [(Path(f.path).name, f.type) for f in report.findings] == [("real.py", "GitHub Token")]
    sample = "acme_sample" + pl.rand(pl._sys(), 26, pl.LOWER + pl.DIGITS)
    assert scanner.scan_text(f"A = {sample}\n", path="a.py").findings == []


def test_allowlist_by_fingerprint_and_condition_and(tmp_path: Path) -> None:
    token = org_token()
    other = org_token()
    key = Fingerprinter.ephemeral()
    first = Scanner(rules=_write(tmp_path, "r1.toml", RULES_TOML), fingerprinter=key)
    (finding,) = first.scan_text(f"A = {token}\n", path="a.py").findings
    assert finding.fingerprint == key(token)
    rules = _write(
        tmp_path,
        "r2.toml",
        RULES_TOML
        + f"""
[[allowlists]]
fingerprints = ["{finding.fingerprint}"]

[[allowlists]]
condition = "AND"
paths = ['''^only/here/''']
regexes = ['''.''']
""",
    )
    scanner = Scanner(rules=rules, fingerprinter=key)
    assert scanner.scan_text(f"A = {token}\n", path="a.py").findings == []
    assert _types(scanner.scan_text(f"A = {other}\n", path="a.py")) == ["Acme API Token"]
    assert scanner.scan_text(f"A = {other}\n", path="only/here/a.py").findings == []
    # the entry is the keyed fingerprint: under another key it names another secret
    elsewhere = Scanner(rules=rules, fingerprinter=Fingerprinter.ephemeral())
    assert _types(elsewhere.scan_text(f"A = {token}\n", path="a.py")) == ["Acme API Token"]


def test_fingerprint_allowlists_hold_keyed_fingerprints_only(tmp_path: Path) -> None:
    """An unkeyed SHA-256 of the secret allows nothing; a rule's own allowlist matches
    the keyed fingerprint too (it was never given one before)."""
    token = org_token()
    key = Fingerprinter.ephemeral()
    unkeyed = hashlib.sha256(token.encode()).hexdigest()
    rules = _write(
        tmp_path,
        "unkeyed.toml",
        RULES_TOML + f'\n[[allowlists]]\nfingerprints = ["{unkeyed}"]\n',
    )
    scanner = Scanner(rules=rules, fingerprinter=key)
    assert _types(scanner.scan_text(f"A = {token}\n", path="a.py")) == ["Acme API Token"]
    # a rule's own allowlist (acme-api-token's second one)
    per_rule = RULES_TOML.replace(
        '[[rules]]\nid = "acme-deploy-key"',
        f'[[rules.allowlists]]\nfingerprints = ["{key(token)}"]\n\n'
        '[[rules]]\nid = "acme-deploy-key"',
    )
    assert per_rule != RULES_TOML
    scanner = Scanner(rules=_write(tmp_path, "per-rule.toml", per_rule), fingerprinter=key)
    assert scanner.scan_text(f"A = {token}\n", path="a.py").findings == []
    assert _types(scanner.scan_text(f"A = {org_token()}\n", path="a.py")) == ["Acme API Token"]


def test_allowlist_never_hides_an_injected_value(rules_file: Path) -> None:
    value = "EXAMPLE" + pl.token(24)
    scanner = Scanner(rules=rules_file)
    result = scanner.scan_text(f"pw: {value}\n", path="fixtures/a.yaml", exact_values={value})
    assert _types(result) == ["Injected Secret"]


def test_allowlist_never_hides_a_value_of_the_fingerprint_registry(tmp_path: Path) -> None:
    value = "EXAMPLE" + pl.token(24)
    key = Fingerprinter.ephemeral()
    index = FingerprintIndex.of_values(key, {"db": value}, on="2025-06-15")
    rules = _write(
        tmp_path,
        "all.toml",
        RULES_TOML + f'\n[[allowlists]]\nfingerprints = ["{key(value)}"]\n',
    )
    scanner = Scanner(rules=rules, fingerprinter=key)
    text = f"pw: {value}\n"
    assert scanner.scan_text(text, path="fixtures/a.yaml").findings == []
    (finding,) = scanner.scan_text(text, path="fixtures/a.yaml", injected=index).findings
    assert (finding.type, finding.secret_name) == ("Injected Secret (registry)", "db")


def test_kingfisher_yaml_rules_with_allowlist(tmp_path: Path) -> None:
    rules = _write(
        tmp_path,
        "acme.yaml",
        """
rules:
  - name: Acme YAML Token
    id: acme.yaml.1
    pattern: '\\b(acmey_[a-z0-9]{32})\\b'
    min_entropy: 3.0
    confidence: medium
allowlist:
  stopwords: [demo]
""",
    )
    scanner = Scanner(rules=rules)
    token = org_token("acmey_")  # the YAML rule's own prefix
    assert _types(scanner.scan_text(f"t: {token}\n", path="a.yaml")) == ["Acme YAML Token"]
    demo = "acmey_demo" + pl.rand(pl._sys(), 28, pl.LOWER + pl.DIGITS)
    assert scanner.scan_text(f"t: {demo}\n", path="a.yaml").findings == []


def test_detect_secrets_baseline_still_works_with_org_rules(
    rules_file: Path, tmp_path: Path
) -> None:
    token = org_token()
    path = tmp_path / "a.py"
    path.write_text(f"A = '{token}'\n")
    sha1 = hashlib.sha1(token.encode()).hexdigest()  # noqa: S324
    scanner = Scanner(rules=rules_file)
    assert len(scanner.scan_paths([path]).findings) == 1
    baseline = Baseline([(str(path), "Acme API Token", sha1)])
    assert scanner.scan_paths([path], baseline=baseline).findings == []


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.toml", "[[rules]\nid=", "not valid TOML"),
        ("noregex.toml", '[[rules]]\nid = "x"\npath = "a"\n', "rule 'x' has no regex"),
        ("dup.toml", '[[rules]]\nid="x"\nregex="a"\n[[rules]]\nid="x"\nregex="b"\n', "twice"),
        (
            "allow.toml",
            "[[rules]]\nid = 'x'\nregex = 'ab'\n[allowlist]\nregexes = ['(unclosed']\n",
            "allowlist.regexes[0]: invalid regular expression",
        ),
        ("engine.toml", "[[rules]]\nid = 'x'\nregex = '(unclosed'\n", "kingfisher cannot compile"),
        ("fp.toml", "[allowlist]\nfingerprints = ['abc']\n", "not a 64-digit hex hash"),
        ("rules.json", "{}", "must end in .toml"),
        ("nolist.yaml", "rules: 3\n", "top-level 'rules:' list"),
    ],
)
def test_bad_rule_files_fail_closed_with_a_clear_message(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(ScanError) as info:
        Scanner(rules=path)
    assert message in info.value.message and name in info.value.message
    assert info.value.hint
    with pytest.raises(ScanError, match="cannot read scan rules"):
        OrgRules.load(tmp_path / "missing.toml")


def test_setting_and_cli_option(
    rules_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = QSecure(scan_rules=str(rules_file))
    scanner = scanner_for_settings(settings)
    assert scanner is scanner_for_settings(settings)  # shared, like the default scanner
    assert _types(scanner.scan_text(f"A = {org_token()}\n", path="a.py")) == ["Acme API Token"]
    token = org_token()
    target = tmp_path / "notes.md"
    target.write_text(f"use {token}\n")
    assert main(["scan", str(target)]) == 0
    assert main(["scan", "--rules", str(rules_file), str(target)]) == 1
    monkeypatch.setenv("QSECURE_SCAN_RULES", str(rules_file))
    assert main(["scan", "--format", "json", str(target)]) == 1
    out = capsys.readouterr().out
    assert token not in out and "Acme API Token" in out
    monkeypatch.setenv("QSECURE_SCAN_RULES", str(tmp_path / "nope.toml"))
    assert main(["scan", str(target)]) == 2
    assert "cannot read scan rules" in capsys.readouterr().err


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_worker_processes_use_the_rules_and_the_provider_layer(
    rules_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    for i in range(6):
        (folder / f"clean{i}.py").write_text(f"x = {i}\n")
    (folder / "org.md").write_text(f"key {org_token()}\n")
    shopify = pl.PROVIDER_BY_FAMILY["shopify"]
    (folder / "shop.env").write_text(pl.snippet(shopify, "env", pl.make_secret(shopify)))
    code = main(
        ["scan", "--jobs", "2", "--format", "json", "--rules", str(rules_file), str(folder)]
    )
    assert code == 1
    found = json.loads(capsys.readouterr().out)["findings"]
    assert sorted((Path(f["path"]).name, f["type"]) for f in found) == [
        ("org.md", "Acme API Token"),
        ("shop.env", "Shopify Token"),
    ]


def test_org_token_decoded_from_base64_is_that_token(rules_file: Path) -> None:
    """As for the built-in rules: fingerprinted as the decoded token, and one finding
    where the text also holds it as written."""
    import base64

    token = org_token()
    blob = base64.b64encode(f"key {token}\n".encode()).decode()
    scanner = Scanner(rules=rules_file)
    (alone,) = scanner.scan_text(f"data:\n  key: {blob}\n", path="s.yaml").findings
    assert (alone.type, alone.fingerprint) == ("Acme API Token", scanner.fingerprinter(token))
    both = scanner.scan_text(f"key: {token}\nblob: {blob}\n", path="s.yaml").findings
    assert [(f.type, f.line) for f in both] == [("Acme API Token", 1)]


def test_allowlists_see_the_token_decoded_from_base64(tmp_path: Path) -> None:
    """A rule's allowlist (by regex on the secret, or by the reported fingerprint) and a
    file-wide one judge the decoded token the finding is about."""
    import base64

    token = org_token("acme_test", 28)
    other = org_token()
    text = f"a: {base64.b64encode(token.encode()).decode()}\n"
    text += f"b: {base64.b64encode(other.encode()).decode()}\n"
    rules = tmp_path / "acme-rules.toml"
    rules.write_text(RULES_TOML)
    scanner = Scanner(rules=rules)
    (found,) = scanner.scan_text(text, path="s.yaml").findings  # acme_test: allowlisted
    assert found.fingerprint == scanner.fingerprinter(other)
    rules.write_text(RULES_TOML + f'\n[[allowlists]]\nfingerprints = ["{found.fingerprint}"]\n')
    assert Scanner(rules=rules).scan_text(text, path="s.yaml").findings == []
