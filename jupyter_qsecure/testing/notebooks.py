"""Small notebooks the test suite shares."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["QSECURE_KERNELSPEC", "one_cell_notebook"]

#: The kernelspec of a notebook that runs on the qsecure kernel.
QSECURE_KERNELSPEC = {"name": "qsecure", "display_name": "Python 3 (qsecure)", "language": "python"}


def one_cell_notebook(source: str = "x = 1", output: str = "") -> dict[str, Any]:
    """A notebook of one code cell (with ``output`` on stdout, if given) on the qsecure
    kernel, as plain JSON, as read from a ``.ipynb`` file."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cell = new_code_cell(source)  # type: ignore[no-untyped-call]
    if output:
        cell.outputs = [new_output("stream", name="stdout", text=output)]  # type: ignore[no-untyped-call]
    nb = new_notebook(  # type: ignore[no-untyped-call]
        cells=[cell], metadata={"kernelspec": dict(QSECURE_KERNELSPEC)}
    )
    return dict(json.loads(nbformat.writes(nb)))  # type: ignore[no-untyped-call]
