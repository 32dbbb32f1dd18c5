"""SLOW (minutes): a promoted script in a fresh virtual environment, without IPython.

The notebook runs in a real qsecure kernel through the real server's broker; it is
approved and promoted; a new virtual environment is made from the promotion's lock
alone (``uv venv`` + ``uv pip sync --require-hashes``, this machine's indexes and a wheel
of this package); there the script submits the same circuit through
``jupyter_qsecure.runtime`` and must get the notebook's counts for the same seed, and its
job must be in the ledger with a signed manifest. Installing qiskit and Aer takes a
while (less from a warm uv cache): this is the one such test (marker ``slow``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jobs_helpers import run_cell
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from server_helpers import start

from jupyter_qsecure.cli.main import main
from jupyter_qsecure.jobs.archive import read_archived
from jupyter_qsecure.jobs.manifest import JOB_PREDICATE_TYPE, verify_envelope
from jupyter_qsecure.kernel.install import install_kernelspec
from jupyter_qsecure.ledger import EntryFilter, KeyRing
from jupyter_qsecure.promote.digest import load_notebook, notebook_digest
from jupyter_qsecure.promote.lock import index_settings, uv_binary
from jupyter_qsecure.testing.wheels import build_wheel
from jupyter_qsecure.testing.wheels import deploy_env as _clean_env

pytestmark = pytest.mark.slow

CELLS = [
    "from qiskit import QuantumCircuit\n"
    "qc = QuantumCircuit(3)\nqc.h(0)\nqc.cx(0, 1)\nqc.rx(0.3, 2)\nqc.measure_all()",
    "r = %qsubmit qc --shots 2000 --seed 1234\nprint('COUNTS', json.dumps(r.counts, sort_keys=True))",
]


@pytest.fixture
def jp_server_config(jobs_server_config: dict[str, Any]) -> dict[str, Any]:
    return jobs_server_config


def _run(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=1200, check=False, **kwargs
    )


async def test_promoted_script_runs_in_a_fresh_venv_with_the_notebooks_counts(
    jp_fetch: Any,
    jp_ws_fetch: Any,
    jp_serverapp: Any,
    jp_environ: Any,
    qsecure_data_dir: Path,
    policy_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 1. the notebook, run in a qsecure kernel through the server's broker
    install_kernelspec(user=True)
    _, client = await start(jp_fetch, jp_ws_fetch, "qsecure", "legacy")
    out = await run_cell(client, "import json")
    for source in CELLS:
        out += await run_cell(client, source)
    notebook_counts = json.loads(out.split("COUNTS ", 1)[1].splitlines()[0])
    assert sum(notebook_counts.values()) == 2000

    nb = tmp_path / "bell.ipynb"
    cells = [new_markdown_cell("# A promoted Bell-ish state"), new_code_cell("import json")]
    cells += [new_code_cell(source) for source in CELLS]
    nbformat.write(
        new_notebook(
            cells=cells,
            metadata={
                "kernelspec": {
                    "name": "qsecure",
                    "display_name": "Python 3 (qsecure)",
                    "language": "python",
                }
            },
        ),
        nb,
    )

    # 2. approved and promoted with the same data dir, ledger and policy as the server
    monkeypatch.setenv("QSECURE_DATA_DIR", str(qsecure_data_dir))
    monkeypatch.setenv("QSECURE_POLICY_FILE", str(policy_file))
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels)
    assert main(["review", "approve", str(nb)]) == 0
    promoted = tmp_path / "promoted"
    code = main(["promote", str(nb), "-o", str(promoted), "--find-links", str(wheels)])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert main(["verify-promotion", str(promoted)]) == 0  # what a deploy pipeline checks

    # 3. a fresh environment from the lock alone, with hashes; no IPython in it
    uv = uv_binary()
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    made = _run(uv, "venv", "--no-config", "--python", base_python, str(venv), env=_clean_env())
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    indexes = index_settings().with_find_links([wheels]).uv_arguments()
    synced = _run(
        uv,
        "pip",
        "sync",
        "--no-config",
        "--require-hashes",
        "--python",
        python,
        *indexes,
        str(promoted / "requirements.lock"),
        env=_clean_env(),
    )
    assert synced.returncode == 0, synced.stderr[-3000:]
    no_ipython = _run(python, "-c", "import IPython", env=_clean_env(), cwd=tmp_path)
    assert no_ipython.returncode != 0 and "No module named 'IPython'" in no_ipython.stderr
    where = _run(
        python,
        "-c",
        "import jupyter_qsecure; print(jupyter_qsecure.__file__)",
        env=_clean_env(),
        cwd=tmp_path,
    )
    assert str(venv) in where.stdout  # the wheel, not this checkout

    # 4. the script, with a production data dir (its own local key), the same ledger
    prod = tmp_path / "prod-data"
    ran = _run(
        python,
        str(promoted / "bell.py"),
        cwd=tmp_path,
        env=_clean_env(
            QSECURE_DATA_DIR=str(prod),
            QSECURE_LEDGER=f"sqlite://{qsecure_data_dir / 'ledger.db'}",
            QSECURE_POLICY_FILE=str(policy_file),
            JUPYTER_CONFIG_DIR=str(tmp_path / "no-config"),
        ),
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    script_counts = json.loads(ran.stdout.split("COUNTS ", 1)[1].splitlines()[0])
    assert script_counts == notebook_counts

    # 5. its job is in the ledger, with a manifest signed by the script's key
    ledger = jp_serverapp.web_app.settings["qsecure_ledger"]
    tag = "promotion:" + notebook_digest(load_notebook(nb))[:16]
    submitted = [
        e
        for e in ledger.entries(EntryFilter(kinds=["job.submitted"]))
        if tag in e.body["request"]["tags"]
    ]
    assert len(submitted) == 1
    job_id = submitted[0].body["job_id"]
    kinds = [e.kind for e in ledger.entries() if e.correlation_id == job_id]
    assert kinds == ["job.decided", "job.submitted", "job.completed"]
    (completed,) = [
        e.body
        for e in ledger.entries(EntryFilter(kinds=["job.completed"]))
        if e.body["job_id"] == job_id
    ]
    assert completed["status"] == "completed"
    archived = read_archived(prod / "jobs", job_id)
    assert archived is not None
    keys = KeyRing.load(prod / "keys" / "ledger-keyring.json")
    statement = verify_envelope(archived["manifest"], keys, predicate_type=JOB_PREDICATE_TYPE)
    assert statement["predicate"]["identity"]["user"] == submitted[0].body["identity"]["user"]
    assert statement["predicate"]["options"]["seed"] == 1234
    assert ledger.verify().ok
