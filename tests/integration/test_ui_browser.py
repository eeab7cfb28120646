"""`mlbatch ui` in real Chromium (tests/browser.py): every page renders without console
errors and every link on it resolves, clicking through works, reports show their images,
and a running run's page follows a real run to its end without reloading."""

from __future__ import annotations

import time

import pytest
from browser import chromium, console_errors, page_images, page_links
from selenium.webdriver.support.wait import WebDriverWait
from small_tables import cancer_csv
from test_faults import _only_run, _start, _wait_for
from ui_fixture import MODEL, UiStorage, build_storage
from ui_server import get, ui_process

from mlbatch import runs

pytestmark = pytest.mark.slow  # a browser, `mlbatch ui` processes, one real run


@pytest.fixture(scope="module")
def ui(tmp_path_factory) -> tuple[UiStorage, str]:
    store = build_storage(f"file://{tmp_path_factory.mktemp('ui-browser')}/store")
    with ui_process(store.root) as (url, _):
        yield store, url


def test_every_page_renders_and_every_link_on_it_resolves(ui):
    store, url = ui
    runs_pages = [f"/runs/{run_id}" for run_id in (store.newer, store.running, store.created)]
    compare = f"/compare?run={store.older}&run={store.newer}"
    pages = ["/", *runs_pages, compare, "/models", f"/models/{MODEL}"]
    checked: set[str] = set()
    with chromium() as driver:
        for path in pages:
            driver.get(url + path)
            assert driver.title.endswith("· mlbatch"), (path, driver.title)
            assert driver.find_elements("css selector", "main h1"), path
            errors = console_errors(driver)
            assert not errors, (path, errors)
            links = page_links(driver)
            assert f"{url}/models" in links, path  # the navigation, at least
            for link in set(links) - checked:
                assert link.startswith(url), link  # nothing leaves the app
                reply = get(url, link[len(url) :])
                assert reply.status == 200, (path, link, reply.text[:200])
                checked.add(link)
        for stage in ("explore", "train", "evaluate"):  # a report, and the image it links
            driver.get(f"{url}/runs/{store.newer}/{stage}/files/report.html")
            images, broken = page_images(driver)
            assert images and not broken, (stage, images)
    assert any(link.endswith("/log") for link in checked)
    assert any(link.endswith("/report.html") for link in checked)


def test_clicking_through_runs_a_run_a_comparison_and_the_registry(ui):
    store, url = ui
    with chromium() as driver:
        driver.get(url + "/")
        driver.find_element("link text", store.newer).click()
        assert driver.current_url == f"{url}/runs/{store.newer}"
        rows = driver.find_elements("css selector", "table.stages tbody tr")
        assert [row.get_attribute("id") for row in rows] == [
            "stage-etl", "stage-explore", "stage-features", "stage-train", "stage-evaluate",
        ]  # fmt: skip
        state = driver.find_element("css selector", "#stage-train .state").text
        assert state == "succeeded"
        driver.find_element("css selector", "#stage-evaluate a[href$='report.html']").click()
        assert driver.title == "evaluate report"
        driver.back()
        driver.find_element("link text", MODEL).click()
        assert driver.current_url == f"{url}/models/{MODEL}"
        assert "production" in driver.find_element("id", "version-2").text

        driver.get(url + "/")
        for run_id in (store.older, store.newer):
            driver.find_element("css selector", f"input[value='{run_id}']").click()
        driver.find_element("css selector", "form button[type=submit]").click()
        WebDriverWait(driver, 30).until(lambda d: "/compare?" in d.current_url)
        # The list is newest first, so is the comparison.
        assert driver.current_url == f"{url}/compare?run={store.newer}&run={store.older}"
        diff = driver.find_element("css selector", "table.spec-diff tbody").text
        assert diff.split() == ["train.time_budget_s", "60", "20"]


def test_a_running_run_s_page_follows_it_to_the_end_in_place(tmp_path, file_storage):
    """A real quick run (breast cancer table, one LightGBM trial): the page, loaded once
    while the run goes on, shows its stages change and stops asking once it ended."""
    controller = _start(file_storage, cancer_csv(tmp_path))
    layout = _only_run(file_storage)
    _wait_for(lambda: runs.controller_alive(runs.read_state(layout), stale_after_s=45),
              what="the controller to drive the run")  # fmt: skip
    with ui_process(file_storage) as (url, _), chromium() as driver:
        driver.get(f"{url}/runs/{layout.run_id}")
        assert snapshot(driver)["live"] == "true"
        driver.execute_script("window.loadedOnce = true;")  # gone if the page reloaded
        seen = []  # every distinct stage table the page showed
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            now = snapshot(driver)
            if not seen or seen[-1] != now["table"]:
                seen.append(now["table"])
            if now["live"] == "false":
                break
            time.sleep(0.5)
        assert driver.execute_script("return window.loadedOnce === true;")
        assert now["state"] == "succeeded", now
        assert len(seen) >= 3, seen  # stages started and ended while the page was open
        evaluate = driver.find_element("id", "stage-evaluate")
        assert "succeeded" in evaluate.text and evaluate.find_elements("link text", "report")
        asked = driver.execute_script(POLLS)
        time.sleep(5)  # two and a half poll intervals
        assert driver.execute_script(POLLS) == asked  # it stopped asking
        assert asked >= 2 and not console_errors(driver)
    controller.communicate(timeout=600)
    assert controller.returncode == 0


# What the live part shows, read in one go: the poll may replace it between two reads.
SNAPSHOT = """
const section = document.querySelector("section.run");
return {live: section.dataset.live, state: section.dataset.state,
        table: section.querySelector("table.stages tbody").innerText};
"""
POLLS = """
return performance.getEntriesByType("resource").filter(e => e.name.endsWith("/live")).length;
"""


def snapshot(driver) -> dict:
    return driver.execute_script(SNAPSHOT)
