"""Headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) and
axe-core for the portal's browser tests.

axe-core (MPL-2.0, https://github.com/dequelabs/axe-core) is not vendored: it is installed
with npm into ``tests/.cache/axe`` (ignored by git) on first use, and used only by tests.
Without chromium, chromedriver, Selenium or axe-core the browser tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("MEBUKU_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MEBUKU_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
AXE_VERSION = "4.14.1"
CACHE = Path(__file__).resolve().parents[1] / ".cache"
AXE_JS = CACHE / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(os.environ.get("MEBUKU_TEST_SCREENSHOTS", str(CACHE / "screenshots")))
PHONE = (390, 844)
DESKTOP = (1280, 900)
# WCAG 2.2 A and AA rules (axe tags), nothing best-practice or AAA.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)"
    if not Path(CHROMEDRIVER).is_file():
        return f"no chromedriver at {CHROMEDRIVER} (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "Selenium is not installed (pip install -e '.[dev]')"
    return None


def axe_source() -> str:
    """axe.min.js, installed with npm into the test cache on first use (skips if it cannot)."""
    if not AXE_JS.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("axe-core is needed and npm is not installed")
        r = subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(CACHE / "axe"),
                f"axe-core@{AXE_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if r.returncode != 0 or not AXE_JS.is_file():
            pytest.skip(f"axe-core could not be installed with npm: {r.stderr.strip()[-300:]}")
    return AXE_JS.read_text("utf-8")


def new_driver() -> Any:
    """A headless Chromium at phone size (Japanese fonts come from fonts-noto-cjk)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--lang=ja-JP",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"intl.accept_languages": "ja-JP,ja"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_window_size(*PHONE)
    driver.set_page_load_timeout(30)
    return driver


def axe_violations(driver: Any, source: str) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.2 A/AA violations on the current page."""
    if not driver.execute_script("return typeof window.axe !== 'undefined'"):
        driver.execute_script(source)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ') + ' ' + n.failureSummary)}))))"
        ".catch(e => done([{id: 'axe-error', help: String(e), nodes: []}]));",
        WCAG_TAGS,
    )
    return list(result)


def screenshot(driver: Any, name: str) -> Path:
    """The whole page at the current width, as PNG, for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    width = driver.get_window_size()["width"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(400, min(int(height) + 140, 4000)))
    driver.execute_async_script(  # let the resized page paint before the picture
        "const done = arguments[0]; requestAnimationFrame(() => setTimeout(done, 150));"
    )
    path = SCREENSHOTS / f"{name}-{width}.png"
    driver.save_screenshot(str(path))
    return path


def overflows(driver: Any) -> bool:
    """True when the page scrolls sideways (content does not reflow)."""
    return bool(
        driver.execute_script(
            "return document.documentElement.scrollWidth > document.documentElement.clientWidth + 1"
        )
    )
