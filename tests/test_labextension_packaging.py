"""The lab extension is found where the Python package says, and shipped where JupyterLab looks.

Reads the repository's files (no build needed): ``package.json`` (the npm package and
its ``jupyterlab.outputDir``), ``pyproject.toml`` (the wheel's shared-data), ``install.json``
and ``jupyter_qsecure._jupyter_labextension_paths`` (``jupyter labextension develop``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jupyter_qsecure

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _package() -> dict[str, Any]:
    return json.loads((ROOT / "package.json").read_text())


def test_labextension_paths_point_at_the_build_output() -> None:
    package = _package()
    (entry,) = jupyter_qsecure._jupyter_labextension_paths()
    assert entry["dest"] == package["name"]
    src = Path(jupyter_qsecure.__file__).parent / entry["src"]
    assert src.resolve() == (ROOT / package["jupyterlab"]["outputDir"]).resolve()


def test_wheel_ships_the_extension_as_shared_data() -> None:
    package = _package()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shared = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    target = f"share/jupyter/labextensions/{package['name']}"
    assert shared[package["jupyterlab"]["outputDir"]] == target
    assert shared["install.json"] == f"{target}/install.json"
    install = json.loads((ROOT / "install.json").read_text())
    assert install["packageManager"] == "python"
    assert install["packageName"] == pyproject["project"]["name"]


def test_versions_and_license_agree() -> None:
    package = _package()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert package["version"] == jupyter_qsecure.__version__
    assert package["license"] == pyproject["project"]["license"] == "BSD-3-Clause"
    assert "BSD 3-Clause License" in (ROOT / "LICENSE").read_text()
    assert (
        "Framework :: Jupyter :: JupyterLab :: Extensions :: Prebuilt"
        in (pyproject["project"]["classifiers"])
    )
