"""``jupyter qsecure install-kernel`` writes a kernelspec Jupyter finds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from jupyter_qsecure.cli.main import main
from jupyter_qsecure.kernel.install import KernelInstallError, install_kernelspec


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "user-data"))
    # The user data dir first, even in a venv where `jupyter qsecure lab` may already have
    # installed the kernel into sys.prefix (jupyter_core prefers the env path there).
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")
    monkeypatch.setenv("QSECURE_DATA_DIR", str(tmp_path / "qsecure-data"))
    monkeypatch.delenv("JUPYTER_PATH", raising=False)


def check_spec(folder: Path, name: str = "qsecure") -> dict:
    spec = json.loads((folder / "kernel.json").read_text())
    if name == "qsecure":
        assert spec["display_name"] == "Python 3 (qsecure)"
    argv = spec["argv"]
    assert argv[0] == sys.executable
    assert argv[argv.index("-m") + 1] == "ipykernel_launcher"
    assert argv[argv.index("-f") + 1] == "{connection_file}"
    assert argv[argv.index("--ext") + 1] == "jupyter_qsecure.kernel"
    assert spec["language"] == "python"
    assert spec["metadata"]["qsecure"] is True
    assert "env" not in spec
    assert (folder / "logo-32x32.png").is_file() and (folder / "logo-64x64.png").is_file()
    return spec


def test_cli_prefix_install_is_discovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "env"
    assert main(["install-kernel", "--prefix", str(prefix)]) == 0
    folder = prefix / "share" / "jupyter" / "kernels" / "qsecure"
    check_spec(folder)
    captured = capsys.readouterr()
    assert str(folder) in captured.out
    assert "not on the Jupyter path" in captured.err  # the prefix is not on JUPYTER_PATH

    # Discovery as `jupyter kernelspec list` does it: by explicit folder and by JUPYTER_PATH.
    specs = KernelSpecManager(kernel_dirs=[str(folder.parent)]).get_all_specs()
    assert specs["qsecure"]["spec"]["display_name"] == "Python 3 (qsecure)"
    assert Path(specs["qsecure"]["resource_dir"]) == folder
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    assert Path(KernelSpecManager().find_kernel_specs()["qsecure"]) == folder

    # Installing again replaces the kernelspec, and no longer warns: it is on the path.
    assert main(["install-kernel", "--prefix", str(prefix)]) == 0
    assert "not on the Jupyter path" not in capsys.readouterr().err


def test_jupyter_kernelspec_list_finds_it(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    env = dict(os.environ, JUPYTER_PATH=str(prefix / "share" / "jupyter"))
    subprocess.run(
        [sys.executable, "-m", "jupyter_qsecure.cli.main", "install-kernel", "--prefix", prefix],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter_client.kernelspecapp", "list", "--json"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    specs = json.loads(listing)["kernelspecs"]
    assert specs["qsecure"]["spec"]["display_name"] == "Python 3 (qsecure)"
    assert specs["qsecure"]["spec"]["metadata"]["qsecure"] is True


def test_user_sys_prefix_and_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install-kernel", "--user"]) == 0
    check_spec(tmp_path / "user-data" / "kernels" / "qsecure")
    assert Path(KernelSpecManager().find_kernel_specs()["qsecure"]).parent == (
        tmp_path / "user-data" / "kernels"
    )

    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    assert main(["install-kernel", "--sys-prefix", "--name", "qsecure-test"]) == 0
    spec = check_spec(
        tmp_path / "venv" / "share" / "jupyter" / "kernels" / "qsecure-test", "qsecure-test"
    )
    assert spec["display_name"] == "Python 3 (qsecure: qsecure-test)"


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["install-kernel", "--user", "--prefix", str(tmp_path)])
    assert info.value.code == 2
    assert main(["install-kernel", "--prefix", str(tmp_path), "--name", "bad name!"]) == 2
    assert "invalid kernel name" in capsys.readouterr().err
    with pytest.raises(KernelInstallError):
        install_kernelspec(user=True, prefix=tmp_path)


def test_unwritable_target_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A prefix that is a file: a real OSError from the file system.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert main(["install-kernel", "--prefix", str(blocker)]) == 2
    assert "cannot write the kernelspec" in capsys.readouterr().err

    # Permission denied (the system-wide default without rights); simulated, since the
    # tests may run as root.
    import jupyter_client.kernelspec as kernelspec

    def denied(self: object, source_dir: str, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", "/usr/local/share/jupyter/kernels")

    monkeypatch.setattr(kernelspec.KernelSpecManager, "install_kernel_spec", denied)
    assert main(["install-kernel", "--prefix", str(tmp_path / "system")]) == 2
    err = capsys.readouterr().err
    assert "permission denied" in err and "--user" in err and "--sys-prefix" in err
