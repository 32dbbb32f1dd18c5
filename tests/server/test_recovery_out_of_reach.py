"""Recovery copies of refused saves, and the key that opens them, out of reach of what
the server serves and of code running in kernels. A real Jupyter Server, real
contents manager, real qsecure kernel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import cli
from save_gate_helpers import fake_github_token, notebook_with
from server_helpers import refused, start, stdout_of
from tornado.httpclient import HTTPClientError

from jupyter_qsecure.kernel.install import install_kernelspec


@pytest.mark.parametrize(
    ("where", "allow_hidden"),
    [
        ("root/qsecure-data", False),  # a plain folder in the served tree
        ("root/.qsecure", True),  # hidden, but the server serves hidden files
        ("root", False),  # the served folder itself
        ("", False),  # the served folder is inside the data dir
    ],
)
async def test_the_server_refuses_to_start_when_its_data_dir_is_served(
    jp_configurable_serverapp: Any,
    jp_server_config: dict[str, Any],
    jp_root_dir: Path,
    where: str,
    allow_hidden: bool,
) -> None:
    data_dir = jp_root_dir.parent / where.replace("root", jp_root_dir.name, 1)
    jp_server_config["QSecure"]["data_dir"] = str(data_dir)
    jp_server_config["ContentsManager"] = {"allow_hidden": allow_hidden}
    before = sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []
    with pytest.raises(SystemExit) as info:
        jp_configurable_serverapp(config=jp_server_config)
    message = str(info.value.code)
    assert "refuses to start" in message
    contains = jp_root_dir != data_dir and jp_root_dir.is_relative_to(data_dir)
    relation = "contains" if contains else "is inside"
    assert f"data dir (QSecure.data_dir) {data_dir} {relation} the folder Jupyter serves" in (
        message
    )
    assert f"(ServerApp.root_dir: the contents API and /files) {jp_root_dir}" in message
    assert "QSECURE_DATA_DIR" in message and "hint:" in message  # what to do
    after = sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []
    assert after == before  # refused before a key, ledger or copy was written there


@pytest.fixture
def qsecure_data_dir(jp_root_dir: Path) -> Path:
    """Under a hidden folder of the served tree (what `jupyter lab` started in ~ gets
    with the default data dir, ~/.local/share/jupyter/qsecure)."""
    return jp_root_dir / ".local" / "qsecure"


async def test_a_data_dir_under_a_hidden_folder_is_not_served(
    jp_fetch: Any, jp_serverapp: Any, qsecure_data_dir: Path, jp_root_dir: Path
) -> None:
    secret = fake_github_token()
    model = notebook_with("none", "")
    model["cells"][1]["source"] = f"token = '{secret}'"
    body = await refused(jp_fetch, "draft.ipynb", {"type": "notebook", "content": model})
    key = qsecure_data_dir / "keys" / "recovery.key"
    copy = qsecure_data_dir / "recovery" / f"{body['recovery_id']}.bin"
    assert key.is_file() and copy.is_file()
    original_key = key.read_bytes()
    for path in (key, copy, qsecure_data_dir / "ledger.db"):
        relative = path.relative_to(jp_root_dir).as_posix()
        for route in (("api", "contents", *relative.split("/")), ("files", *relative.split("/"))):
            with pytest.raises(HTTPClientError) as info:
                await jp_fetch(*route)
            assert info.value.code in (403, 404), (route, info.value.code)
    with pytest.raises(HTTPClientError) as info:  # and the key cannot be overwritten
        await jp_fetch(
            "api",
            "contents",
            *key.relative_to(jp_root_dir).parts,
            method="PUT",
            body=json.dumps({"type": "file", "format": "text", "content": "attacker"}),
        )
    assert info.value.code in (400, 403, 404)
    assert key.read_bytes() == original_key


async def test_restoring_a_recovery_copy_from_a_kernel_is_refused(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    jp_environ: Any,
    qsecure_data_dir: Path,
    tmp_path: Path,
) -> None:
    secret = fake_github_token()
    model = notebook_with("none", "")
    model["cells"][1]["source"] = f"token = '{secret}'  # my unsaved work"
    body = await refused(jp_fetch, "draft.ipynb", {"type": "notebook", "content": model})
    recovery_id = body["recovery_id"]
    install_kernelspec(user=True)
    _, kernel = await start(jp_fetch, jp_ws_fetch, "qsecure", "legacy")
    outputs = [tmp_path / "from-kernel-1.ipynb", tmp_path / "from-kernel-2.ipynb"]
    # `!jupyter qsecure recover restore`, as a subprocess of the kernel: once as the kernel
    # starts it, once with the kernel's JPY_PARENT_PID marker removed from its environment.
    code = (
        "import json, os, subprocess, sys\n"
        f"env = dict(os.environ, QSECURE_DATA_DIR={str(qsecure_data_dir)!r})\n"
        "runs = []\n"
        f"for out, marker in zip({[str(p) for p in outputs]!r}, (True, False)):\n"
        "    if not marker:\n"
        "        env.pop('JPY_PARENT_PID', None)\n"
        "    r = subprocess.run([sys.executable, '-m', 'jupyter_qsecure.cli.main', 'recover',\n"
        f"                        'restore', {recovery_id!r}, '-o', out],\n"
        "                       env=env, capture_output=True, text=True, timeout=120)\n"
        "    runs.append([r.returncode, r.stdout + r.stderr])\n"
        "print('RUNS', json.dumps(runs))\n"
    )
    messages = await kernel.execute(code, timeout=180)
    errors = [m["content"] for m in messages if m["header"]["msg_type"] == "error"]
    assert not errors, errors
    text = stdout_of(messages)
    assert secret not in json.dumps(messages)
    runs = json.loads(text.split("RUNS ", 1)[1])
    for returncode, output in runs:
        assert returncode == 2, output
        assert "refused inside a Jupyter kernel" in output and "terminal" in output
    assert "JPY_PARENT_PID" in runs[0][1] and "started by a kernel" in runs[1][1]
    assert not any(p.exists() for p in outputs)

    # The same command from a terminal (here: the test process, no kernel) restores it.
    mine = tmp_path / "restored.ipynb"
    done = cli(qsecure_data_dir, "recover", "restore", recovery_id, "-o", str(mine))
    assert done.returncode == 0, done.stderr
    assert "my unsaved work" in mine.read_text()
