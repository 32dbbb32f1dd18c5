"""Real processes on one SQLite ledger: SIGKILL mid-append, and concurrent writers."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter

from jupyter_qsecure.config import QSecure
from jupyter_qsecure.ledger import Ledger

WRITER = """
import sys, threading
from jupyter_qsecure.config import load_settings
from jupyter_qsecure.ledger import Ledger
url, tag, count, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
settings = load_settings()
settings.checkpoint_every_entries = 50
ledger = Ledger.open(url, settings=settings)
def work(t):
    for i in range(count):
        entry = ledger.append("note", {"text": f"{tag}-{t}-{i}"})
        if t == 0:
            print(entry.index, flush=True)
workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
[w.start() for w in workers]
[w.join() for w in workers]
ledger.close()
"""


def _writer(
    url: str, tag: str, count: int, threads: int, env: dict[str, str]
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, tag, str(count), str(threads)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_mid_append_leaves_a_verifiable_ledger_and_appends_resume(
    settings: QSecure, sqlite_url: str, child_env: dict[str, str]
) -> None:
    with _writer(sqlite_url, "killed", 100_000, 4, child_env) as process:  # closes its pipes
        assert process.stdout is not None
        for _ in range(300):  # wait until it is well into appending (synchronised on output)
            assert process.stdout.readline(), process.stderr.read() if process.stderr else ""
        process.send_signal(signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    with Ledger.open(sqlite_url, settings=settings) as ledger:
        report = ledger.verify()
        assert report.ok, report.problems
        size = ledger.size()
        assert size >= 300
        entries = ledger.entries()
        assert [e.index for e in entries] == list(range(size))  # no partial or missing entry
        assert ledger.append("note", {"text": "after the crash"}).index == size
        ledger.checkpoint()
        assert ledger.verify().ok


def test_four_processes_appending_concurrently(
    settings: QSecure, sqlite_url: str, child_env: dict[str, str]
) -> None:
    Ledger.open(sqlite_url, settings=settings).close()  # create keys once; the race is on appends
    writers = [_writer(sqlite_url, f"p{n}", 150, 2, child_env) for n in range(4)]
    for process in writers:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
    with Ledger.open(sqlite_url, settings=settings) as ledger:
        texts = Counter(e.body["text"] for e in ledger.entries())
        expected = {f"p{n}-{t}-{i}" for n in range(4) for t in range(2) for i in range(150)}
        assert set(texts) == expected and set(texts.values()) == {1}
        assert ledger.size() == 1200
        ledger.checkpoint()
        report = ledger.verify()
        assert report.ok, report.problems
        assert report.checkpoints >= 2  # checkpoints signed by several processes interleave
