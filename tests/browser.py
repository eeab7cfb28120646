"""Check that an HTML report renders in a real browser: Debian's headless Chromium,
driven by selenium through Debian's chromedriver (never a downloaded browser or driver).

    from browser import check_page
    page = check_page(path)          # skips, or fails under CI=true, without Chromium
    assert page.images and not page.broken_images and not page.console_errors

    with chromium() as driver:       # the same browser, to drive: `mlbatch ui`'s tests
        driver.get(url); page_links(driver); console_errors(driver)

Reports of every stage use it (explore, features, evaluate).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Headless as root in a sandboxed machine with no outside network: no sandbox, no GPU,
# and none of the background connections (updates, sync, Google hosts) it would try.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions",
)  # fmt: skip
PAGE_LOAD_TIMEOUT_S = 60

IMAGES_SCRIPT = """
return Array.from(document.images).map(img => ({
    src: img.currentSrc.slice(0, 80), complete: img.complete,
    width: img.naturalWidth, height: img.naturalHeight,
}));
"""


@dataclass
class PageCheck:
    """What the browser saw: every <img>, those that did not load, and console errors."""

    title: str
    images: list[dict] = field(default_factory=list)
    broken_images: list[dict] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def require_chromium() -> None:
    """Skip without Debian's chromium and chromedriver; under CI=true, fail instead."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip, the dev extra)")
    if missing:
        install = "apt-get install chromium chromium-driver"
        message = f"browser check needs {', '.join(missing)}: {install}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true, so this fails instead of skipping")
        pytest.skip(message)


@contextmanager
def chromium(*, window: str = "1280,2000") -> Iterator[WebDriver]:
    """Headless Chromium driven by selenium, with its browser console logged; skips (or
    fails under CI=true) without it. Quits and removes its profile afterwards."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="mlbatch-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--window-size={window}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: WebDriver) -> list[str]:
    """Errors the page logged since the last call (failed loads, script errors)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] in ("SEVERE", "ERROR")]  # fmt: skip


def page_links(driver: WebDriver) -> list[str]:
    """Every link on the page, as the absolute URL the browser resolved it to."""
    return driver.execute_script("return Array.from(document.links).map(a => a.href);")


def page_images(driver: WebDriver) -> tuple[list[dict], list[dict]]:
    """Every <img> on the page, and those that did not load."""
    images = driver.execute_script(IMAGES_SCRIPT)
    return images, [i for i in images if not i["complete"] or i["width"] == 0]


def check_page(path: Path, *, screenshot: Path | None = None) -> PageCheck:
    """Open a local HTML file in headless Chromium; report its images and console errors."""
    with chromium() as driver:
        driver.get(path.resolve().as_uri())  # returns once the load event has fired
        images, broken = page_images(driver)
        check = PageCheck(title=driver.title, images=images, broken_images=broken,
                          console_errors=console_errors(driver))  # fmt: skip
        if screenshot is not None:
            driver.save_screenshot(str(screenshot))
            check.screenshot = screenshot
        return check
