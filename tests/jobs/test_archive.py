"""The job archive: one SQLite file, owner-only, read back by replay (also old JSON files)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from jupyter_qsecure.jobs.archive import ARCHIVE_FILE, JobArchive, read_archived
from jupyter_qsecure.jobs.replay import ReplayError, load_archive


def test_records_round_trip_and_the_file_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "jobs"
    archive = JobArchive(directory)
    record = {"job_id": "a" * 32, "status": "completed", "payload": {"shots": 5}}
    archive.put("a" * 32, record)
    archive.put("b" * 32, {**record, "job_id": "b" * 32})
    archive.put("a" * 32, {**record, "status": "replaced"})
    assert archive.get("a" * 32) == {**record, "status": "replaced"}
    assert read_archived(directory, "b" * 32) == {**record, "job_id": "b" * 32}
    assert read_archived(directory, "c" * 32) is None
    assert archive.get("c" * 32) is None
    assert stat.S_IMODE((directory / ARCHIVE_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    archive.close()


def test_replay_reads_old_json_records_and_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / ("d" * 32 + ".json")).write_text(json.dumps({"job_id": "d" * 32}))
    assert load_archive(tmp_path, "d" * 32) == {"job_id": "d" * 32}
    with pytest.raises(ReplayError, match=f"no archived job {'e' * 32}"):
        load_archive(tmp_path, "e" * 32)
    with pytest.raises(ReplayError, match="is not a job id"):
        load_archive(tmp_path, "../etc/passwd")
    (tmp_path / ARCHIVE_FILE).write_bytes(b"not a database at all" * 100)
    with pytest.raises(ReplayError, match="unreadable"):
        load_archive(tmp_path, "f" * 32)
