"""Production code never imports the test helpers in ``jupyter_qsecure.testing``.

Walks every module of the package (but ``testing/`` itself) and of the server extension
with ``ast``, resolving relative imports, so an import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "jupyter_qsecure": ROOT / "jupyter_qsecure",
    "jupyter_qsecure_server": ROOT / "server_ext" / "jupyter_qsecure_server",
}
TESTING = "jupyter_qsecure.testing"


def _module_name(package: str, base: Path, path: Path) -> str:
    parts = [package, *path.relative_to(base).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, *, is_package: bool) -> set[str]:
    """Absolute names of every module ``source`` (the module ``module``) imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def production_imports_of_testing() -> list[str]:
    found = []
    for package, base in PACKAGES.items():
        for path in sorted(base.rglob("*.py")):
            if package == "jupyter_qsecure" and path.relative_to(base).parts[0] == "testing":
                continue
            module = _module_name(package, base, path)
            names = imported_modules(
                path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py"
            )
            found += [
                f"{path.relative_to(ROOT)} imports {name}"
                for name in sorted(names)
                if name == TESTING or name.startswith(TESTING + ".")
            ]
    return found


def test_production_code_never_imports_the_testing_helpers() -> None:
    assert production_imports_of_testing() == []


def test_the_walk_sees_relative_absolute_and_nested_imports() -> None:
    source = (
        "from ..testing.openbao import find_bao_binary\n"
        "def f():\n    import jupyter_qsecure.testing.ports\n"
        "from .. import testing\n"
    )
    names = imported_modules(source, "jupyter_qsecure.vault.embedded", is_package=False)
    assert "jupyter_qsecure.testing.openbao" in names
    assert "jupyter_qsecure.testing.ports" in names
    assert "jupyter_qsecure.testing" in names
    inside = imported_modules("from .testing import x\n", "jupyter_qsecure", is_package=True)
    assert "jupyter_qsecure.testing" in inside
