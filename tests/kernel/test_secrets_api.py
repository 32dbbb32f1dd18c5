"""``jupyter_qsecure.secrets`` against the metadata contract, without a kernel process.

A stand-in shell exposes ``kernel.get_parent("shell")`` like ipykernel does; the real
kernel is exercised in test_kernel_extension.py.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kernel_fakes import FakeKernel, credentials_block

from jupyter_qsecure import secrets
from jupyter_qsecure.errors import QSecureError
from jupyter_qsecure.kernel import context
from jupyter_qsecure.kernel.context import Lease, format_duration, parse


class FakeShell:
    def __init__(self, parent: dict[str, Any]) -> None:
        self.kernel = FakeKernel(parent)


def contract(**overrides: Any) -> dict[str, Any]:
    """A dev contract whose kernel token has just expired."""
    return credentials_block(token_left=timedelta(seconds=-5), **overrides)


@pytest.fixture
def in_kernel(monkeypatch: pytest.MonkeyPatch):
    """Install a fake current request; returns a setter for its qsecure block."""
    parent: dict[str, Any] = {"header": {"msg_type": "execute_request"}, "metadata": {}}
    monkeypatch.setattr(context, "_shell", lambda: FakeShell(parent))

    def set_block(block: Any) -> dict[str, Any]:
        parent["metadata"] = {} if block is None else {"qsecure": block}
        return parent

    return set_block


def all_values(block: dict[str, Any]) -> list[str]:
    values = [block["token"]]
    for value in block["secrets"].values():
        values.extend([value] if isinstance(value, str) else value.values())
    return values


def assert_no_value(text: str, block: dict[str, Any]) -> None:
    for value in all_values(block):
        assert value not in text


def test_get_returns_values_of_the_current_request(in_kernel) -> None:
    block = contract()
    in_kernel(block)
    assert secrets.get("api") == block["secrets"]["api"]
    db = secrets.get("warehouse")
    assert db == block["secrets"]["warehouse"]
    db["password"] = "changed"  # a copy: the request is untouched  # pragma: allowlist secret
    assert secrets.get("warehouse") == block["secrets"]["warehouse"]
    assert secrets.names() == ["api", "broken", "warehouse"]
    assert secrets.token() == block["token"]
    ident = secrets.identity()
    assert (ident.user, ident.environment, ident.kernel_id) == ("alice", "dev", "k-123")
    assert ident.policies == ("qsecure-kernel-dev",)
    assert ident.accessor_prefix == block["identity"]["accessor"][:8] + "..."


def test_fresh_values_on_every_request(in_kernel) -> None:
    first, second = contract(), contract()
    in_kernel(first)
    assert secrets.get("api") == first["secrets"]["api"]
    in_kernel(second)
    assert secrets.get("api") == second["secrets"]["api"]
    in_kernel(None)
    with pytest.raises(secrets.NoCredentials) as info:
        secrets.get("api")
    assert "'Python 3 (qsecure)' kernel" in str(info.value)
    with pytest.raises(secrets.NoCredentials):
        secrets.token()
    with pytest.raises(secrets.NoCredentials):
        secrets.names()


def test_unknown_name_lists_names_only(in_kernel) -> None:
    block = contract()
    in_kernel(block)
    with pytest.raises(secrets.UnknownSecret) as info:
        secrets.get("nope")
    err = info.value
    assert isinstance(err, LookupError) and isinstance(err, QSecureError)
    assert err.names == ["api", "broken", "warehouse"]
    assert "'api', 'broken', 'warehouse'" in str(err)
    assert_no_value(str(err), block)


def test_secret_error_and_global_error(in_kernel) -> None:
    block = contract()
    in_kernel(block)
    with pytest.raises(secrets.SecretUnavailable) as one:
        secrets.get("broken")
    assert one.value.name == "broken" and "permission denied" in str(one.value)
    assert secrets.get("api")  # the others still work

    down = contract(error="OpenBao at http://127.0.0.1:8200 is unreachable", secrets={}, token=None)
    in_kernel(down)
    for call in (lambda: secrets.get("api"), secrets.token):
        with pytest.raises(secrets.SecretsUnavailable) as info:
            call()
        assert "unreachable" in str(info.value) and "run the cell again" in str(info.value)
    # A failed issue may come without environment or identity: still the clear error.
    in_kernel({"v": 1, "error": "token expired and could not be re-issued"})
    with pytest.raises(secrets.SecretsUnavailable, match="token expired"):
        secrets.get("api")
    with pytest.raises(secrets.SecretsUnavailable):
        secrets.identity()


def test_error_frames_hold_no_value(in_kernel) -> None:
    """A verbose traceback shows the locals of each frame: none of ours holds a value."""
    block = contract()
    in_kernel(block)
    with pytest.raises(secrets.UnknownSecret) as info:
        secrets.get("nope")
    tb = info.tb
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith("jupyter_qsecure"):
            assert_no_value(repr(tb.tb_frame.f_locals), block)
        tb = tb.tb_next
    assert info.value.__context__ is None


def test_malformed_metadata_names_the_field_not_the_value(in_kernel) -> None:
    block = contract(v=2)
    in_kernel(block)
    with pytest.raises(secrets.MalformedCredentials, match="version 2"):
        secrets.get("api")
    bad = contract()
    bad["secrets"]["api"] = 12345
    in_kernel(bad)
    with pytest.raises(secrets.MalformedCredentials, match=r"secrets\['api'\]") as info:
        secrets.get("api")
    assert "12345" not in str(info.value)
    bad = contract()
    bad["leases"]["api"]["expires_at"] = "soon-" + block["secrets"]["api"]
    in_kernel(bad)
    with pytest.raises(secrets.MalformedCredentials) as info:
        secrets.names()
    assert block["secrets"]["api"] not in str(info.value)
    with pytest.raises(TypeError):
        secrets.get(3)  # type: ignore[arg-type]


def test_optional_fields_may_be_null(in_kernel) -> None:
    block = contract(kernel_id=None, token=None, errors=None, leases=None)
    block["identity"]["accessor"] = None
    in_kernel(block)
    assert secrets.get("api") == block["secrets"]["api"]
    assert secrets.identity().accessor == "" and secrets.names() == ["api", "warehouse"]
    with pytest.raises(secrets.SecretsUnavailable, match="no kernel token"):
        secrets.token()


def test_repr_of_parsed_credentials_hides_values() -> None:
    block = contract()
    creds = parse(block)
    assert_no_value(repr(creds), block)
    assert creds.names() == ["api", "broken", "warehouse"]


def test_time_left() -> None:
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    lease = Lease("x", "kv", None, now + timedelta(seconds=3725), 3725, True)
    assert lease.time_left(now) == "1h 2m 5s"
    assert Lease("x", "kv", None, now - timedelta(seconds=1), None, False).time_left(now) == (
        "expired"
    )
    assert Lease("x", "kv", None, None, None, False).time_left(now) == "no expiry"
    assert "TTL" in Lease("x", "kv", None, None, 60, False).time_left(now)
    assert format_duration(42) == "42s" and format_duration(0) == "0s"
    assert format_duration(90061) == "1d 1h 1m"


def test_status_text_has_no_value() -> None:
    from jupyter_qsecure.kernel.magics import render_status

    block = contract()
    text = render_status(parse(block))
    assert_no_value(text, block)
    assert block["identity"]["accessor"] not in text
    assert block["identity"]["accessor"][:8] in text
    for expected in ("alice", "dev", "api", "warehouse", "database", "expired", "broken"):
        assert expected in text
    assert "9m " in text and "59m " in text  # time left of the two leases


def test_forget_current_removes_the_block(in_kernel) -> None:
    parent = in_kernel(contract())
    shell = context._shell()
    assert context.forget_current(shell) is True
    assert "qsecure" not in parent["metadata"]
    assert context.forget_current(shell) is False
    with pytest.raises(secrets.NoCredentials):
        secrets.get("api")


def test_ipython_shell_without_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "_shell", lambda: object())
    with pytest.raises(secrets.NoCredentials, match="no credentials from a jupyter-qsecure"):
        secrets.get("api")


def test_plain_python_points_at_the_runtime() -> None:
    code = (
        "import sys\n"
        "from jupyter_qsecure import secrets\n"
        "assert 'IPython' not in sys.modules, 'secrets imported IPython'\n"
        "try:\n"
        "    secrets.get('api')\n"
        "except secrets.NoCredentials as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "outside a Jupyter kernel" in out
    assert "jupyter_qsecure.runtime" in out
