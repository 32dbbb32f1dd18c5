"""The "Python 3 (qsecure)" kernel, started for real from its installed kernelspec.

Execute requests carry the server extension's metadata contract; the tests check what
the kernel returns, shows and keeps. Values are generated at run time and never sent
in code: cells print SHA-256 digests of what ``secrets.get`` returned.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets as pysecrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernel_fakes import credentials_block
from real_kernel import Kernel, running_kernel


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def credentials(**overrides: Any) -> dict[str, Any]:
    return credentials_block(
        environment="test",
        kernel_id="kernel-" + pysecrets.token_hex(4),
        api_minutes=15,
        warehouse_minutes=45,
        **overrides,
    )


def values_of(block: dict[str, Any]) -> list[str]:
    values = [block["token"]] if block.get("token") else []
    for value in block.get("secrets", {}).values():
        values.extend([value] if isinstance(value, str) else value.values())
    return values


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    with running_kernel(tmp_path_factory.mktemp("qsecure-kernel")) as started:
        yield started


def meta(block: dict[str, Any]) -> dict[str, Any]:
    return {"qsecure": block}


def test_extension_loaded_by_the_kernelspec(kernel: Kernel) -> None:
    run = kernel.execute(
        "import sys\n"
        "print('jupyter_qsecure.kernel' in get_ipython().extension_manager.loaded)\n"
        "print('qsecure' in get_ipython().magics_manager.magics['line'])\n"
        "print(sorted(k for k in globals() if 'secret' in k.lower() or 'qsecure' in k.lower()))"
    )
    assert run.ok, run.error
    assert run.stdout.split("\n")[:3] == ["True", "True", "[]"]


def test_get_returns_the_value_of_this_execution(kernel: Kernel) -> None:
    block = credentials()
    run = kernel.execute(
        "import hashlib\n"
        "from jupyter_qsecure import secrets\n"
        "h = lambda s: hashlib.sha256(s.encode()).hexdigest()\n"
        "print(h(secrets.get('api')))\n"
        "db = secrets.get('warehouse')\n"
        "print(h(db['username']), h(db['password']))\n"
        "print(h(secrets.token()))\n"
        "print(secrets.names(), secrets.identity().user, secrets.identity().environment)\n"
        "del db\n",
        meta(block),
    )
    assert run.ok, run.error
    lines = run.stdout.splitlines()
    db = block["secrets"]["warehouse"]
    assert lines == [
        sha(block["secrets"]["api"]),
        f"{sha(db['username'])} {sha(db['password'])}",
        sha(block["token"]),
        "['api', 'broken', 'warehouse'] alice test",
    ]
    for value in values_of(block):
        assert value not in run.wire_text()

    # The next execution carries no credentials: nothing was cached.
    again = kernel.execute("secrets.get('api')")
    assert not again.ok
    assert again.error is not None and again.error["ename"] == "NoCredentials"
    assert "'Python 3 (qsecure)' kernel" in again.error["evalue"]
    for value in values_of(block):
        assert value not in again.wire_text()

    # A new execution with new values gets the new values.
    fresh = credentials()
    run = kernel.execute("print(h(secrets.get('api')))", meta(fresh))
    assert run.stdout.strip() == sha(fresh["secrets"]["api"])


def test_credentials_do_not_outlive_their_cell(kernel: Kernel) -> None:
    block = credentials()
    run = kernel.execute(
        "import threading, hashlib\n"
        "from jupyter_qsecure import secrets\n"
        "_kept_parent = get_ipython().kernel.get_parent('shell')\n"
        "_seen = []\n"
        "t = threading.Thread(target=lambda: _seen.append("
        "hashlib.sha256(secrets.get('api').encode()).hexdigest()))\n"
        "t.start(); t.join()\n"
        "print(_seen[0])\n"
        "print('qsecure' in _kept_parent['metadata'])",
        meta(block),
    )
    assert run.ok, run.error
    assert run.stdout.splitlines() == [sha(block["secrets"]["api"]), "True"]
    # After the execution, the extension removed the block from the request ipykernel
    # keeps in memory.
    run = kernel.execute("print('qsecure' in _kept_parent['metadata']); del _kept_parent")
    assert run.stdout.strip() == "False"


def test_no_value_in_environment_or_files(kernel: Kernel) -> None:
    block = credentials()
    run = kernel.execute(
        "import json, os\n"
        "from jupyter_qsecure import secrets\n"
        "secrets.get('api'); secrets.get('warehouse'); secrets.token()\n"
        "print(json.dumps(dict(os.environ)))\n"
        "get_ipython().history_manager.writeout_cache()",
        meta(block),
    )
    assert run.ok, run.error
    environ = json.loads(run.stdout)
    assert environ["IPYTHONDIR"] == str(kernel.ipython_dir)  # the kernel's real environment
    environ_text = json.dumps(environ)
    for value in values_of(block):
        assert value not in environ_text
    proc_environ = Path(f"/proc/{kernel.manager.provisioner.pid}/environ")  # type: ignore[union-attr]
    files = [
        p
        for folder in (kernel.cwd, kernel.runtime_dir, kernel.ipython_dir)
        for p in folder.rglob("*")
        if p.is_file()
    ]
    if proc_environ.exists():
        files.append(proc_environ)
    assert any(p.suffix == ".sqlite" for p in files)  # IPython's history was written
    for path in files:
        data = path.read_bytes()
        for value in values_of(block):
            assert value.encode() not in data, f"{path} holds a value"


def test_no_value_of_an_earlier_execution_left_in_environment(kernel: Kernel) -> None:
    # the first execution reads everything; what it leaves behind shows in the next ones
    earlier = credentials()
    run = kernel.execute(
        "from jupyter_qsecure import secrets\n"
        "secrets.get('api'); secrets.get('warehouse'); secrets.token()",
        meta(earlier),
    )
    assert run.ok, run.error
    dump = "import json, os\nprint(json.dumps(dict(os.environ)))"
    later = credentials()
    for metadata in (meta(later), None):  # with other credentials, and with none at all
        run = kernel.execute(dump, metadata)
        assert run.ok, run.error
        environ = json.loads(run.stdout)
        assert environ["IPYTHONDIR"] == str(kernel.ipython_dir)  # the kernel's real environment
        environ_text = json.dumps(environ)
        left = [i for i, value in enumerate(values_of(earlier)) if value in environ_text]
        assert left == [], "values of the earlier execution are in os.environ"


def test_status_shows_leases_never_values(kernel: Kernel) -> None:
    block = credentials()
    run = kernel.execute("%qsecure status", meta(block))
    assert run.ok, run.error
    text = run.stdout
    for expected in ("alice", "test", "api", "warehouse", "database", "token", "broken"):
        assert expected in text
    assert block["identity"]["accessor"][:8] in text
    assert block["identity"]["accessor"] not in text
    assert re.search(r"api\s+kv\s+1[45]m \d+s\s+no", text), text
    assert re.search(r"warehouse\s+database\s+4[45]m \d+s\s+yes", text), text
    for value in values_of(block):
        assert value not in run.wire_text()

    help_run = kernel.execute("%qsecure help")
    assert "secrets.get" in help_run.stdout
    bare = kernel.execute("%qsecure status")
    assert bare.ok and "no credentials" in bare.stdout
    wrong = kernel.execute("%qsecure frobnicate")
    assert "unknown %qsecure command 'frobnicate'; try: %qsecure help" in wrong.stderr


@pytest.mark.parametrize(
    ("name", "overrides", "ename", "expected"),
    [
        ("nope", {}, "UnknownSecret", "names this kernel has: 'api', 'broken', 'warehouse'"),
        ("broken", {}, "SecretUnavailable", "permission denied"),
        (
            "api",
            {"error": "OpenBao at http://127.0.0.1:8200 is unreachable", "secrets": {}},
            "SecretsUnavailable",
            "unreachable",
        ),
    ],
)
def test_clear_errors_and_the_kernel_stays_usable(
    kernel: Kernel, name: str, overrides: dict[str, Any], ename: str, expected: str
) -> None:
    block = credentials(**overrides)
    run = kernel.execute(f"from jupyter_qsecure import secrets\nsecrets.get({name!r})", meta(block))
    assert not run.ok
    assert run.error is not None and run.error["ename"] == ename
    assert expected in run.error["evalue"]
    assert run.reply["content"]["ename"] == ename
    for value in values_of(block):
        assert value not in run.wire_text()
    after = kernel.execute("print(6 * 7)")
    assert after.ok and after.stdout.strip() == "42"
    ok = credentials()
    again = kernel.execute(
        "import hashlib\nprint(hashlib.sha256(secrets.get('api').encode()).hexdigest())",
        meta(ok),
    )
    assert again.ok and again.stdout.strip() == sha(ok["secrets"]["api"])


def test_extension_load_is_idempotent(kernel: Kernel) -> None:
    run = kernel.execute(
        "import jupyter_qsecure.kernel as ext\n"
        "ip = get_ipython()\n"
        "count = lambda: sum(getattr(cb, '__name__', '') == 'forget_credentials' "
        "for cb in ip.events.callbacks['post_execute'])\n"
        "ext.load_ipython_extension(ip); ext.load_ipython_extension(ip)\n"
        "print(count())\n"
        "ext.unload_ipython_extension(ip); ext.unload_ipython_extension(ip)\n"
        "print(count(), 'qsecure' in ip.magics_manager.magics['line'])\n"
        "ext.load_ipython_extension(ip)\n"
        "print(count(), 'qsecure' in ip.magics_manager.magics['line'])\n"
        "del ext, ip, count"
    )
    assert run.ok, run.error
    assert run.stdout.splitlines() == ["1", "0 False", "1 True"]
    load_again = kernel.execute("%load_ext jupyter_qsecure.kernel")
    assert load_again.ok
    status = kernel.execute("%qsecure status", meta(credentials()))
    assert status.ok and "alice" in status.stdout
