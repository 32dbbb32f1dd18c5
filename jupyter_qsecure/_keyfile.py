"""Private key files in the data dir: created once (mode 0600, atomically), read strictly.

One implementation for every local key jupyter-qsecure keeps: the ledger's signing
keys, the recovery key and the fingerprint key. A file readable by other users is
refused (as ssh does); a key is never overwritten.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from .errors import QSecureError


def read_private_file(
    path: Path, *, what: str, error: type[QSecureError] = QSecureError, fix: str
) -> bytes:
    """The bytes of ``path``, refusing a non-regular file or one others can access.

    ``what`` names the key in messages ("signing key"); ``fix`` is the hint for a
    path that is not a regular file.
    """
    try:
        info = path.stat()
    except OSError as exc:
        raise error(
            f"cannot read {what} {path}: {exc.strerror}",
            hint="check the path and its permissions (the file must be readable by you, mode 0600)",
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {path} is not a regular file", hint=fix)
    if info.st_mode & 0o077:
        raise error(
            f"{what} {path} is accessible by other users (mode {stat.S_IMODE(info.st_mode):04o})",
            hint=f"run: chmod 600 {path}",
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise error(
            f"cannot read {what} {path}: {exc.strerror}",
            hint="check that the file is readable by the user running jupyter-qsecure (mode 0600)",
        ) from exc


def create_private_file(
    path: Path, data: bytes, *, what: str, error: type[QSecureError] = QSecureError, fix: str
) -> None:
    """Create ``path`` holding ``data`` with mode 0600; never overwrite an existing file.

    The data is written in full to a private temporary file and then hard-linked into
    place, so a concurrent reader never sees a partial key and two processes racing to
    create one end up sharing the first (the caller re-reads the file).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise error(f"cannot create {what} {path}: {exc.strerror}", hint=fix) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first
    finally:
        os.unlink(tmp)


def load_or_create_key(
    path: Path,
    *,
    what: str,
    size: int = 32,
    error: type[QSecureError] = QSecureError,
    create: bool = True,
) -> bytes:
    """A random ``size``-byte key kept in ``path`` (created on first use when ``create``)."""
    fix = f"remove {path} to have a new {what} created (data sealed or keyed with it is lost)"
    if create and not path.exists():
        create_private_file(
            path,
            secrets.token_bytes(size),
            what=what,
            error=error,
            fix="make the data dir writable (QSECURE_DATA_DIR)",
        )
    key = read_private_file(path, what=what, error=error, fix=fix)
    if len(key) != size:
        raise error(
            f"{what} {path} is not a {size * 8}-bit key",
            hint="restore it from backup; what was sealed or keyed with another key cannot be matched",
        )
    return key
