"""The /open/ page on a phone: it reflows (no sideways scrolling at 390 or 320 CSS px,
WCAG 1.4.10) and axe-core finds no WCAG 2.2 A/AA violation, in Japanese and English.

Headless Chromium and axe-core as in the portal's browser tests (skipped, saying why, when
they are missing); screenshots go to tests/.cache/screenshots for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.i18n import Lang
from opendata.datasets import DATASETS
from opendata.landing import render_index
from tests.portal import browser

pytestmark = pytest.mark.skipif(
    browser.skip_reason() is not None, reason=browser.skip_reason() or ""
)

META = {
    "release_id": "2026-12-01T090000Z",
    "k": 10,
    "privacy_loss": {"epsilon_spent": 0.5},
    "files": [
        {"dataset": d.id, "file": d.filename, "rows": 123456, "schema": f"{d.id}.schema.json"}
        for d in DATASETS
    ],
}


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    d = browser.new_driver()
    try:
        yield d
    finally:
        d.quit()


@pytest.mark.parametrize(("lang", "files"), [("ja", "ファイル: "), ("en", "Files: ")])
def test_the_open_page_reflows_on_a_phone(
    driver: Any, tmp_path: Path, lang: Lang, files: str
) -> None:
    from selenium.webdriver.common.by import By

    page = tmp_path / "index.html"
    page.write_text(render_index(META, lang), encoding="utf-8")
    for width, height in ((390, 844), (320, 700)):
        driver.set_window_size(width, height)
        driver.get(page.as_uri())
        assert not browser.overflows(driver), f"/open/ ({lang}) scrolls sideways at {width} px"
        cells = driver.find_elements(By.CSS_SELECTOR, "td[data-label]")
        assert len(cells) == 2 * len(DATASETS)
        first = cells[0]
        # Each dataset is a block; the cell names its column (the header row is hidden).
        label = driver.execute_script(
            "return getComputedStyle(arguments[0], '::before').content", first
        )
        assert files.strip().rstrip(":") in label, label
        assert first.rect["width"] > width * 0.7
        browser.screenshot(driver, f"open-{lang}")
    assert browser.axe_violations(driver, browser.axe_source()) == []
    driver.set_window_size(*browser.DESKTOP)
    driver.get(page.as_uri())
    assert driver.find_element(By.CSS_SELECTOR, "thead").is_displayed()
    assert not browser.overflows(driver)
    browser.screenshot(driver, f"open-{lang}")
