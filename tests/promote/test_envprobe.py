"""The kernel-environment probe follows jupyter-qsecure's runtime extras where installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_qsecure.promote._envprobe import probe


def _dist(site: Path, name: str, *requires: str) -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "top_level.txt").write_text(name.replace("-", "_") + "\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _dist(
        tmp_path,
        "rootpkg",
        "base-dep",
        'jobs-dep; extra == "jobs"',
        'pg-dep; extra == "postgres"',
        'test-dep; extra == "test"',
    )
    _dist(tmp_path, "base-dep")
    _dist(tmp_path, "jobs-dep")  # pg-dep is not installed: an install without [postgres]
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _request(**extra: object) -> dict[str, object]:
    return {"modules": ["rootpkg"], "roots": {"rootpkg": "rootpkg"}, **extra}


def test_extras_are_followed_where_installed(site: Path) -> None:
    answer = probe(_request(extras={"rootpkg": ["jobs", "postgres"]}))
    assert set(answer["distributions"]) == {"rootpkg", "base-dep", "jobs-dep"}
    assert answer["missing"] == []
    assert "pg-dep" in answer["excluded"]
    assert "test-dep" not in answer["distributions"]


def test_without_extras_only_the_base_requirements(site: Path) -> None:
    answer = probe(_request())
    assert set(answer["distributions"]) == {"rootpkg", "base-dep"}


def test_a_missing_base_requirement_is_still_missing(site: Path) -> None:
    for info in site.glob("base_dep-*.dist-info"):
        for child in info.iterdir():
            child.unlink()
        info.rmdir()
    answer = probe(_request(extras={"rootpkg": ["jobs"]}))
    assert answer["missing"] == [["base-dep", "rootpkg"]]
