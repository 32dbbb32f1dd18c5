"""Saves through a real Jupyter Server record the notebook's editor (``notebook.saved``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jupyter_qsecure.ledger import EntryFilter
from jupyter_qsecure.promote.digest import load_notebook, notebook_digest
from jupyter_qsecure.testing.notebooks import one_cell_notebook


async def put(jp_fetch: Any, path: str, nb: dict[str, Any]) -> Any:
    body = json.dumps({"type": "notebook", "content": nb})
    return await jp_fetch("api", "contents", path, method="PUT", body=body)


async def test_saves_that_change_code_name_the_editor_and_the_file(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any
) -> None:
    (jp_root_dir / "sub").mkdir()
    await put(jp_fetch, "sub/n.ipynb", one_cell_notebook("a = 1"))
    await put(jp_fetch, "sub/n.ipynb", one_cell_notebook("a = 1", output="1\n"))  # outputs only
    await put(jp_fetch, "sub/n.ipynb", one_cell_notebook("a = 2"))
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    saved = [e for e in ledger.entries(EntryFilter(kinds=["notebook.saved"]))]
    file = jp_root_dir.resolve() / "sub" / "n.ipynb"
    assert [(e.body["path"], e.body["file"]) for e in saved] == [("sub/n.ipynb", str(file))] * 2
    assert saved[-1].body["digest"] == notebook_digest(load_notebook(file))
    user = saved[-1].body["user"]
    assert user and user not in ("server", "anonymous") and saved[-1].actor == f"user:{user}"
