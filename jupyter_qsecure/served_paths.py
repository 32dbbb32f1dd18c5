"""Private files must not be inside a tree Jupyter serves.

The data dir holds the recovery copies of refused saves and, without OpenBao, the key
that opens them (``keys/recovery.key``), the local signing keys and the SQLite
ledger. When it sits inside the server's ``root_dir`` the contents API serves all of
that to anyone with the Jupyter token (a recovery copy *and* the key to open it), and
lets them overwrite the key, the ledger or the keyring.

The server refuses to start then, rather than hiding those paths from the contents
manager: a hidden path must be hidden from every way Jupyter serves files (the
contents API, ``/files``, ``/view``, nbconvert, other extensions' handlers, a custom
contents manager), and any one that forgets leaks; refusing closes all of them, and
the fix (move the data dir, or serve another root) is one setting.

Jupyter itself refuses hidden paths (a dot-file or dot-folder under ``root_dir``, or one
the OS marks hidden) unless ``ContentsManager.allow_hidden`` is set, so a data dir below
a hidden folder (the default ``~/.local/share/jupyter/qsecure``, ``~/Library/Jupyter``
on macOS, ``%APPDATA%``/jupyter on Windows, with ``root_dir = ~``) is accepted when
hidden files are not served.

Deliberately not detected: a symbolic link inside the served tree pointing at the data
dir (finding one would mean walking the whole tree at every start). Kernels and
terminals run as the same OS account and can read these files anyway: this check is
about what the server serves over HTTP (see docs/threat-model.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_core.paths import is_hidden

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import QSecure

__all__ = [
    "Exposure",
    "ServedPrivateFiles",
    "ServedTree",
    "check_not_served",
    "exposures",
    "private_paths",
]


class ServedPrivateFiles(ConfigError):
    """A private file or folder of jupyter-qsecure is inside a tree Jupyter serves."""


@dataclass(frozen=True)
class ServedTree:
    """A folder whose files a server route serves, e.g. ``root_dir`` (contents API)."""

    path: Path
    what: str
    serves_hidden: bool


@dataclass(frozen=True)
class Exposure:
    private: Path
    private_what: str
    tree: ServedTree

    #: The served tree is inside the private folder (rather than the other way round).
    contains: bool = False

    def describe(self) -> str:
        relation = "contains" if self.contains else "is inside"
        return f"{self.private_what} {self.private} {relation} {self.tree.what} {self.tree.path}"


def private_paths(settings: QSecure) -> dict[str, Path]:
    """What no server route may serve: the data dir, and key, token and ledger files
    the settings place elsewhere. ``{description: path}``."""
    private = {"the jupyter-qsecure data dir (QSecure.data_dir)": settings.data_path}
    if settings.ledger_signing_key_file:
        private["the ledger's signing key (QSecure.ledger_signing_key_file)"] = (
            settings.resolved_signing_key_file()
        )
        private["the ledger's ML-DSA key (next to ledger_signing_key_file)"] = (
            settings.resolved_pq_key_file()
        )
    if settings.ledger_keyring_file:
        private["the trusted keyring (QSecure.ledger_keyring_file)"] = (
            settings.resolved_keyring_file()
        )
    url = settings.resolved_ledger_url()
    if url.startswith("sqlite://"):
        private["the SQLite ledger (QSecure.ledger_url)"] = Path(url[len("sqlite://") :])
    for trait in ("vault_token_file", "vault_approle_secret_id_file", "vault_jwt_file"):
        value = getattr(settings, trait)
        if value:
            private[f"the credential file QSecure.{trait}"] = Path(value)
    return private


def _real(path: Path) -> Path:
    # realpath: a data dir reached through a symlinked folder is still where it really is
    return Path(os.path.realpath(os.path.expanduser(path)))


def _hidden(path: Path, root: Path) -> bool:
    # Jupyter's own rule for what its contents manager will not serve: a dot name below
    # the root, or a folder the OS marks hidden (macOS's ~/Library, Windows' AppData,
    # where the default data dir lives there). Paths that do not exist yet count by name.
    return bool(is_hidden(str(path), str(root)))


def exposures(private: Mapping[str, Path], trees: Iterable[ServedTree]) -> list[Exposure]:
    """Every private path (``{description: path}``) that a served tree exposes: the
    path is in the tree (and not hidden from it), or the tree is in the private folder."""
    found: list[Exposure] = []
    served = [(tree, _real(tree.path)) for tree in trees]
    for what, path in private.items():
        real = _real(path)
        for tree, root in served:
            if real == root:
                found.append(Exposure(path, what, tree))
            elif root.is_relative_to(real):
                found.append(Exposure(path, what, tree, contains=True))
            elif real.is_relative_to(root):
                if tree.serves_hidden or not _hidden(real, root):
                    found.append(Exposure(path, what, tree))
    return found


def check_not_served(private: Mapping[str, Path], trees: Iterable[ServedTree]) -> None:
    """Raise :class:`ServedPrivateFiles` naming every exposure and what to do."""
    found = exposures(private, trees)
    if not found:
        return
    lines = "; ".join(e.describe() for e in found)
    raise ServedPrivateFiles(
        f"jupyter-qsecure refuses to start: {lines}. Through it the server would hand out "
        "(and let anyone with the Jupyter token overwrite) recovery copies of refused saves, "
        "the key that opens them, signing keys and the ledger",
        hint="set QSecure.data_dir (or QSECURE_DATA_DIR) to a folder outside every served "
        "folder, e.g. the default ~/.local/share/jupyter/qsecure, and move the settings that "
        "name files inside it; or start Jupyter with another root_dir (--notebook-dir)",
    )
