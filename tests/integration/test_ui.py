"""`mlbatch ui` over a storage laid out as runs leave it (tests/ui_fixture.py), through a
real server on loopback: pages, the facts they show (the CLI's, by the same functions),
reports and logs streamed from storage, 404s, traversal refused, read-only."""

from __future__ import annotations

import html
import json
import re

import pytest
from typer.testing import CliRunner
from ui_fixture import MODEL, PNG_1X1, UiStorage, build_storage
from ui_server import get, serving, ui_process

from mlbatch.controller.cli import app


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> UiStorage:
    folder = tmp_path_factory.mktemp("ui")
    (folder / "secret.txt").write_text("outside the storage")  # what traversal would reach
    return build_storage(f"file://{folder}/store")


@pytest.fixture(scope="module")
def base(store) -> str:
    with serving(store.root) as url:
        yield url


def cli_json(*args: str):
    result = CliRunner().invoke(app, [*args, "-o", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def rows_of(html: str, table: str, *, key: int = 0) -> dict[str, str]:
    """A table's body rows, cells joined by ` | ` with tags stripped, by one cell's text."""
    body = html.split(f'<table class="{table}">', 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S):
        cells = [
            re.sub(r"<[^>]+>|\s+", " ", c).strip()
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
        ]
        rows[cells[key]] = " | ".join(cells)
    return rows


def test_runs_are_listed_newest_first_with_state_duration_and_headline_metric(store, base):
    page = get(base, "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    order = [store.created, store.running, store.newer, store.older]
    positions = [page.text.index(f'href="/runs/{run_id}"') for run_id in order]
    assert positions == sorted(positions)
    rows = rows_of(page.text, "runs", key=1)
    assert "succeeded" in rows[store.newer] and "roc_auc 0.8400" in rows[store.newer]
    assert "1m 40s" in rows[store.newer]  # run.json's created to finished
    assert "running" in rows[store.running] and "created" in rows[store.created]


def test_the_json_endpoints_are_the_cli_documents(store, base):
    listed = get(base, "/api/runs").json()
    by_cli = cli_json("runs", "--storage", store.root)
    assert [r["run_id"] for r in listed] == [r["run_id"] for r in by_cli]
    for ours, theirs in zip(listed, by_cli, strict=True):
        if ours["run_id"] != store.running:  # the running run's wall time is still growing
            assert ours == theirs
    status = get(base, f"/api/runs/{store.newer}").json()
    assert status.pop("live") is False
    assert status == cli_json("status", store.newer, "--storage", store.root)
    assert get(base, f"/api/runs/{store.running}").json()["live"] is True
    assert get(base, "/api/models").json() == cli_json("models", "--storage", store.root)
    shown = cli_json("models", "show", MODEL, "--storage", store.root)
    assert get(base, f"/api/models/{MODEL}").json() == shown
    assert get(base, "/api/runs/20990101-000000-aaaaaa").json()["error"].startswith("no run")


def test_the_run_page_shows_the_stage_table_with_reports_logs_and_the_cache(store, base):
    page = get(base, f"/runs/{store.newer}").text
    rows = rows_of(page, "stages")
    assert list(rows) == ["etl", "explore", "features", "train", "evaluate"]
    assert f"cached from {store.older}" not in rows["etl"]  # the column says it, linked
    assert f'<a href="/runs/{store.older}">{store.older}</a>' in page
    assert "11.0s | 6.0s | 200 MB" in rows["explore"]  # time, CPU, peak memory
    assert "| report | log |" in rows["explore"] and "| report |" not in rows["features"]
    for stage in ("explore", "train", "evaluate"):
        assert f'href="/runs/{store.newer}/{stage}/files/report.html"' in page
        assert f'href="/runs/{store.newer}/{stage}/attempts/' in page
    assert f'href="/runs/{store.newer}/etl/files/report.html"' not in page  # etl has none
    metrics = rows_of(page, "metrics")
    assert metrics["roc_auc"] == "roc_auc | 0.8400 | 0.8300 – 0.8500"
    assert "roc_auc &gt;= 0.7: 0.8400 passed" in page
    assert f'<a href="/models/{MODEL}">{MODEL}</a> version 2' in page
    assert '"time_budget_s": 60' in html.unescape(page)  # the spec
    assert 'data-live="false"' in page


def test_a_running_run_is_live_with_every_attempt_s_log(store, base):
    page = get(base, f"/runs/{store.running}").text
    assert 'data-live="true"' in page and '<script src="/static/live.js"' in page
    rows = rows_of(page, "stages")
    assert rows["etl"].startswith("etl | succeeded | 2 |")
    assert rows["train"].startswith("train | running | 1 |")
    assert f'href="/runs/{store.running}/etl/attempts/1-0001/log"' in page  # the failed try
    fragment = get(base, f"/runs/{store.running}/live")
    assert fragment.status == 200 and fragment.text.startswith('<section class="run" data-live')
    assert get(base, "/static/live.js").headers["content-type"].endswith("javascript")
    created = get(base, f"/runs/{store.created}").text
    assert "created" in created and 'data-live="false"' in created


def test_reports_and_their_images_are_streamed_with_their_content_type(store, base):
    report = get(base, f"/runs/{store.newer}/explore/files/report.html")
    assert report.status == 200 and report.headers["content-type"] == "text/html; charset=utf-8"
    assert 'src="plots/curve.png"' in report.text  # resolves to the next URL
    image = get(base, f"/runs/{store.newer}/explore/files/plots/curve.png")
    assert image.status == 200 and image.headers["content-type"] == "image/png"
    assert image.body == PNG_1X1 and image.headers["content-length"] == str(len(PNG_1X1))
    board = get(base, f"/runs/{store.newer}/train/files/leaderboard.json")
    assert board.headers["content-type"] == "application/json"
    assert board.json()["best"] == "lightgbm"


def test_logs_are_every_chunk_in_order(store, base):
    log = get(base, f"/runs/{store.running}/etl/attempts/2-0001/log")
    assert log.status == 200 and log.headers["content-type"] == "text/plain; charset=utf-8"
    assert log.text == "etl attempt 2-0001\netl committed\n"
    assert get(base, f"/runs/{store.running}/etl/attempts/1-0001/log").text.endswith("Killed\n")


@pytest.mark.parametrize(
    "path",
    [
        "/runs/20990101-000000-aaaaaa",  # no such run
        "/runs/not-a-run-id",
        "/runs/{newer}/nostage/files/report.html",
        "/runs/{running}/features/files/report.html",  # features has not committed
        "/runs/{newer}/explore/files/notebook.ipynb",  # not an output of that stage
        "/runs/{newer}/train/attempts/9-ffff/log",  # no such attempt
        "/runs/{created}/etl/attempts/1-0000/log",
        "/models/nomodel",
        "/models/Not_A_Name",
    ],
)
def test_what_does_not_exist_is_a_404_page_that_says_so(store, base, path):
    page = get(base, path.format(newer=store.newer, created=store.created, running=store.running))
    assert page.status == 404, page.text
    assert '<p class="error">' in page.text and "Traceback" not in page.text


# An attempt folder is <storage>/runs/<run>/<stage>/attempts/<attempt>/: three levels up is
# the run (spec.json), six the folder holding the storage (secret.txt).
@pytest.mark.parametrize(
    "path",
    [
        "/runs/{newer}/explore/files/../../../spec.json",
        "/runs/{newer}/explore/files/../../../../../../secret.txt",
        "/runs/{newer}/explore/files/..%2F..%2F..%2Fspec.json",
        "/runs/{newer}/explore/files/%2e%2e/%2e%2e/%2e%2e/spec.json",
        "/runs/{newer}/explore/files/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
        "/runs/{newer}/explore/files//etc/passwd",
        "/runs/..%2F..%2Fsecret.txt",
        "/runs/{newer}/explore/attempts/..%2F..%2Ftrain%2Fattempts%2F1-0003/log",
        "/runs/{newer}/explore/attempts/%2e%2e%2f%2e%2e%2ftrain%2fattempts%2f1-0003/log",
        "/static/../app.py",
        "/static/..%2Fapp.py",
        "/static/%2e%2e/templates/base.html",
        "/models/..%2F..%2Fsecret.txt",
    ],
)
def test_paths_that_climb_out_are_refused(store, base, path):
    page = get(base, path.format(newer=store.newer))
    assert page.status in (400, 403, 404), (page.status, page.text[:200])
    leaks = ("outside the storage", "time_budget_s", "train attempt", "root:", "create_app", "{%")
    for leaked in leaks:
        assert leaked not in page.text


def test_two_runs_side_by_side(store, base):
    page = get(base, f"/compare?run={store.older}&run={store.newer}")
    assert page.status == 200
    assert rows_of(page.text, "compare spec-diff") == {
        "train.time_budget_s": "train.time_budget_s | 20 | 60"
    }
    assert rows_of(page.text, "compare metrics")["roc_auc"] == "roc_auc | 0.8100 | 0.8400"
    board = rows_of(page.text, "compare leaderboard")
    assert board["xgboost"] == "xgboost | 0.8000 / 0.7900 ★ | 0.8200 / 0.8100"
    assert board["lightgbm"] == "lightgbm |  | 0.8300 / 0.8200 ★"
    without = get(base, f"/compare?run={store.newer}&run={store.running}").text
    assert f"{store.running} has no committed train stage" in without
    assert get(base, f"/compare?run={store.newer}").status == 400


def test_the_registry_with_versions_aliases_and_their_history(store, base):
    models = rows_of(get(base, "/models").text, "models")
    assert models[MODEL] == f"{MODEL} | 2 | 2 | production → 2"
    page = get(base, f"/models/{MODEL}").text
    versions = rows_of(page, "versions")
    assert list(versions) == ["2", "1"]
    assert f"2 | production | {store.newer} |" in versions["2"]
    assert versions["2"].endswith("xgboost | roc_auc 0.8400")
    history = rows_of(page, "history")
    assert list(history) == ["2", "1"]  # the latest move first
    assert history["2"].startswith("2 | 2 | 1 |") and "better than 0.8100" in history["2"]
    assert history["1"].startswith("1 | 1 | – |")


def test_read_only_and_self_contained(store, base):
    for method in ("POST", "PUT", "DELETE"):
        assert get(base, "/", method=method).status == 405
        assert get(base, f"/runs/{store.newer}", method=method).status == 405
    for path in ("/", f"/runs/{store.newer}", "/models", f"/models/{MODEL}"):
        page = get(base, path)
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert not re.search(r"""(src|href)=["'](https?:)?//""", page.text)  # no CDN


def test_only_the_loopback_names_are_answered(store):
    with serving(store.root, allowed_hosts={"127.0.0.1", "localhost"}) as url:
        assert get(url, "/").status == 200
        assert get(url, "/", headers={"Host": "localhost"}).status == 200
        assert get(url, "/", headers={"Host": "attacker.example:80"}).status == 403


@pytest.mark.slow  # two CLI processes
def test_the_command_binds_loopback_and_warns_otherwise(store):
    with ui_process(store.root) as (url, _):
        assert url.startswith("http://127.0.0.1:")
        assert store.newer in get(url, "/").text
        assert get(url, "/", headers={"Host": "attacker.example"}).status == 403
    with ui_process(store.root, "--host", "0.0.0.0") as (url, process):
        assert get(url.replace("0.0.0.0", "127.0.0.1"), "/").status == 200
        process.terminate()
        assert "warning: listening on 0.0.0.0" in process.communicate(timeout=10)[1]


def test_s3_storage_is_served_like_files(s3_env):
    """The same pages, reports and logs from a real S3 server (SeaweedFS)."""
    store = build_storage(s3_env)
    with serving(s3_env) as url:
        listed = rows_of(get(url, "/").text, "runs", key=1)
        assert list(listed) == [store.created, store.running, store.newer, store.older]
        assert "roc_auc 0.8400" in listed[store.newer]
        rows = rows_of(get(url, f"/runs/{store.newer}").text, "stages")
        assert "11.0s | 6.0s | 200 MB" in rows["explore"]
        image = get(url, f"/runs/{store.newer}/explore/files/plots/curve.png")
        assert image.headers["content-type"] == "image/png" and image.body == PNG_1X1
        log = get(url, f"/runs/{store.running}/etl/attempts/2-0001/log")
        assert log.text == "etl attempt 2-0001\netl committed\n"
        assert "production → 2" in get(url, "/models").text
        traversal = get(url, f"/runs/{store.newer}/explore/files/..%2F..%2F..%2Fspec.json")
        assert traversal.status == 404 and "time_budget_s" not in traversal.text
