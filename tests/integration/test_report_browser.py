"""Reports in a real browser (Debian's headless Chromium, tests/browser.py), and the
flights demo's explore advice and reports on the full 327k rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from browser import check_page
from pipeline_checks import REPO, mlbatch

from mlbatch import runs, storage
from mlbatch.manifest import load_manifest, output_uri
from mlbatch.spec import load_spec

PNG_1X1 = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.mark.slow  # two browser starts
def test_the_checker_sees_broken_images_and_console_errors(tmp_path: Path):
    good = tmp_path / "good.html"
    good.write_text(f'<!DOCTYPE html><title>ok</title><img src="{PNG_1X1}">')
    page = check_page(good)
    assert page.title == "ok" and len(page.images) == 1
    assert not page.broken_images and not page.console_errors
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><title>bad</title><img src="missing.png">'
        "<img src=\"data:image/png;base64,bm90IGEgcG5n\"><script>console.error('boom')</script>"
    )
    page = check_page(bad)
    assert len(page.broken_images) == 2
    assert any("boom" in message for message in page.console_errors)


@pytest.fixture(scope="module")
def flights_run(tmp_path_factory) -> runs.RunLayout:
    """etl, explore and features of the flights demo on every row, stage by stage."""
    root = tmp_path_factory.mktemp("flights")
    storage_uri = storage.resolve_uri(str(root / "store"))
    assert mlbatch("demo-data", "--storage", storage_uri).returncode == 0
    spec = load_spec(REPO / "examples/flights.yaml")
    layout = runs.RunLayout(storage_uri, runs.new_run_id())
    runs.write_spec(layout, spec.model_dump(mode="json"))
    for stage in ("etl", "explore", "features"):
        result = subprocess.run(
            [sys.executable, "-m", f"mlbatch_jobs.{stage}", "--run", layout.uri,
             "--attempt", "1-aaaa"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    return layout


def read_output(layout: runs.RunLayout, stage: str, path: str) -> bytes:
    manifest, _ = load_manifest(layout, stage)
    return storage.read_bytes(output_uri(layout, manifest, path))


@pytest.mark.slow
def test_flights_advice_drops_leaks_and_constants_and_flags_identifiers(flights_run):
    advice = json.loads(read_output(flights_run, "explore", "advice.json"))
    columns = advice["columns"]

    def checks(column: str) -> list[str]:
        return [reason["check"] for reason in columns[column]["reasons"]]

    assert columns["arr_delay"]["action"] == "drop" and checks("arr_delay")[0] == "target_lineage"
    assert columns["dep_delay"]["action"] == "drop" and "single_column_power" in checks("dep_delay")
    assert columns["year"]["action"] == "drop" and checks("year") == ["constant"]
    for identifier in ("flight", "tailnum"):
        assert columns[identifier]["action"] == "flag" and "high_cardinality" in checks(identifier)
    assert columns["flight"]["treat_as"] == "categorical"  # integers that are a code
    for entry in columns.values():
        assert all(reason["message"] for reason in entry["reasons"])  # a why for each

    schema = json.loads(read_output(flights_run, "features", "feature_schema.json"))
    sources = {source for feature in schema["features"] for source in feature["sources"]}
    assert not {"arr_delay", "dep_delay", "year"} & sources
    assert "explore advice: constant" in schema["excluded"]["year"]
    assert schema["treatments"]["tailnum"]["encoding"] == "target"
    assert schema["treatments"]["flight"]["encoding"] == "target"


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["explore", "features"])
def test_flights_reports_render_in_chromium(flights_run, stage, tmp_path: Path):
    manifest, _ = load_manifest(flights_run, stage)
    report = storage.local_path(output_uri(flights_run, manifest, "report.html"))
    page = check_page(report, screenshot=tmp_path / f"{stage}.png")
    assert page.title.startswith(f"flights-delay: {stage}")
    assert not page.broken_images, page.broken_images
    assert not page.console_errors, page.console_errors
    if stage == "explore":
        assert len(page.images) >= 10  # every plot the report lists
        assert all(image["width"] > 100 for image in page.images)
