"""Every detector family, in cells, outputs and metadata; findings never hold the secret."""

from __future__ import annotations

import base64
import hashlib
import json

import nbformat
import pytest
import scan_fakes as fk

from jupyter_qsecure.scan import Scanner, scan_text
from jupyter_qsecure.scan.fingerprints import process_fingerprinter


def _scan_source(source: str):
    return Scanner().scan_notebook(fk.code_notebook(source))


def _assert_found(result, secret: str, type_: str | None = None) -> None:
    types = {f.type for f in result.findings}
    assert result.findings, "expected a finding"
    if type_ is not None:
        assert type_ in types, types
    assert secret not in fk.dumps_all(result.to_json())
    assert secret not in repr(result)


CASES = {
    "aws": lambda: (fk.aws_key(), 'key = "{s}"', "AWS Access Key"),
    "github": lambda: (fk.github_token(), 'gh = "{s}"', "GitHub Token"),
    "keyword": lambda: (fk.password(), 'db_password = "{s}"', "Secret Keyword"),
    "vault-hvs": lambda: (fk.vault_token("hvs."), 'VAULT_TOKEN = "{s}"', "Vault Token"),
    "vault-hvb": lambda: (fk.vault_token("hvb."), 'client.token = "{s}"', "Vault Token"),
    "vault-legacy": lambda: (fk.vault_token("s."), "export X={s}", "Vault Token"),
    "openbao-batch": lambda: (fk.vault_token("b."), "tok={s}", "Vault Token"),
    "openbao-recovery": lambda: (fk.vault_token("r."), "t = '{s}'", "Vault Token"),
    "ibm-quantum": lambda: (
        fk.ibm_quantum_token(),
        'service = QiskitRuntimeService(channel="ibm_quantum", token="{s}")',
        "IBM Quantum API Token",
    ),
    "ibmq-save": lambda: (
        fk.ibm_quantum_token(),
        "IBMQ.save_account('{s}')",
        "IBM Quantum API Token",
    ),
    "url-password": lambda: (
        fk.password(),
        'engine = create_engine("postgresql+psycopg://alice:{s}@db.example.com/prod")',
        None,
    ),
    "mongodb-srv": lambda: (
        fk.password(),
        "uri = 'mongodb+srv://bob:{s}@cluster0.example.net/'",
        None,
    ),
    "ado-connection": lambda: (
        fk.password(),
        'cs = "Server=tcp:x.database.windows.net;Database=db;User ID=u;Password={s};"',
        "Connection String Password",
    ),
    "azure-storage": lambda: (
        fk.azure_account_key(),
        'conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={s};'
        'EndpointSuffix=core.windows.net"',
        None,
    ),
    "openai-proj": lambda: (fk.openai_key(), 'client = OpenAI(api_key="{s}")', None),
    "openai-plain": lambda: (fk.openai_key(False), "os.environ['X'] = '{s}'", "OpenAI API Key"),
    "bearer": lambda: (
        fk.rand(40),
        'requests.get(url, headers={{"Authorization": "Bearer {s}"}})',
        "HTTP Authorization",
    ),
    "basic": lambda: (
        base64.b64encode(f"user:{fk.password()}".encode()).decode(),
        "curl -H 'Authorization: Basic {s}' https://example.com",
        "HTTP Authorization",
    ),
    "jwt": lambda: (
        "eyJhbGciOiJIUzI1NiJ9."
        + base64.urlsafe_b64encode(b'{"sub":"x"}').decode().rstrip("=")
        + "."
        + fk.rand(43),
        "t = '{s}'",
        "JSON Web Token",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_family_in_code_cell(name: str) -> None:
    secret, template, type_ = CASES[name]()
    _assert_found(_scan_source(template.format(s=secret)), secret, type_)


def test_pem_private_key_across_lines_in_cell_and_output() -> None:
    pem = fk.pem_private_key()
    result = _scan_source(f'KEY = """{pem}"""')
    _assert_found(result, pem, "PEM Private Key")
    body_line = pem.splitlines()[1]
    assert body_line not in fk.dumps_all(result.to_json())
    nb = fk.code_notebook("print(key)")
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=pem)]
    _assert_found(Scanner().scan_notebook(nb), pem, "PEM Private Key")


def test_pem_json_escaped_service_account() -> None:
    pem = fk.pem_private_key()
    doc = json.dumps({"type": "service_account", "private_key": pem})
    result = scan_text(doc, path="sa.json")
    assert "PEM Private Key" in {f.type for f in result.findings}


def test_plain_text_file_line_by_line() -> None:
    secret = fk.password()
    result = scan_text(f"# settings\nDEBUG=1\npassword: {secret}\n", path="app.yaml")
    assert [(f.line, f.type) for f in result.findings] == [(3, "Secret Keyword")]
    assert result.findings[0].where is None and result.findings[0].cell is None
    assert result.findings[0].fingerprint == process_fingerprinter()(secret)


def test_fingerprint_is_keyed_hmac_of_exact_secret() -> None:
    key = fk.aws_key()
    (finding,) = _scan_source(f'k = "{key}"').findings
    assert finding.fingerprint == process_fingerprinter()(key)
    assert finding.fingerprint != hashlib.sha256(key.encode()).hexdigest()
    assert finding.model_dump().keys() == {
        "path",
        "cell",
        "cell_id",
        "where",
        "output",
        "mime",
        "line",
        "type",
        "fingerprint",
        "secret_name",
        "injected_on",
    }


@pytest.mark.parametrize(
    "source",
    [
        'password = "changeme"',
        'password = "<your-password>"',
        'api_key = "${API_KEY}"',
        'api_key = os.environ["API_KEY"]',
        "token = get_token()",
        'url = "postgresql://user:password@localhost/db"',
        'url = "postgresql://user:${PGPASSWORD}@localhost/db"',
        'job_id = "6f1e2d3c4b5a69788796a5b4c3d2e1f0"',
        'uuid = "123e4567-e89b-12d3-a456-426614174000"',
        'digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"',
        "counts = {'0000': 512, '1111': 512}",
        "token = '«secret:Secret Keyword»'",
    ],
)
def test_no_false_alarm(source: str) -> None:
    assert _scan_source(source).findings == []


def test_pragma_allowlist() -> None:
    secret = fk.password()
    assert _scan_source(f'password = "{secret}"  # pragma: allowlist secret').findings == []
    assert (
        _scan_source(f'# pragma: allowlist nextline secret\npassword = "{secret}"').findings == []
    )
    assert _scan_source(f'password = "{secret}"').findings
