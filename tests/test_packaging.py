"""What the package imports, a fresh ``pip install`` installs.

Every third-party module imported by ``jupyter_qsecure`` (but its ``testing`` helpers)
and by the server extension must come from a distribution that ``pyproject.toml``'s
``dependencies`` or its user-facing extras (``jobs``, ``postgres``, ``vault``: not
``test`` and ``dev``) require, directly or through what they require (read from the
installed metadata); code that needs an extra imports it lazily, which
``tests/cli/test_light_install.py`` checks in an install without extras. A module that is merely installed in the development environment
would work here and fail on a user's machine (``review status --diff`` did, for nbdime).
"""

from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "jupyter_qsecure", ROOT / "server_ext" / "jupyter_qsecure_server"]
FIRST_PARTY = {"jupyter_qsecure", "jupyter_qsecure_server", "__future__"}


def declared() -> tuple[set[str], set[str]]:
    """(direct dependency names, everything they require as installed), canonical."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra, listed in project.get("optional-dependencies", {}).items():
        if extra not in ("test", "dev"):
            requirements += listed
    names = {str(canonicalize_name(Requirement(r).name)) for r in requirements}
    direct = names - {"jupyter-qsecure"}  # ``all`` names the other extras
    environment = {**default_environment(), "extra": ""}
    closure: set[str] = set()
    queue = list(direct)
    while queue:
        name = queue.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:  # e.g. tomli, only below Python 3.11
            continue
        for raw in requires:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                queue.append(str(canonicalize_name(requirement.name)))
    return direct, closure


def imported() -> dict[str, Path]:
    """Top-level modules imported anywhere in the sources -> the first file doing so."""
    found: dict[str, Path] = {}
    for base in SOURCES:
        for path in sorted(base.rglob("*.py")):
            if "testing" in path.relative_to(base).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        found.setdefault(alias.name.split(".")[0], path)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.setdefault(node.module.split(".")[0], path)
    return found


def test_every_imported_distribution_is_a_declared_dependency() -> None:
    direct, closure = declared()
    providers = metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    undeclared = []
    for module, path in sorted(imported().items()):
        if module in stdlib or module in FIRST_PARTY:
            continue
        dists = {str(canonicalize_name(d)) for d in providers.get(module, [])}
        if dists & closure or str(canonicalize_name(module)) in direct:
            continue
        where = path.relative_to(ROOT)
        undeclared.append(f"{module} ({', '.join(sorted(dists)) or 'not installed'}; {where})")
    assert not undeclared, "imported but not required by pyproject.toml: " + "; ".join(undeclared)
