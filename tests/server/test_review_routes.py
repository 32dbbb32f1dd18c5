"""Review and promotion through the server: ``GET review/status``, ``POST review/approve``,
``POST promote`` (docs/rest-api.md), as the review panel calls them.

A real Jupyter Server with the extension (the embedded default: no OpenBao, the local
reviewer key; and a real OpenBao, whose approver key the server may not use), notebooks
saved through the contents API (so the save gate records who saved them), the real
scanner, the real resolver (uv) against this machine's indexes plus a wheel of this
package (``wheelhouse``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from save_gate_helpers import fake_aws_key
from server_helpers import put

from jupyter_qsecure.ledger import EntryFilter

CELLS = [
    ("markdown", "# Sums\nPromoted from the review panel."),
    ("code", "total = sum(range(10))"),
    ("code", "print('TOTAL', total)"),
]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook(cells: list[tuple[str, str]] = CELLS) -> dict[str, Any]:
    made = [
        new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
        for kind, source in cells
    ]
    return dict(new_notebook(cells=made, metadata={"kernelspec": KERNELSPEC}))


async def save(jp_fetch: Any, path: str, nb: dict[str, Any]) -> None:
    """Save through the contents API, as JupyterLab does (the gate records the saver)."""
    await put(jp_fetch, path, {"type": "notebook", "format": "json", "content": nb})


async def call(jp_fetch: Any, method: str, *path: str, body: Any = None, **params: str) -> Any:
    response = await jp_fetch(
        "qsecure",
        "api",
        *path,
        method=method,
        body=None if body is None else json.dumps(body),
        params=params or None,
        raise_error=False,
    )
    text = response.body.decode()
    return response.code, json.loads(text) if text else None


def entries(serverapp: Any, kind: str) -> list[Any]:
    ledger = serverapp.web_app.settings["qsecure_ledger"]
    return list(ledger.entries(EntryFilter(kinds=[kind])))


@pytest.fixture(autouse=True)
def outside_a_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """``review approve`` refuses inside a kernel: no kernel's variable in this process."""
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)


@pytest.fixture
def find_links(wheelhouse: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The resolver also finds jupyter-qsecure in the test's wheelhouse (pip's setting)."""
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    return wheelhouse


# ---- the embedded default: status, approve, changed, promote ----------------------------------
async def test_status_approve_change_and_promote(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path, find_links: Path
) -> None:
    os.makedirs(jp_root_dir / "work")
    await save(jp_fetch, "work/sums.ipynb", notebook())
    user = (await call(jp_fetch, "GET", "status"))[1]["user"]

    code, status = await call(jp_fetch, "GET", "review", "status", path="work/sums.ipynb")
    assert code == 200, status
    assert status["notebook"] == "work/sums.ipynb" and status["environment"] == "dev"
    assert (status["status"], status["approved"], status["approvers"]) == ("unapproved", False, [])
    assert status["changed_cells"] == [] and status["required"] == 1
    assert status["last_editor"] == user  # the save gate recorded the save

    # not approved: refused with the reason, nothing written or recorded
    code, refusal = await call(jp_fetch, "POST", "promote", body={"path": "work/sums.ipynb"})
    assert code == 409 and refusal["error"] == "not_approved", refusal
    assert "work/sums.ipynb is not approved for dev" in refusal["message"]
    assert str(jp_root_dir) not in json.dumps(refusal)  # contents paths, not the server's
    assert "review approve" in refusal["hint"]
    assert not (jp_root_dir / "work" / "promoted").exists()
    assert entries(jp_serverapp, "promotion.created") == []

    code, approved = await call(
        jp_fetch,
        "POST",
        "review",
        "approve",
        body={"path": "work/sums.ipynb", "note": "looks fine"},
    )
    assert code == 200, approved
    assert (approved["reviewer"], approved["source"], approved["note"]) == (
        user,
        "local",
        "looks fine",
    )
    assert approved["review"]["status"] == "approved" and approved["review"]["approvers"] == [user]
    (entry,) = entries(jp_serverapp, "review.approved")
    assert entry.index == approved["ledger_index"] and entry.actor == f"reviewer:{user}"
    assert entry.body["reviewer"] == user and entry.body["note"] == "looks fine"
    assert entry.body["path"] == str((jp_root_dir / "work" / "sums.ipynb").resolve())
    assert (jp_root_dir / "work" / "sums.ipynb.approvals.json").is_file()

    code, status = await call(jp_fetch, "GET", "review", "status", path="work/sums.ipynb")
    assert (status["status"], status["approved"], status["approvers"]) == ("approved", True, [user])

    # one character in the third cell: changed since the approval, naming the cell
    changed = notebook([*CELLS[:2], ("code", "print('TOTAL:', total)")])
    await save(jp_fetch, "work/sums.ipynb", changed)
    code, status = await call(jp_fetch, "GET", "review", "status", path="work/sums.ipynb")
    assert (status["status"], status["approved"]) == ("changed", False)
    assert status["changed_cells"] == [3] and status["removed_cells"] == []
    code, refusal = await call(jp_fetch, "POST", "promote", body={"path": "work/sums.ipynb"})
    assert code == 409 and refusal["error"] == "not_approved" and refusal["cells"] == [3]
    assert f"changed since its approval by {user}: cell 3 changed" in refusal["message"]
    assert not (jp_root_dir / "work" / "promoted").exists()

    # approved again: promoted beside the notebook, recorded, the manifest's digest given
    assert (await call(jp_fetch, "POST", "review", "approve", body={"path": "work/sums.ipynb"}))[
        0
    ] == 200
    code, promoted = await call(jp_fetch, "POST", "promote", body={"path": "work/sums.ipynb"})
    assert code == 200, promoted
    out = "work/promoted/sums"
    assert promoted["out_dir"] == out and promoted["script"] == f"{out}/sums.py"
    assert promoted["files"] == [
        f"{out}/{name}"
        for name in ("approvals.json", "promotion.intoto.json", "requirements.lock", "sums.py")
    ]
    folder = jp_root_dir / out
    manifest = (folder / "promotion.intoto.json").read_bytes()
    assert promoted["manifest"] == {
        "path": f"{out}/promotion.intoto.json",
        "sha256": hashlib.sha256(manifest).hexdigest(),
    }
    script = (folder / "sums.py").read_bytes()
    assert promoted["digests"]["sums.py"] == hashlib.sha256(script).hexdigest()
    assert b"print('TOTAL:', total)" in script
    assert promoted["approvers"] == [user] and promoted["promoter"] == user
    (record,) = entries(jp_serverapp, "promotion.created")
    assert record.index == promoted["ledger_index"] and record.actor == f"user:{user}"
    assert record.body["promoter"] == user and record.body["out_dir"] == str(folder.resolve())
    assert record.body["files"]["sums.py"] == promoted["digests"]["sums.py"]

    # a folder that is not empty is never written into
    code, refusal = await call(
        jp_fetch, "POST", "promote", body={"path": "work/sums.ipynb", "out_dir": out}
    )
    assert (
        code == 409
        and refusal["error"] == "conflict"
        and "not an empty folder" in refusal["message"]
    )
    assert len(entries(jp_serverapp, "promotion.created")) == 1


async def test_a_secret_in_an_output_is_refused_naming_the_cell_never_the_value(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    secret = fake_aws_key()
    await save(jp_fetch, "leak.ipynb", notebook())
    assert (await call(jp_fetch, "POST", "review", "approve", body={"path": "leak.ipynb"}))[
        0
    ] == 200
    # an editor outside Jupyter adds an output (outputs are not in the approved digest)
    path = jp_root_dir / "leak.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].outputs = [new_output("stream", name="stdout", text=f"key={secret}\n")]
    nbformat.write(nb, path)

    code, refusal = await call(jp_fetch, "POST", "promote", body={"path": "leak.ipynb"})
    assert code == 409 and refusal["error"] == "secret_found", refusal
    assert (refusal["cell"], refusal["line"]) == (3, 1)
    assert (
        "leak.ipynb: cell 3 (outputs[0], line 1) holds a secret (AWS Access Key)"
        in (refusal["message"])
    )
    assert secret not in json.dumps(refusal) and secret[4:] not in json.dumps(refusal)
    assert not (jp_root_dir / "promoted").exists()
    assert entries(jp_serverapp, "promotion.created") == []


async def test_an_untranslatable_magic_is_refused_naming_the_cell(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    await save(jp_fetch, "magic.ipynb", notebook([("code", "x = 1"), ("code", "%run other.py")]))
    assert (await call(jp_fetch, "POST", "review", "approve", body={"path": "magic.ipynb"}))[
        0
    ] == 200
    code, refusal = await call(
        jp_fetch, "POST", "promote", body={"path": "magic.ipynb", "out_dir": "release"}
    )
    assert code == 422 and refusal["error"] == "untranslatable", refusal
    assert refusal["cell"] == 2 and refusal["message"].startswith("cell 2")
    assert "%run" in refusal["message"] and refusal["hint"]
    assert not (jp_root_dir / "release").exists()
    assert entries(jp_serverapp, "promotion.created") == []


async def test_a_secret_in_the_code_is_not_approved(
    jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
) -> None:
    secret = fake_aws_key()
    nb = notebook([("code", f"key = {secret!r}")])
    nbformat.write(nbformat.from_dict(nb), jp_root_dir / "code.ipynb")  # the gate would refuse it
    code, refusal = await call(jp_fetch, "POST", "review", "approve", body={"path": "code.ipynb"})
    assert code == 409 and refusal["error"] == "secret_found", refusal
    assert "cell 1, line 1" in refusal["message"] and secret not in json.dumps(refusal)
    assert entries(jp_serverapp, "review.approved") == []
    assert not (jp_root_dir / "code.ipynb.approvals.json").exists()


# ---- paths -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("route", "body", "code", "error"),
    [
        ("approve", {"path": "../outside.ipynb"}, 422, "invalid"),
        ("approve", {"path": "a/../../outside.ipynb"}, 422, "invalid"),
        ("approve", {"path": "missing.ipynb"}, 404, "not_found"),
        ("approve", {"path": "ok.ipynb", "note": 3}, 422, "invalid"),
        ("approve", {"path": "notes.txt"}, 422, "invalid"),
        ("approve", {}, 422, "invalid"),
        ("approve", {"path": "escape/outside.ipynb"}, 404, "not_found"),
        ("promote", {"path": "ok.ipynb", "out_dir": "../out"}, 422, "invalid"),
        ("promote", {"path": "ok.ipynb", "out_dir": "escape/out"}, 404, "not_found"),
        ("promote", {"path": "ok.ipynb", "out_dir": "/"}, 422, "invalid"),
        ("promote", {"path": "/../outside.ipynb"}, 422, "invalid"),
    ],
)
async def test_paths_outside_the_root_are_refused(
    jp_fetch: Any,
    jp_serverapp: Any,
    jp_root_dir: Path,
    tmp_path: Path,
    route: str,
    body: dict[str, Any],
    code: int,
    error: str,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    nbformat.write(nbformat.from_dict(notebook()), outside / "outside.ipynb")
    (jp_root_dir / "escape").symlink_to(outside)  # a link out of the root
    await save(jp_fetch, "ok.ipynb", notebook())
    (jp_root_dir / "notes.txt").write_text("notes")
    parts = ("review", "approve") if route == "approve" else ("promote",)
    answered, refusal = await call(jp_fetch, "POST", *parts, body=body)
    assert (answered, refusal["error"]) == (code, error), refusal
    assert str(tmp_path) not in json.dumps(refusal)
    assert (
        not (outside / "outside.ipynb.approvals.json").exists() and not (outside / "out").exists()
    )
    assert entries(jp_serverapp, "review.approved") == []


async def test_status_of_a_path_outside_the_root(jp_fetch: Any, jp_root_dir: Path) -> None:
    assert (await call(jp_fetch, "GET", "review", "status", path="../x.ipynb"))[0] == 422
    assert (await call(jp_fetch, "GET", "review", "status", path="nope.ipynb"))[0] == 404
    assert (await call(jp_fetch, "GET", "review", "status"))[0] == 422


async def test_status_advertises_review(jp_fetch: Any) -> None:
    code, status = await call(jp_fetch, "GET", "status")
    assert code == 200 and "review" in status["features"]


# ---- with OpenBao: approvals are the approvers' (their own tokens), never the server's ---------
class TestWithOpenBao:
    @pytest.fixture
    def jp_server_config(
        self, vault_server_config: Callable[[dict[str, str]], dict[str, Any]]
    ) -> dict[str, Any]:
        return vault_server_config({})

    async def test_the_server_does_not_sign_approvals(
        self, jp_fetch: Any, jp_serverapp: Any, jp_root_dir: Path
    ) -> None:
        await save(jp_fetch, "bao.ipynb", notebook())
        code, refusal = await call(
            jp_fetch, "POST", "review", "approve", body={"path": "bao.ipynb"}
        )
        assert code == 403 and refusal["error"] == "forbidden", refusal
        assert "cannot sign approvals" in refusal["message"]
        assert "qsecure-approver-dev" in refusal["message"]
        assert "jupyter qsecure review approve" in refusal["hint"]
        assert entries(jp_serverapp, "review.approved") == []
        assert not (jp_root_dir / "bao.ipynb.approvals.json").exists()
        code, status = await call(jp_fetch, "GET", "review", "status", path="bao.ipynb")
        assert code == 200 and status["status"] == "unapproved"
