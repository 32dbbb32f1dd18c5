"""A lock with hashes for a promoted script's pins, from a real resolver (uv).

``uv pip compile --generate-hashes`` resolves the exact pins (:mod:`.pins`) against
the package indexes this machine's pip is configured with (``index-url``,
``extra-index-url``, ``find-links``, ``no-index``, from pip's configuration files and
``PIP_*`` variables, as ``pip config list`` shows them), plus any ``find_links`` given,
and writes a requirements-style lock (``requirements.lock``) in which every
distribution carries the SHA-256 of each of its files. ``uv pip sync --require-hashes
requirements.lock`` (or ``pip install --require-hashes --no-deps -r``) installs exactly
that. The resolver must agree with the pins: a lock naming another version, or a
distribution the kernel's environment does not have, is refused.

Names that :mod:`.pins` left out on purpose (jupyter-qsecure's server and kernel
requirements) are passed as ``--excludes``.

Why the pip configuration is read here rather than with ``pip config list``: pip has no
public API for it, and starting pip costs half a second on every promotion.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import PromotionError
from .pins import Pins

__all__ = [
    "LOCK_NAME",
    "IndexSettings",
    "LockError",
    "compile_lock",
    "index_settings",
    "lock_pins",
    "locked_versions",
    "uv_binary",
    "uv_version",
]

LOCK_NAME = "requirements.lock"


class LockError(PromotionError):
    """The resolver could not lock the pins (or disagrees with them)."""


@dataclass(frozen=True)
class IndexSettings:
    """Where packages come from, as pip on this machine is configured."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    def uv_arguments(self) -> list[str]:
        args: list[str] = []
        if self.no_index:
            args.append("--no-index")
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        # pip's rule: the best version on any index (uv's default takes the first index
        # that has a package at all, and would disagree with what pip installed)
        if self.extra_index_urls or self.find_links:
            args += ["--index-strategy", "unsafe-best-match"]
        return args

    def with_find_links(self, links: Sequence[str | os.PathLike[str]]) -> IndexSettings:
        extra = tuple(str(Path(p).resolve()) if "://" not in str(p) else str(p) for p in links)
        return IndexSettings(
            self.index_url, self.extra_index_urls, self.find_links + extra, self.no_index
        )


def _config_files() -> list[Path]:
    """pip's configuration files, lowest precedence first (pip's documented order)."""
    if os.environ.get("PIP_CONFIG_FILE") == os.devnull:
        return []
    dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")
    files = [Path(d) / "pip" / "pip.conf" for d in reversed(dirs) if d]
    files.append(Path("/etc/pip.conf"))
    home = Path.home()
    files.append(home / ".pip" / "pip.conf")
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    files.append(Path(config_home) / "pip" / "pip.conf")
    files.append(Path(sys.prefix) / "pip.conf")
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    return files


def _split(value: str) -> tuple[str, ...]:
    return tuple(v for v in re.split(r"\s+", value.strip()) if v)


def index_settings() -> IndexSettings:
    """Index settings from pip's configuration files and ``PIP_*`` variables."""
    values: dict[str, str] = {}
    for path in _config_files():
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                values.update({k.replace("_", "-"): v for k, v in parser.items(section)})
    for key in ("index-url", "extra-index-url", "find-links", "no-index"):
        env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if env:
            values[key] = env
    no_index = values.get("no-index", "").strip().lower() in ("1", "true", "yes", "on")
    return IndexSettings(
        index_url=values.get("index-url") or None,
        extra_index_urls=_split(values.get("extra-index-url", "")),
        find_links=_split(values.get("find-links", "")),
        no_index=no_index,
    )


def uv_binary() -> str:
    """The ``uv`` executable (the PyPI package ``uv``, or one on PATH)."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise LockError(
        "uv, the resolver that locks promoted scripts, is not installed",
        hint="pip install uv (it is a dependency of jupyter-qsecure)",
    )


def uv_version(uv: str) -> str:
    done = subprocess.run([uv, "--version"], capture_output=True, text=True, check=False)
    parts = done.stdout.split()
    return parts[1] if len(parts) > 1 else "unknown"


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def locked_versions(lock_text: str) -> dict[str, str]:
    """``{canonical name: version}`` of the pins in a requirements-style lock."""
    from packaging.utils import canonicalize_name

    out: dict[str, str] = {}
    for line in lock_text.splitlines():
        match = _PIN.match(line)
        if match:
            out[str(canonicalize_name(match.group(1)))] = match.group(2)
    return out


def compile_lock(
    pins: Pins,
    workdir: Path,
    *,
    index: IndexSettings,
    uv: str | None = None,
    timeout: float = 600.0,
) -> str:
    """Run ``uv pip compile --generate-hashes`` on the pins; return the lock's text."""
    uv = uv or uv_binary()
    source = workdir / "requirements.in"
    source.write_text("\n".join(pins.requirements()) + "\n", encoding="utf-8")
    output = workdir / LOCK_NAME
    command = [
        uv,
        "pip",
        "compile",
        str(source),
        "--output-file",
        str(output),
        "--generate-hashes",
        "--no-header",
        "--no-config",
        "--quiet",
        "--python",
        pins.executable,
        *index.uv_arguments(),
    ]
    if pins.excluded:
        excludes = workdir / "excludes.txt"
        excludes.write_text("\n".join(pins.excluded) + "\n", encoding="utf-8")
        command += ["--excludes", str(excludes)]
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", NO_COLOR="1")
    try:
        done = subprocess.run(
            command,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LockError(
            f"uv did not lock the pins within {timeout:.0f} s",
            hint="check the package index is reachable (pip config list)",
        ) from None
    if done.returncode != 0:
        raise LockError(
            "uv could not lock the pins: " + _uv_reason(done.stderr),
            hint=_hint(done.stderr, pins),
        )
    text = output.read_text(encoding="utf-8")
    for path in (source, output, workdir / "excludes.txt"):
        path.unlink(missing_ok=True)
    return text


def lock_pins(pins: Pins, workdir: Path, *, index: IndexSettings, uv: str | None = None) -> str:
    """:func:`compile_lock`, then check the lock agrees with the pins exactly."""
    text = compile_lock(pins, workdir, index=index, uv=uv)
    locked = locked_versions(text)
    for name, version in sorted(pins.distributions.items()):
        if name not in locked:
            raise LockError(
                f"the lock has no {name} (the kernel's environment has {name}=={version})",
                hint="report this: the resolver and the environment disagree",
            )
        if locked[name] != version:
            raise LockError(
                f"the resolver locked {name}=={locked[name]}, but the kernel's environment "
                f"has {version}",
                hint="repair the kernel's environment (`pip check`), then promote again",
            )
    extra = sorted(set(locked) - set(pins.distributions))
    if extra:
        raise LockError(
            f"the resolver added {', '.join(extra)}, which the kernel's environment does not "
            "have: the script would run with other code than the notebook did",
            hint="install them in the kernel's environment (or repair it: `pip check`), then "
            "run the notebook and promote it again",
        )
    if "--hash=sha256:" not in text:
        raise LockError("the resolver wrote a lock without hashes", hint="update uv")
    return text


def _uv_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(lines)
    return (text[:600] + "...") if len(text) > 600 else text or "no message"


def _hint(stderr: str, pins: Pins) -> str:
    if "jupyter-qsecure" in stderr and ("not found" in stderr or "no version" in stderr):
        return (
            "jupyter-qsecure must be installable from an index or a folder of wheels: build "
            "its wheel (`uv build --wheel` in its source tree) and pass --find-links DIR"
        )
    if pins.editable:
        return (
            f"{', '.join(pins.editable)} are installed from local paths: publish their wheels "
            "to your index, or pass --find-links DIR with their wheels"
        )
    return "check the package index settings (`pip config list`) and that it is reachable"
