"""The folders this Jupyter Server serves files from (see ``jupyter_qsecure.served_paths``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_qsecure.served_paths import ServedTree

__all__ = ["served_trees"]


def served_trees(serverapp: Any) -> list[ServedTree]:
    """``root_dir`` (the contents API, ``/files``, ``/view``, nbconvert), the contents
    manager's own root if it has another, and ``extra_static_paths`` (served under
    ``/static`` without login)."""
    manager = serverapp.contents_manager
    hidden = bool(getattr(manager, "allow_hidden", False))
    trees = [
        ServedTree(
            Path(serverapp.root_dir),
            "the folder Jupyter serves (ServerApp.root_dir: the contents API and /files)",
            hidden,
        )
    ]
    manager_root = getattr(manager, "root_dir", None)
    if isinstance(manager_root, str) and manager_root and manager_root != serverapp.root_dir:
        trees.append(
            ServedTree(
                Path(manager_root), "the contents manager's root (ContentsManager.root_dir)", hidden
            )
        )
    for static in getattr(serverapp, "extra_static_paths", None) or []:
        trees.append(
            ServedTree(
                Path(static),
                "a folder served without login (ServerApp.extra_static_paths)",
                True,
            )
        )
    return trees
