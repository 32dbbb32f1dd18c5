"""Helpers of the save gate's server tests: fake secrets generated at run time (never
committed) and notebooks holding one. Saving goes through ``server_helpers.put`` and
``server_helpers.refused``."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output


def fake_aws_key() -> str:
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def fake_github_token() -> str:
    return "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


def notebook_with(where: str, secret: str) -> dict[str, Any]:
    """A two-cell notebook with ``secret`` in its code's ``source``, its ``output`` or the
    notebook's ``metadata`` (anything else: nowhere)."""
    nb = new_notebook()
    nb.cells.append(new_markdown_cell("# Analysis"))
    code = new_code_cell("print('hello')")
    nb.cells.append(code)
    if where == "source":
        code.source = f"aws_key = '{secret}'\nprint(aws_key)"
    elif where == "output":
        code.outputs = [new_output("stream", name="stdout", text=f"connecting with {secret}\n")]
    elif where == "metadata":
        nb.metadata["connection"] = {"aws_access_key_id": secret}
    return json.loads(nbformat.writes(nb))
