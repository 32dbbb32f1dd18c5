"""Config files read by server, kernel and CLI alike, and noticed when they change."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_qsecure.cli.main import main
from jupyter_qsecure.config import ConfigWatcher, load_jupyter_config, restart_needed


def test_watcher_sees_a_new_file_a_change_and_a_removal(tmp_path: Path) -> None:
    high, low = tmp_path / "high", tmp_path / "low"
    high.mkdir(), low.mkdir()
    watcher = ConfigWatcher([str(high), str(low)])
    assert watcher.poll() is None and watcher.current.secrets == {}

    (low / "jupyter_qsecure_config.py").write_text("c.QSecure.secrets = {'a': 'secret/x#y'}\n")
    before, now = watcher.poll() or (None, None)
    assert before is not None and now is not None
    assert before.secrets == {} and now.secrets == {"a": "secret/x#y"}
    assert watcher.poll() is None  # once per change

    # a higher-precedence directory wins, and jupyter_server_config wins in one directory
    (high / "jupyter_qsecure_config.json").write_text('{"QSecure": {"secrets": {"b": "s/p#f"}}}')
    assert (watcher.poll() or (None, None))[1].secrets == {"b": "s/p#f"}  # type: ignore[union-attr]
    (high / "jupyter_server_config.py").write_text("c.QSecure.save_mode = 'warn'\n")
    before, now = watcher.poll() or (None, None)
    assert now is not None and before is not None
    assert restart_needed(before, now) == ["save_mode"]

    (high / "jupyter_qsecure_config.json").unlink()
    assert (watcher.poll() or (None, None))[1].secrets == {"a": "secret/x#y"}  # type: ignore[union-attr]
    # an edit in place (same inode, the directory unchanged)
    with open(low / "jupyter_qsecure_config.py", "w") as handle:
        handle.write("c.QSecure.secrets = {'c': 'secret/x#z'}\n")
    assert (watcher.poll() or (None, None))[1].secrets == {"c": "secret/x#z"}  # type: ignore[union-attr]
    assert load_jupyter_config(dirs=[str(high), str(low)]).QSecure.save_mode == "warn"


def test_config_command_says_what_applies_without_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path))
    (tmp_path / "jupyter_qsecure_config.py").write_text("c.QSecure.secrets = {'a': 's/p#f'}\n")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "c.QSecure.secrets = {'a': 's/p#f'}" in out
    assert str(tmp_path) in out and "applies a change to secrets at the next execution" in out
