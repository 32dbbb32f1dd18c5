"""New notebooks start the qsecure kernel, from every entry point, and it has its own icon.

JupyterLab (File > New > Notebook, the launcher, the kernel picker) and Notebook 7
preselect what ``GET /api/kernelspecs`` names as ``default``; a plain ``jupyter lab``
gets it from the extension (``jupyter qsecure lab`` passes it on its command line, see
tests/cli/test_vault_cli.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from server_helpers import extension_config

from jupyter_qsecure.kernel.logo import png
from jupyter_qsecure_server.defaults import make_qsecure_kernel_default


@pytest.fixture
def explicit_default() -> str | None:
    return None


@pytest.fixture
def installed() -> bool:
    return True


@pytest.fixture
def jp_server_config(
    qsecure_data_dir: Path,
    jp_environ: Any,
    request: pytest.FixtureRequest,
    explicit_default: str | None,
    installed: bool,
) -> dict[str, Any]:
    if installed:
        request.getfixturevalue("qsecure_kernel")  # before the server starts
    config = extension_config(data_dir=str(qsecure_data_dir))
    if explicit_default:
        config["MappingKernelManager"] = {"default_kernel_name": explicit_default}
    return config


async def kernelspecs(jp_fetch: Any) -> dict[str, Any]:
    return dict(json.loads((await jp_fetch("api", "kernelspecs")).body))


async def test_qsecure_is_the_default_kernel_with_its_own_icon(jp_fetch: Any) -> None:
    specs = await kernelspecs(jp_fetch)
    assert specs["default"] == "qsecure"
    resources = specs["kernelspecs"]["qsecure"]["resources"]
    assert {"logo-32x32", "logo-64x64", "logo-svg"} <= set(resources)
    ours = await jp_fetch("kernelspecs", "qsecure", "logo-64x64.png")
    assert ours.body == png(64) and ours.body.startswith(b"\x89PNG")
    python = specs["kernelspecs"]["python3"]["resources"]
    if "logo-64x64" in python:  # ipykernel's Python logo: not ours
        theirs = await jp_fetch("kernelspecs", "python3", "logo-64x64.png")
        assert theirs.body != ours.body
    svg = (await jp_fetch("kernelspecs", "qsecure", "logo-svg.svg")).body.decode()
    assert svg.startswith("<svg") and "#5b21b6" in svg


@pytest.mark.parametrize("explicit_default", ["python3"])
async def test_a_default_the_operator_chose_is_kept(jp_fetch: Any, explicit_default: str) -> None:
    assert (await kernelspecs(jp_fetch))["default"] == "python3"


@pytest.mark.parametrize("installed", [False])
async def test_without_the_kernelspec_the_default_stays_and_says_why(
    jp_fetch: Any, jp_serverapp: Any, installed: bool
) -> None:
    specs = await kernelspecs(jp_fetch)
    assert "qsecure" not in specs["kernelspecs"] and specs["default"] == "python3"

    class Log:
        said: list[str] = []

        def warning(self, message: str, *args: Any) -> None:
            self.said.append(message % args)

        info = warning

    log = Log()
    assert make_qsecure_kernel_default(jp_serverapp, log) is False
    assert "`jupyter qsecure install-kernel` installs it" in log.said[0]
