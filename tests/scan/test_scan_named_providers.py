"""Provider keys that are bare UUIDs (Snyk, HubSpot) or carry a UUID (Plaid access tokens)
beside generic names (``key = …``, ``token: …``, ``secret=…``).

kingfisher's Snyk and HubSpot rules need the provider's name right beside the value
(``SNYK_TOKEN = …``), and the context layer rules UUIDs out (notebooks are full of UUID
ids). A UUID held by a credential's name is the provider's key when the provider's name
stands in the text around it; a Plaid access token names itself. Values are generated.
"""

from __future__ import annotations

import uuid

import nbformat
import pytest

from jupyter_qsecure.scan import Scanner
from jupyter_qsecure.scan.detectors import PROVIDER_WINDOW


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def _found(scanner: Scanner, text: str, path: str = "a.py") -> list[tuple[str, str]]:
    result = scanner.scan_text(text, path=path)
    return [(m.finding.type, m.secret) for m in result.matches]


@pytest.mark.parametrize(
    "template",
    [
        'import snyk\nkey = "{v}"\n',
        "# Snyk CLI\ntoken = '{v}'\n",
        "snyk:\n  token: {v}\n",
        '{{"snyk": {{"api_key": "{v}"}}}}',
        "client = snyk.SnykClient(token='{v}')\n",
        "SNYK_TOKEN={v}\n",
    ],
)
def test_snyk_token_beside_a_generic_name(scanner: Scanner, template: str) -> None:
    value = str(uuid.uuid4())
    assert _found(scanner, template.format(v=value)) == [("Snyk API Token", value)]


@pytest.mark.parametrize(
    "template",
    [
        "hubspot:\n  token: {v}\n",
        'from hubspot import HubSpot\napi_key = "{v}"\n',
        "HubSpot private app\npassword={v}\n",
    ],
)
@pytest.mark.parametrize("upper", [False, True])
def test_hubspot_key_beside_a_generic_name(scanner: Scanner, template: str, upper: bool) -> None:
    value = str(uuid.uuid4())
    value = value.upper() if upper else value
    assert _found(scanner, template.format(v=value)) == [("HubSpot API Key", value)]


@pytest.mark.parametrize("env", ["sandbox", "development", "production"])
@pytest.mark.parametrize(
    "template", ["secret={v}\n", 'key = "{v}"\n', "token: {v}\n", "print({v!r})\n", "{v}"]
)
def test_plaid_access_token_anywhere(scanner: Scanner, env: str, template: str) -> None:
    value = f"access-{env}-{uuid.uuid4()}"
    assert _found(scanner, template.format(v=value)) == [("Plaid Credential", value)]


@pytest.mark.parametrize(
    "text",
    [
        'key = "{v}"\n',  # no provider named: a UUID beside "key" is an id as often as not
        "token: {v}\n",
        'import snyk\nsnyk_org_id = "{v}"\n',  # named as an id
        'import snyk\nproject = "{v}"\n',  # no credential's name
        "# snyk\n" + "x = 1\n" * (PROVIDER_WINDOW // 6) + 'token = "{v}"\n',  # too far
        'link_token = "public-sandbox-{v}"\n',  # Plaid's public tokens are not secrets
        'secret = "access-sandbox-{v}-extra"\n',
    ],
)
def test_uuid_near_misses_stay_silent(scanner: Scanner, text: str) -> None:
    assert _found(scanner, text.format(v=uuid.uuid4())) == []


def test_our_layer_skips_id_names_beside_the_provider() -> None:
    """Without kingfisher (whose HubSpot rule takes any UUID beside the word)."""
    ours = Scanner(providers=False)
    assert _found(ours, f'hubspot_portal_id = "{uuid.uuid4()}"\n') == []
    value = str(uuid.uuid4())
    assert _found(ours, f'hubspot_token = "{value}"\n') == [("HubSpot API Key", value)]


@pytest.mark.parametrize("place", ["code", "stream", "markdown"])
def test_type_is_the_same_in_every_notebook_place(scanner: Scanner, place: str) -> None:
    value = str(uuid.uuid4())
    text = f"Snyk settings\ntoken: {value}\n"
    nb = nbformat.v4.new_notebook()
    if place == "code":
        nb.cells.append(nbformat.v4.new_code_cell(text))
    elif place == "markdown":
        nb.cells.append(nbformat.v4.new_markdown_cell(text))
    else:
        cell = nbformat.v4.new_code_cell("show()")
        cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text))
        nb.cells.append(cell)
    result = scanner.scan_notebook(nb)
    assert [(f.type, f.where) for f in result.findings] == [
        ("Snyk API Token", "outputs" if place == "stream" else "source")
    ]
    assert value not in repr(result.findings)
