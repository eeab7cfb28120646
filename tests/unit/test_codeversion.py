"""The code version follows what a stage's image holds: its sources, the pins, and the
requirements of the one runtime every image shares."""

from __future__ import annotations

import shutil

import pytest

from mlbatch import codeversion
from mlbatch.codeversion import code_version

REPO_FILES = ["constraints.txt", "pyproject.toml"]
STAGES = ["etl", "train"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in REPO_FILES:
        shutil.copy(codeversion.LIBRARY_DIR.parent.parent / name, tmp_path / name)
    monkeypatch.setenv("MLBATCH_CONSTRAINTS", str(tmp_path / "constraints.txt"))
    monkeypatch.delenv(codeversion.ENV_VAR, raising=False)
    code_version.cache_clear()
    yield tmp_path
    code_version.cache_clear()


def _versions() -> dict:
    code_version.cache_clear()
    return {stage: code_version(stage) for stage in [*STAGES, None]}


def test_an_extra_the_images_install_changes_every_version_and_others_none(project):
    before = _versions()
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"jinja2>=3.1"', '"jinja2>=3.2"'))
    assert _versions() == before  # the ui extra: in no image
    pyproject.write_text(pyproject.read_text().replace('"optuna>=3.6"', '"optuna>=4"'))
    after = _versions()
    assert all(after[s] != before[s] for s in before)  # train's, in the shared runtime


def test_pins_change_every_stage_and_tool_settings_none(project):
    before = _versions()
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("line-length = 100", "line-length = 99"))
    assert _versions() == before
    constraints = project / "constraints.txt"
    constraints.write_text(constraints.read_text() + "\n# a comment is a change too\n")
    changed = _versions()
    assert all(changed[s] != before[s] for s in before)


def test_an_image_uses_the_version_it_was_built_with(project, monkeypatch):
    monkeypatch.setenv(codeversion.ENV_VAR, "0123456789ab")
    code_version.cache_clear()
    assert code_version("train") == "0123456789ab"
