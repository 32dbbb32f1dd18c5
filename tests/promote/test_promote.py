"""``jupyter qsecure promote`` and ``verify-promotion`` end to end (embedded default).

Real reviewers' keys and ledger (``promote_helpers.Team``), the real scanner, the
real resolver (uv) against this machine's pip indexes plus a wheel of this package.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
import tomllib
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from promote_helpers import Team, edit
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.jobs.manifest import JOB_PREDICATE_TYPE, verify_envelope
from jupyter_qsecure.ledger import KeyRing
from jupyter_qsecure.promote.digest import load_notebook, notebook_digest
from jupyter_qsecure.runtime import Runtime
from jupyter_qsecure.testing.circuits import ghz

ROOT = Path(__file__).resolve().parents[2]

CELLS = [
    ("markdown", "# Bell state\nPromoted as a script."),
    ("code", "%matplotlib inline\nfrom qiskit import QuantumCircuit\nqc = QuantumCircuit(2)"),
    ("code", "qc.h(0)\nqc.cx(0, 1)\nqc.measure_all()"),
    ("code", "r = %qsubmit qc --shots 500 --seed 11\nprint('COUNTS', sorted(r.counts.items()))"),
    ("code", "!ls -l", ["skip-promote"]),
]


def write(path: Path, cells: list[Any] = CELLS, **metadata: Any) -> Path:
    made = []
    for cell in cells:
        kind, source, *tags = cell
        meta = {"tags": tags[0]} if tags else {}
        made.append(
            new_markdown_cell(source, metadata=meta)
            if kind == "markdown"
            else new_code_cell(source, metadata=meta)
        )
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    meta.update(metadata)
    nbformat.write(new_notebook(cells=made, metadata=meta), path)
    return path


def promoted(
    team: Team, who: Any, nb: Path, out: Path, wheelhouse: Path, *extra: str
) -> tuple[int, str, str]:
    return team.run(
        who, "promote", str(nb), "-o", str(out), "--find-links", str(wheelhouse), *extra
    )


def assert_nothing_written(out: Path, team: Team) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if ".promoting-" in p.name]
    assert team.ledger_entries("promotion.created") == []


# ---- the happy path and one character ---------------------------------------------------------
def test_approve_promote_verify_then_one_character_is_refused_naming_the_cell(
    team: Team, tmp_path: Path, wheelhouse: Path
) -> None:
    alice = team.person("alice")
    nb = write(tmp_path / "bell.ipynb")
    assert team.run(alice, "review", "approve", str(nb))[0] == 0

    out = tmp_path / "prod"
    code, stdout, err = promoted(team, alice, nb, out, wheelhouse)
    assert code == 0, err
    assert "promoted" in stdout and "approved by alice" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "approvals.json",
        "bell.py",
        "promotion.intoto.json",
        "requirements.lock",
    ]
    script = (out / "bell.py").read_text(encoding="utf-8")
    assert "get_ipython" not in script and "!ls" not in script
    assert "_qsecure.submit(qc, shots=500, seed=11)" in script
    assert "cell 5: tagged skip-promote, left out" in script
    assert "# dropped %matplotlib inline" in script
    compile(script, "bell.py", "exec")
    # PEP 723: every import and its requirements pinned with ==, as installed
    from importlib.metadata import version

    assert f'#     "qiskit=={version("qiskit")}",' in script
    assert f'#     "qiskit-aer=={version("qiskit-aer")}",' in script
    assert '"jupyter-qsecure==' in script
    for absent in ("ipython", "ipykernel", "jupyter-server", "jupyterlab"):
        assert f'"{absent}==' not in script  # the runtime needs no IPython
    lock = (out / "requirements.lock").read_text(encoding="utf-8")
    assert f"qiskit=={version('qiskit')} \\\n    --hash=sha256:" in lock
    assert "\nipython==" not in lock and "\nipykernel==" not in lock

    digest = notebook_digest(load_notebook(nb))
    (entry,) = team.ledger_entries("promotion.created")
    assert entry["digest"] == digest and entry["approvers"] == ["alice"]
    assert entry["files"]["bell.py"] == _sha256(out / "bell.py")
    code, stdout, err = team.run(alice, "verify-promotion", str(out))
    assert code == 0, err
    assert "OK" in stdout and "approved for dev by alice" in stdout

    # one character in one cell: refused, naming the cell; nothing written
    edit(nb, lambda d: d["cells"][2].update(source="qc.h(1)\nqc.cx(0, 1)\nqc.measure_all()"))
    again = tmp_path / "again"
    code, stdout, err = promoted(team, alice, nb, again, wheelhouse)
    assert code == 1 and stdout == ""
    assert "changed since its approval by alice: cell 3 changed" in err
    assert "review approve" in err  # the hint
    assert not again.exists()
    assert len(team.ledger_entries("promotion.created")) == 1

    # re-approved: promoted
    assert team.run(alice, "review", "approve", str(nb))[0] == 0
    code, _, err = promoted(team, alice, nb, again, wheelhouse)
    assert code == 0, err
    assert "qc.h(1)" in (again / "bell.py").read_text(encoding="utf-8")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_person_rule_counts_in_promotion(team: Team, tmp_path: Path, wheelhouse: Path) -> None:
    alice, bob, carol = team.person("alice"), team.person("bob"), team.person("carol")
    nb = write(tmp_path / "t.ipynb")
    team.save_through_gate(nb, "alice")
    assert team.run(bob, "review", "approve", str(nb), "--environment", "test")[0] == 0
    out = tmp_path / "test-out"
    code, _, err = promoted(team, bob, nb, out, wheelhouse, "--environment", "test")
    assert code == 1 and "not approved for test: 1 of 2 required approval(s)" in err
    assert not out.exists()
    assert team.run(carol, "review", "approve", str(nb), "--environment", "test")[0] == 0
    keys = tmp_path / "all-keys.json"  # bob trusts carol's reviewer key only when told
    ring = KeyRing()
    for who in (bob, carol):
        for key in KeyRing.load(Path(team.keys_of(who))):
            ring.add(key)
    ring.save(keys)
    args = ("--environment", "test", "--keys", str(keys))
    code, _, err = promoted(team, bob, nb, out, wheelhouse, *args)
    assert code == 0, err
    code, stdout, err = team.run(alice, "verify-promotion", str(out))
    assert code == 2 and "no trusted public keys" in err and "--keys" in err  # alice has none
    ring = KeyRing.load(keys)
    for key in KeyRing.load(Path(team.keys_of(bob))):  # bob's promotion key too
        ring.add(key)
    ring.save(keys)
    code, stdout, err = team.run(alice, "verify-promotion", str(out), "--keys", str(keys))
    assert code == 0, err
    assert "approved for test by bob, carol" in stdout


# ---- tampering ------------------------------------------------------------------------------
def _flip(text: str, at: int) -> str:
    return text[:at] + ("1" if text[at] != "1" else "2") + text[at + 1 :]


def test_verify_promotion_names_what_changed(team: Team, tmp_path: Path, wheelhouse: Path) -> None:
    alice = team.person("alice")
    nb = write(tmp_path / "v.ipynb")
    assert team.run(alice, "review", "approve", str(nb))[0] == 0
    good = tmp_path / "good"
    assert promoted(team, alice, nb, good, wheelhouse)[0] == 0

    def script(d: Path) -> None:
        p = d / "v.py"
        p.write_text(p.read_text().replace("seed=11", "seed=12"))

    def lock(d: Path) -> None:
        p = d / "requirements.lock"
        text = p.read_text()
        p.write_text(_flip(text, text.index("--hash=sha256:") + len("--hash=sha256:")))

    def envelope(d: Path) -> None:
        p = d / "promotion.intoto.json"
        data = json.loads(p.read_text())
        statement = json.loads(base64.b64decode(data["payload"]))
        statement["predicate"]["buildDefinition"]["externalParameters"]["environment"] = "prod"
        data["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        p.write_text(json.dumps(data))

    def signature(d: Path) -> None:
        p = d / "promotion.intoto.json"
        data = json.loads(p.read_text())
        sig = base64.b64decode(data["signatures"][0]["sig"])
        data["signatures"][0]["sig"] = base64.b64encode(bytes([sig[0] ^ 1]) + sig[1:]).decode()
        p.write_text(json.dumps(data))

    def approvals(d: Path) -> None:
        p = d / "approvals.json"
        p.write_text(p.read_text() + " ")

    def added(d: Path) -> None:
        (d / "helper.py").write_text("print('hi')\n")

    def removed(d: Path) -> None:
        (d / "requirements.lock").unlink()

    cases = {
        script: "v.py changed: its sha256 is",
        lock: "requirements.lock changed: its sha256 is",
        envelope: "promotion.intoto.json does not verify",
        signature: "promotion.intoto.json does not verify",
        approvals: "approvals.json changed: its sha256 is",
        added: "helper.py is not part of the signed promotion",
        removed: "requirements.lock is missing",
    }
    for change, expected in cases.items():
        copy = tmp_path / f"copy-{change.__name__}"
        shutil.copytree(good, copy)
        change(copy)
        code, stdout, err = team.run(alice, "verify-promotion", str(copy))
        assert (code, stdout) == (1, ""), change.__name__
        assert expected in err, (change.__name__, err)
    assert team.run(alice, "verify-promotion", str(good))[0] == 0


# ---- refusals ---------------------------------------------------------------------------------
def fake_aws_key() -> str:
    return "AKIA" + "".join(random.choices(string.ascii_uppercase + string.digits, k=16))


REFUSED = {
    "unknown magic": (
        [("code", "x = 1"), ("code", "%time y = x + 1")],
        1,
        "cell 2, line 1: uses the magic %time, which cannot be translated faithfully",
    ),
    "shell escape": (
        [("code", "import os"), ("code", "x = 1\nfiles = !ls /tmp")],
        1,
        "cell 2, line 2: runs a shell command (!cmd)",
    ),
    "cell magic": (
        [("code", "%%bash\necho hi")],
        1,
        "cell 1, line 1: uses the magic %%bash",
    ),
    "get_ipython": (
        [("code", "ip = get_ipython()")],
        1,
        "cell 1, line 1: uses get_ipython()",
    ),
    "kernel token": (
        [("code", "from jupyter_qsecure import secrets as s"), ("code", "x = 1\nt = s.token()")],
        1,
        "cell 2: uses secrets.token(), the kernel's own token",
    ),
    "kernel token imported": (
        [("code", "x = 1"), ("code", "from jupyter_qsecure.secrets import get, token")],
        1,
        "cell 2: uses secrets.token(), the kernel's own token",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_untranslatable_cells_are_refused_nothing_written(
    case: str, team: Team, tmp_path: Path, wheelhouse: Path
) -> None:
    cells, code_expected, message = REFUSED[case]
    alice = team.person("alice")
    nb = write(tmp_path / "n.ipynb", cells)
    assert team.run(alice, "review", "approve", str(nb))[0] == 0
    out = tmp_path / "out"
    code, stdout, err = promoted(team, alice, nb, out, wheelhouse)
    assert (code, stdout) == (code_expected, "")
    assert message in err and "hint:" in err
    assert_nothing_written(out, team)


def test_a_secret_in_an_output_is_refused_naming_the_cell(
    team: Team, tmp_path: Path, wheelhouse: Path
) -> None:
    alice = team.person("alice")
    secret = fake_aws_key()
    nb = write(tmp_path / "s.ipynb", [("code", "x = 1"), ("code", "print(x)")])
    assert team.run(alice, "review", "approve", str(nb))[0] == 0

    def leak(d: dict[str, Any]) -> None:  # outputs are not in the digest: still approved
        d["cells"][1]["outputs"] = [new_output("stream", name="stdout", text=f"key={secret}\n")]

    edit(nb, leak)
    out = tmp_path / "out"
    code, stdout, err = promoted(team, alice, nb, out, wheelhouse)
    assert (code, stdout) == (1, "")
    assert "cell 2 (outputs[0], line 1) holds a secret (AWS Access Key)" in err
    assert secret not in err and secret[4:] not in err
    assert_nothing_written(out, team)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no kernelspec", "has no kernelspec (metadata.kernelspec.name)"),
        ("not json", "is not a notebook: not valid UTF-8 JSON"),
        ("nbformat 3", "is nbformat 3; only nbformat 4 notebooks can be reviewed"),
        ("schema", "does not match the nbformat 4 schema"),
        ("R kernel", "runs on the 'ir' kernel (r); only Python notebooks can be promoted"),
        ("not approved", "is not approved for dev: 0 of 1 required approval(s)"),
    ],
)
def test_bad_notebooks_are_refused_clearly_nothing_written(
    case: str, expected: str, team: Team, tmp_path: Path, wheelhouse: Path
) -> None:
    nb = tmp_path / "b.ipynb"
    write(nb)
    if case == "no kernelspec":
        edit(nb, lambda d: d["metadata"].pop("kernelspec"))
    elif case == "not json":
        nb.write_text("{not json", encoding="utf-8")
    elif case == "nbformat 3":
        edit(nb, lambda d: d.update(nbformat=3))
    elif case == "schema":
        edit(nb, lambda d: d["cells"][1].update(execution_count="three"))
    elif case == "R kernel":
        edit(
            nb,
            lambda d: d["metadata"].update(
                kernelspec={"name": "ir", "display_name": "R", "language": "R"}
            ),
        )
    out = tmp_path / "out"
    code, stdout, err = promoted(team, team.person("alice"), nb, out, wheelhouse)
    assert code in (1, 2) and stdout == ""
    assert expected in err, err
    assert "hint:" in err
    assert_nothing_written(out, team)


def test_an_existing_output_folder_is_not_overwritten(
    team: Team, tmp_path: Path, wheelhouse: Path
) -> None:
    alice = team.person("alice")
    nb = write(tmp_path / "e.ipynb")
    assert team.run(alice, "review", "approve", str(nb))[0] == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = promoted(team, alice, nb, out, wheelhouse)
    assert code == 1 and "exists and is not an empty folder" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# ---- standard formats ---------------------------------------------------------------------------
def test_envelopes_verify_with_securesystemslib(
    team: Team, tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The promotion envelope and a job manifest of the runtime verify with an independent
    DSSE implementation: the formats are standard DSSE and in-toto."""
    alice = team.person("alice")
    nb = write(tmp_path / "d.ipynb")
    assert team.run(alice, "review", "approve", str(nb))[0] == 0
    out = tmp_path / "out"
    assert promoted(team, alice, nb, out, wheelhouse)[0] == 0

    envelope = json.loads((out / "promotion.intoto.json").read_text())
    keys = KeyRing.load(Path(team.keys_of(alice)))
    statement = _sslib_verify(envelope, keys)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    names = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert names["d.py"] == _sha256(out / "d.py")
    assert names["requirements.lock"] == _sha256(out / "requirements.lock")
    definition = statement["predicate"]["buildDefinition"]
    params = definition["externalParameters"]
    assert params["notebook"]["digest"]["sha256"] == notebook_digest(load_notebook(nb))
    assert [a["approver"] for a in params["approvals"]] == ["alice"]
    assert len(params["policy"]["sha256"]) == 64 and params["tools"]["uv"]
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"] and run["metadata"]["startedOn"]
    assert run["byproducts"][0]["annotations"]["user"]

    # a job manifest signed by the runtime, in this process, with the local key
    monkeypatch.setenv("QSECURE_DATA_DIR", str(tmp_path / "prod-data"))
    runtime = Runtime(QSecure())
    try:
        result = runtime.submit(ghz(2), shots=64, seed=3)
        manifest = result.record["manifest"]
        job_keys = KeyRing.load(runtime.settings.resolved_keyring_file())
    finally:
        runtime.close()
    job = _sslib_verify(manifest, job_keys)
    assert job["predicateType"] == JOB_PREDICATE_TYPE
    assert job == verify_envelope(manifest, job_keys)


def _sslib_verify(envelope: dict[str, Any], keys: KeyRing) -> dict[str, Any]:
    (signature,) = envelope["signatures"]
    key_id, _, version = signature["keyid"].rpartition("@v")
    record = keys.get(key_id, int(version))
    assert record is not None and record.algorithm == "ed25519"
    key = SSlibKey(
        signature["keyid"],
        "ed25519",
        "ed25519",
        {"public": base64.b64decode(record.public_key).hex()},
    )
    independent = SslibEnvelope.from_dict(json.loads(json.dumps(envelope)))
    assert independent.payload_type == "application/vnd.in-toto+json"
    assert set(independent.verify([key], 1)) == {signature["keyid"]}
    return dict(json.loads(independent.payload))


# ---- nbconvert ---------------------------------------------------------------------------------
def nbconvert_to_qsecure(
    nb: Path, wheelhouse: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``jupyter nbconvert --to qsecure NB`` in NB's folder, as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter",
            "nbconvert",
            "--to",
            "qsecure",
            str(nb),
            f"--QSecureExporter.find_links={wheelhouse}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=nb.parent,
        timeout=300,
        check=False,
    )


def test_nbconvert_exporter_is_the_same_promotion(
    team: Team, tmp_path: Path, wheelhouse: Path
) -> None:
    alice = team.person("alice")
    nb = write(tmp_path / "x.ipynb")
    assert team.run(alice, "review", "approve", str(nb))[0] == 0
    # the entry point exactly as pyproject.toml declares it (the editable install of the
    # shared environment may predate it): a dist-info on the path that declares it
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    target = declared["nbconvert.exporters"]["qsecure"]
    dist = tmp_path / "ep" / "qsecure_exporter_under_test-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: qsecure-exporter-under-test\nVersion: 0\n"
    )
    (dist / "entry_points.txt").write_text(f"[nbconvert.exporters]\nqsecure = {target}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path / "ep"), str(ROOT), env.get("PYTHONPATH", "")]
    )
    env.update(QSECURE_DATA_DIR=str(alice.data), JUPYTERHUB_USER="alice")
    done = nbconvert_to_qsecure(nb, wheelhouse, env)
    assert done.returncode == 0, done.stderr[-3000:]
    script = (tmp_path / "x.py").read_text(encoding="utf-8")
    folder = tmp_path / "x.promotion"
    assert script == (folder / "x.py").read_text(encoding="utf-8")
    assert "_qsecure.submit(qc, shots=500, seed=11)" in script
    code, stdout, err = team.run(alice, "verify-promotion", str(folder))
    assert code == 0, err
    (entry,) = team.ledger_entries("promotion.created")
    assert entry["out_dir"].endswith("x.promotion (nbconvert)")

    # a refusal is an nbconvert error naming the cell, and nothing is written
    edit(nb, lambda d: d["cells"].append(new_code_cell("!rm -rf /tmp/nothing")))
    assert team.run(alice, "review", "approve", str(nb))[0] == 0
    (tmp_path / "x.py").unlink()
    shutil.rmtree(folder)
    done = nbconvert_to_qsecure(nb, wheelhouse, env)
    assert done.returncode != 0
    assert "cell 6, line 1: runs a shell command (!cmd)" in done.stderr
    assert not (tmp_path / "x.py").exists() and not folder.exists()
