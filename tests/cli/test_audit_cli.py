"""``jupyter qsecure audit`` end to end: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from jupyter_qsecure.cli.main import build_parser, main
from jupyter_qsecure.testing.cli import run_qsecure


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it through `jupyter qsecure`."""
    return run_qsecure(*args, env=env)


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "audit" in subcommands
    for argv in (["--help"], *([name, "--help"] for name in subcommands)):
        with pytest.raises(SystemExit) as exited:
            main(argv)  # argparse %-formats help texts: a stray % would raise here
        assert exited.value.code == 0, argv
    assert "%qsubmit" in capsys.readouterr().out
    for name, sub in subcommands.items():
        assert sub.format_help().strip(), name
        actions = getattr(sub, "_subparsers", None)
        if actions:
            for action_name, action in actions._group_actions[0].choices.items():
                assert action.description or action.format_help(), (name, action_name)
                with pytest.raises(SystemExit) as exited:
                    main([name, action_name, "--help"])
                assert exited.value.code == 0
    assert "verify" in capsys.readouterr().out


def test_note_show_verify_prove_export_round_trip(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert run("audit", "note", "rotated", "the", "transit", "key", env=cli_env).returncode == 0
    assert run("audit", "note", "second", "--actor", "ops:alice", env=cli_env).returncode == 0
    shown = run("audit", "show", "--json", "--actor", "ops:alice", env=cli_env)
    assert [e["body"]["text"] for e in json.loads(shown.stdout)] == ["second"]
    table = run("audit", "show", "--last", "5", env=cli_env).stdout
    assert "rotated the transit key" in table and "KIND" in table
    verified = run("audit", "verify", env=cli_env)
    assert verified.returncode == 0 and "ledger intact: 2 entries" in verified.stdout
    proof_file, keys_file = tmp_path / "proof.json", tmp_path / "keys.json"
    assert run("audit", "prove", "1", "-o", str(proof_file), env=cli_env).returncode == 0
    assert run("audit", "keys", "-o", str(keys_file), env=cli_env).returncode == 0
    checked = run("audit", "check-proof", str(proof_file), "--keys", str(keys_file), env=cli_env)
    assert checked.returncode == 0 and "proof valid: entry 1" in checked.stdout
    proof = json.loads(proof_file.read_text())
    proof["entry"] = proof["entry"].replace("second", "altered")
    proof_file.write_text(json.dumps(proof))
    bad = run("audit", "check-proof", str(proof_file), "--keys", str(keys_file), env=cli_env)
    assert bad.returncode == 1 and "proof INVALID" in bad.stderr
    exported = run("audit", "export", env=cli_env).stdout.splitlines()
    assert [json.loads(line)["index"] for line in exported] == [0, 1]
    assert all(len(json.loads(line)["leaf_hash"]) == 64 for line in exported)


def test_tampering_gives_exit_1_naming_the_first_bad_entry(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    for i in range(5):
        assert main(["audit", "note", f"entry {i}"]) == 0
    assert main(["audit", "checkpoint"]) == 0
    conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    conn.execute(
        "UPDATE qsecure_entries SET entry = replace(entry, 'entry 3', 'entry X') WHERE idx = 3"
    )
    conn.close()
    result = run("audit", "verify", env=cli_env)
    assert result.returncode == 1
    assert "entry 3" in result.stderr and "edited" in result.stderr
    assert "Traceback" not in result.stderr
    as_json = json.loads(run("audit", "verify", "--json", env=cli_env).stdout)
    assert as_json["ok"] is False and as_json["problems"][0]["index"] == 3


def test_unknown_key_hint(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert main(["audit", "note", "x"]) == 0
    assert main(["audit", "checkpoint"]) == 0
    (tmp_path / "data" / "keys" / "ledger-keyring.json").unlink()
    result = run("audit", "verify", env=cli_env)
    assert result.returncode == 1 and "unknown key" in result.stderr and "--keys" in result.stderr


def test_verify_progress_bar(cli_env: dict[str, str]) -> None:
    assert main(["audit", "note", "x"]) == 0
    result = run("audit", "verify", "--progress", env=cli_env)
    assert result.returncode == 0 and "verifying" in result.stderr


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("garbage", "is not a readable SQLite database"),
        ("foreign", "is a SQLite database but not a jupyter-qsecure ledger"),
        ("missing", "no ledger at"),
    ],
)
def test_bad_databases_exit_2_with_a_fix(
    cli_env: dict[str, str], tmp_path: Path, setup: str, message: str
) -> None:
    path = tmp_path / "other.db"
    if setup == "garbage":
        path.write_bytes(os.urandom(4096))
    elif setup == "foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE customers (id INTEGER)")
        conn.commit()
        conn.close()
    for action in ("verify", "show", "note"):
        extra = ["hello"] if action == "note" else []
        result = run("audit", action, *extra, "--ledger", f"sqlite:///{path}", env=cli_env)
        if setup == "missing" and action == "note":
            assert result.returncode == 0  # writing creates the ledger
            continue
        assert result.returncode == 2, (action, result.stderr)
        assert message in result.stderr and "hint:" in result.stderr
        assert "Traceback" not in result.stderr


def test_unreachable_postgres_exits_2_without_password(cli_env: dict[str, str]) -> None:
    from jupyter_qsecure.testing.ports import free_loopback_port

    password = "pw-" + os.urandom(8).hex()
    url = f"postgresql://qsecure:{password}@127.0.0.1:{free_loopback_port()}/ledger"
    result = run("audit", "verify", "--ledger", url, env=cli_env)
    assert result.returncode == 2, result.stderr
    assert "127.0.0.1" in result.stderr and password not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_unreadable_key_file_exits_2(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert main(["audit", "note", "x"]) == 0
    key = tmp_path / "data" / "keys" / "ledger-ed25519.pem"
    key.chmod(0o644)
    result = run("audit", "note", "y", env=cli_env)
    assert result.returncode == 2 and "chmod 600" in result.stderr
    key.unlink()
    key.mkdir()
    result = run("audit", "checkpoint", env=cli_env)
    assert result.returncode == 2 and "not a regular file" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_time_filter_is_a_usage_error(cli_env: dict[str, str]) -> None:
    assert main(["audit", "note", "x"]) == 0
    result = run("audit", "show", "--since", "yesterday-ish", env=cli_env)
    assert result.returncode == 2 and "ISO 8601" in result.stderr


def test_config_lists_every_setting_and_hides_the_token(cli_env: dict[str, str]) -> None:
    token = "hvs." + os.urandom(12).hex()
    result = run(
        "config", "--json", env={**cli_env, "VAULT_TOKEN": token, "QSECURE_ENVIRONMENT": "test"}
    )
    assert result.returncode == 0 and token not in result.stdout
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["vault_token"]["value"] == "(set)"
    assert rows["environment"]["value"] == "test"  # environment overrides config files
    assert all(row["help"] for row in rows.values())
    assert {
        "ledger_url",
        "vault_addr",
        "environment",
        "policy_file",
        "save_mode",
        "secrets",
    } <= set(rows)


def test_config_files_are_read_and_environment_wins(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "jupyter_qsecure_config.json").write_text(
        json.dumps({"QSecure": {"save_mode": "warn", "checkpoint_every_entries": 7}})
    )
    rows = {r["name"]: r["value"] for r in json.loads(run("config", "--json", env=cli_env).stdout)}
    assert rows["save_mode"] == "warn" and rows["checkpoint_every_entries"] == 7
    overridden = run("config", "--json", env={**cli_env, "QSECURE_SAVE_MODE": "redact"})
    assert {r["name"]: r["value"] for r in json.loads(overridden.stdout)}["save_mode"] == "redact"
    (config_dir / "jupyter_qsecure_config.py").write_text("c.QSecure.save_mode = (\n")
    broken = run("config", env=cli_env)
    assert broken.returncode == 2 and "jupyter_qsecure_config.py" in broken.stderr
