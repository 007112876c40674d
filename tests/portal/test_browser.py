"""The portal in a real browser (headless Chromium via Selenium) against a running API on
a real PostgreSQL: a 78-year-old signs in with a (test) card, sees MyTaku figures change
after an operator submits a ride through the operator API, links and reports a card, gets
a fare with the senior discount and the next buses, switches language and text size.
Every page passes axe-core's WCAG 2.2 A/AA rules (also in high contrast and large text),
reflows at 320 CSS px (200% zoom of a 640 px window), and can be used with the keyboard
alone. Screenshots at phone and desktop widths go to tests/.cache/screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from core.settings import Settings
from tests.api.live import serve
from tests.portal import browser
from tests.portal.conftest import TAXI, Keys, ride_body, yesterday_at

pytestmark = pytest.mark.skipif(
    browser.skip_reason() is not None, reason=browser.skip_reason() or ""
)

CARD = "0B0E0000000B2C01"


@pytest.fixture(scope="module")
def app(portal_settings: Settings) -> FastAPI:
    return create_app(portal_settings)


@pytest.fixture(scope="module")
def base(app: FastAPI) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def axe() -> str:
    return browser.axe_source()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    d = browser.new_driver()
    try:
        yield d
    finally:
        d.quit()


def by_css(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def sign_in(driver: Any, app: FastAPI, base: str, card: str) -> None:
    """The development button: the test card authority signs the page's challenge."""
    app.state.rate_buckets = {}
    driver.delete_all_cookies()
    driver.get(base + "/my/signin")
    name = by_css(driver, "#card-name")
    name.clear()
    name.send_keys(card)
    by_css(driver, "form[action='/my/signin/dev'] button").click()
    wait_url(driver, base + "/my/")


def wait_for(driver: Any, text: str) -> None:
    """Wait until the page (after a form post and redirect) shows ``text``."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: text in d.page_source)


def wait_url(driver: Any, url: str) -> None:
    """Wait until the browser has navigated to ``url``."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: d.current_url == url)


def figure(driver: Any, element_id: str) -> int:
    return int(by_css(driver, f"#{element_id}").text.replace(",", ""))


def check_page(driver: Any, axe: str, name: str) -> None:
    """axe-core finds no WCAG 2.2 A/AA violation; the page reflows at 320 px; screenshots."""
    violations = browser.axe_violations(driver, axe)
    assert violations == [], f"{name}: {violations}"
    size = driver.get_window_size()
    driver.set_window_size(320, 700)
    assert not browser.overflows(driver), f"{name} scrolls sideways at 320 CSS px"
    for width, height in (browser.PHONE, browser.DESKTOP):
        driver.set_window_size(width, height)
        browser.screenshot(driver, name)
    driver.set_window_size(size["width"], size["height"])


@pytest.fixture(scope="module")
def senior(driver: Any, app: FastAPI, base: str, keys: Keys) -> int:
    sign_in(driver, app, base, "browser-senior")
    rid = int(by_css(driver, "#resident-number").text)
    r = httpx.post(
        f"{base}/v1/admin/residents/{rid}/facts",
        json={"kind": "birth_date", "value": "1948-05-01"},
        headers={"X-API-Key": keys.admin},
    )
    assert r.status_code == 201, r.text
    return rid


def test_a_resident_of_78_uses_the_portal(
    driver: Any, app: FastAPI, base: str, keys: Keys, senior: int, axe: str
) -> None:
    driver.get(base + "/my/")
    assert "わたしのマイタク" in driver.title
    check_page(driver, axe, "home")
    left = figure(driver, "left-year")
    # link a card
    driver.get(base + "/my/cards")
    by_css(driver, "#idm").send_keys("0B 0E 00 00 00 0B 2C 01")
    by_css(driver, "form[action='/my/cards'] button").click()
    wait_for(driver, "カードを登録しました")
    assert "2C01" in driver.page_source
    check_page(driver, axe, "cards")
    # the operator submits a ride through the operator API: the figures change
    r = httpx.post(
        f"{base}/v1/operators/{TAXI}/taxi-rides",
        json=ride_body("BR-1", CARD, yesterday_at(11)),
        headers={"X-API-Key": keys.taxi},
    )
    assert r.status_code == 200 and r.json()["riders"][0]["subsidy_yen"] == 900, r.text
    driver.get(base + "/my/")
    assert figure(driver, "left-year") == left - 1
    assert figure(driver, "subsidy-year") == 900
    assert "マイタクが運賃の一部を支払いました" in driver.page_source
    # rides of the month
    driver.get(base + "/my/rides?month=" + yesterday_at(11).strftime("%Y-%m"))
    assert "900 円" in driver.page_source
    check_page(driver, axe, "rides")
    # next buses and the fare with the senior discount
    driver.get(base + "/stops/")
    by_css(driver, "#q").send_keys("表町")
    by_css(driver, "form[action='/stops/'] button").click()
    wait_for(driver, "/stops/g033_01")
    check_page(driver, axe, "stops-search")
    by_css(driver, "a[href='/stops/g033_01']").click()
    wait_for(driver, "表町（高崎駅、新前橋駅西口 方面） の次のバス")
    check_page(driver, axe, "stop")
    driver.get(base + "/stops/")
    by_css(driver, "#from").send_keys("表町")
    by_css(driver, "#to").send_keys("中央前橋駅前")
    by_css(driver, "form[action='/stops/fare'] button").click()
    wait_for(driver, "シニア割引")
    assert "お支払いは" in driver.page_source
    check_page(driver, axe, "fare")
    # notice settings
    driver.get(base + "/my/notices")
    by_css(driver, "#n-rides").click()
    by_css(driver, "form[action='/my/notices'] button").click()
    wait_for(driver, "保存しました")
    check_page(driver, axe, "notices")
    # report the card lost (with the confirmation tick)
    driver.get(base + "/my/cards")
    by_css(driver, "form[action$='/lost'] input[type=checkbox]").click()
    by_css(driver, "form[action$='/lost'] button").click()
    wait_for(driver, "紛失届済み")
    # a page that is not there
    driver.get(base + "/stops/nowhere")
    check_page(driver, axe, "not-found")


def test_language_text_size_contrast_and_easy_japanese(
    driver: Any, base: str, senior: int, axe: str
) -> None:
    driver.get(base + "/my/")
    by_css(driver, "a[hreflang='en']").click()
    assert (
        "My MyTaku" in driver.page_source
        and driver.execute_script("return document.documentElement.lang") == "en"
    )
    check_page(driver, axe, "home-en")
    driver.get(base + "/my/display")
    check_page(driver, axe, "display")
    by_css(driver, "#t-larger").click()
    by_css(driver, "#contrast").click()
    by_css(driver, "#easy").click()
    by_css(driver, "#l-ja").click()
    by_css(driver, "form[action='/my/display'] button").click()
    wait_url(driver, base + "/my/")
    cls = driver.execute_script("return document.documentElement.className")
    assert cls == "text-larger contrast"
    size = driver.execute_script(
        "return parseFloat(getComputedStyle(document.documentElement).fontSize)"
    )
    assert size == 24.0
    assert "今日 乗れる 回数" in driver.page_source
    check_page(driver, axe, "home-large-contrast-easy")
    driver.get(base + "/my/cards")
    check_page(driver, axe, "cards-large-contrast")
    # back to the defaults for the other tests
    driver.delete_cookie("mebuku_display")
    driver.delete_cookie("mebuku_lang")


FOCUSABLE = (
    "return Array.from(document.querySelectorAll("
    "'a[href], button, input:not([type=hidden]), textarea, select,"
    ' [tabindex]:not([tabindex="-1"])\''
    ")).filter(e => !e.disabled && e.getClientRects().length > 0)"
    # a radio group is one tab stop: its checked radio (else its first)
    ".filter(e => e.type !== 'radio' || e.checked || !Array.from("
    "document.getElementsByName(e.name)).some(r => r.checked) &&"
    " document.getElementsByName(e.name)[0] === e)"
)


def tab_through(driver: Any) -> tuple[list[Any], list[Any]]:
    """Press Tab from the top of the page until focus leaves it; the elements in order.
    Each must show a visible focus indicator."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys as Key

    driver.execute_script(
        "document.activeElement && document.activeElement.blur();window.scrollTo(0, 0)"
    )
    expected = driver.execute_script(FOCUSABLE)
    seen: list[Any] = []
    for _ in range(len(expected) + 1):
        ActionChains(driver).send_keys(Key.TAB).perform()
        el = driver.switch_to.active_element
        if (seen and el == seen[0]) or el.tag_name == "body":
            break
        style = driver.execute_script(
            "const s = getComputedStyle(arguments[0]);"
            "return [s.outlineStyle, s.outlineWidth, s.boxShadow]",
            el,
        )
        assert (style[0] != "none" and style[1] != "0px") or style[2] != "none", (
            f"no visible focus on {el.get_attribute('outerHTML')[:120]}"
        )
        seen.append(el)
    return seen, expected


PAGES = [
    "/my/",
    "/my/rides",
    "/my/cards",
    "/my/notices",
    "/my/display",
    "/stops/",
    "/stops/g033_01",
    "/stops/nowhere",
    "/my/counter",
    "/stops/fare?from=%E8%A1%A8%E7%94%BA&to=%E4%B8%AD%E5%A4%AE%E5%89%8D%E6%A9%8B%E9%A7%85%E5%89%8D",
]


def test_keyboard_reaches_everything_in_order_with_visible_focus(
    driver: Any, base: str, senior: int
) -> None:
    for path in PAGES:
        driver.get(base + path)
        seen, expected = tab_through(driver)
        assert seen == expected, f"{path}: focus order differs from the reading order"
        assert seen[0].get_attribute("class") == "skip", path


def test_keyboard_only_sign_in_and_find_the_next_bus(driver: Any, app: FastAPI, base: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys as Key

    def press(*keys: str) -> None:
        ActionChains(driver).send_keys(*keys).perform()

    app.state.rate_buckets = {}
    driver.delete_all_cookies()
    driver.get(base + "/my/signin")
    # Tab to the test card's name, type it, Enter submits (no mouse anywhere)
    for _ in range(40):
        press(Key.TAB)
        if driver.switch_to.active_element.get_attribute("id") == "card-name":
            break
    press(Key.CONTROL, "a")
    press("browser-keyboard", Key.ENTER)
    wait_url(driver, base + "/my/")
    # skip link, then the main content takes focus
    press(Key.TAB)
    assert driver.switch_to.active_element.get_attribute("class") == "skip"
    press(Key.ENTER)
    assert driver.switch_to.active_element.get_attribute("id") == "main"
    driver.get(base + "/stops/")
    for _ in range(40):
        press(Key.TAB)
        if driver.switch_to.active_element.get_attribute("id") == "q":
            break
    press("表町", Key.ENTER)
    wait_for(driver, "/stops/g033_01")
    for _ in range(60):
        press(Key.TAB)
        if driver.switch_to.active_element.get_attribute("href") == base + "/stops/g033_01":
            break
    press(Key.ENTER)
    wait_for(driver, "表町（高崎駅、新前橋駅西口 方面） の次のバス")


def test_sign_in_page_is_accessible_signed_out(
    driver: Any, app: FastAPI, base: str, axe: str
) -> None:
    app.state.rate_buckets = {}
    driver.delete_all_cookies()
    driver.get(base + "/my/signin")
    check_page(driver, axe, "signin")
    seen, expected = tab_through(driver)
    assert seen == expected


def test_the_axe_harness_does_find_violations(driver: Any, base: str, axe: str) -> None:
    """A check that can fail: an image without text and low-contrast text are reported."""
    driver.get(base + "/stops/")
    driver.execute_script(
        "document.querySelector('main').insertAdjacentHTML('beforeend',"
        ' \'<img src="/my/static/x.png"><p id="faint">薄い文字</p>\');'
        "document.getElementById('faint').style.color = '#bbb'"  # CSSOM: allowed by the CSP
    )
    ids = {v["id"] for v in browser.axe_violations(driver, axe)}
    assert {"image-alt", "color-contrast"} <= ids


def test_counter_assistance_warns_before_the_view_ends(
    driver: Any, app: FastAPI, base: str, keys: Keys, axe: str, db_url: str
) -> None:
    import psycopg

    app.state.rate_buckets = {}
    driver.delete_all_cookies()
    driver.get(base + "/my/counter")
    check_page(driver, axe, "counter-start")
    by_css(driver, "#api-key").send_keys(keys.admin)
    by_css(driver, "form[action='/my/counter/start'] button").click()
    wait_for(driver, "窓口セッション")
    check_page(driver, axe, "counter-card")
    name = by_css(driver, "#card-name")
    name.clear()
    name.send_keys("browser-counter")
    by_css(driver, ".dev form[action='/my/counter/card'] button").click()
    wait_url(driver, base + "/my/")
    wait_for(driver, "窓口での手続き（担当")
    warning = by_css(driver, ".counter-warning")
    assert not warning.is_displayed()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE portal_counter_sessions SET expires_at = now() + interval '90 s'"
            " WHERE ended_at IS NULL AND resident_id IS NOT NULL"
        )
    driver.get(base + "/my/rides")
    assert by_css(driver, ".counter-warning").is_displayed()  # the 2-minute warning
    check_page(driver, axe, "counter-rides")
    by_css(driver, "form[action='/my/counter/extend'] button").click()
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: not by_css(d, ".counter-warning").is_displayed()
    )  # extended by 15 minutes: the warning is gone
    driver.delete_all_cookies()
