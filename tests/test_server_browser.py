"""The web page end to end in headless Chromium: uvicorn on a free loopback port serves a tiny index; the browser
types a query, presses Enter and must show the expected article, original and translation side by side, with
paging, keyboard focus order, visible focus and escaped text. A screenshot is written to $XSEARCH_SCREENSHOT
(default: the test's tmp folder)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
if not CHROMIUM or not CHROMEDRIVER:
    pytest.skip("Chromium and chromedriver are not installed (scripts/setup apt-installs chromium and "
                "chromium-driver when run as root)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="pip install 'xsearch[test]' (selenium)")

from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from server_helpers import build_template, copy_index, install_translator, running_server  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from server.app import create_app
    from server.settings import ServerSettings

    with pytest.MonkeyPatch.context() as mp:
        install_translator(mp)
        root = tmp_path_factory.mktemp("browser")
        translated = copy_index(build_template(root), root / "tiny")
        plain = copy_index(build_template(root, translate=False), root / "plain")
        with running_server(create_app(ServerSettings(index=translated, warm=True))) as base, \
                running_server(create_app(ServerSettings(index=plain, warm=True))) as plain_base:
            yield base, plain_base


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                "--disable-dev-shm-usage", "--window-size=1280,1100",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait(driver, timeout: float = 20):  # noqa: ANN001, ANN201
    return WebDriverWait(driver, timeout)


def open_page(driver, url: str) -> None:  # noqa: ANN001
    driver.get(url)
    wait(driver).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#route option")) > 0)


def search_by_keyboard(driver, query: str) -> None:  # noqa: ANN001
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(query)
    box.send_keys(Keys.ENTER)
    wait(driver).until(lambda d: d.find_element(By.ID, "status").text.startswith(("Results", "No results")))


def severe_console_errors(driver) -> list[str]:  # noqa: ANN001
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_type_a_query_press_enter_see_the_article(site, browser, tmp_path):
    base, _ = site
    open_page(browser, base + "/")
    assert browser.title.startswith("xsearch")
    assert "tiny · 5 documents" in browser.find_element(By.ID, "index-info").text
    assert browser.switch_to.active_element.get_attribute("id") == "q"   # autofocus: type at once

    search_by_keyboard(browser, "speech recognition")
    first = browser.find_element(By.CSS_SELECTOR, "#results li.hit")
    original = first.find_element(By.CSS_SELECTOR, ".col-original")
    translation = first.find_element(By.CSS_SELECTOR, ".col-translation")
    assert original.find_element(By.CSS_SELECTOR, "h3").text == "Reconnaissance de la parole"
    assert original.get_attribute("lang") == "fr"
    assert translation.find_element(By.CSS_SELECTOR, "h3").text == "Speech recognition"
    assert [m.text for m in translation.find_elements(By.CSS_SELECTOR, "h3 mark")] == ["Speech", "recognition"]
    assert "2015 · taln · d4" in first.find_element(By.CSS_SELECTOR, ".hit-meta").text
    assert "q=speech+recognition" in browser.current_url
    assert "Results 1–5" in browser.find_element(By.ID, "status").text

    shot = Path(os.environ.get("XSEARCH_SCREENSHOT") or tmp_path / "xsearch-page.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    assert severe_console_errors(browser) == []


def test_keyboard_focus_order_and_visible_focus(site, browser):
    base, _ = site
    open_page(browser, base + "/")
    assert browser.switch_to.active_element.get_attribute("id") == "q"
    browser.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)   # the only stop before the query box
    order = []
    for _ in range(7):
        el = browser.switch_to.active_element
        order.append(el.get_attribute("id") or el.get_attribute("class"))
        outline = el.value_of_css_property("outline-style")
        assert outline not in ("none", ""), (order[-1], outline)   # focus is visible
        el.send_keys(Keys.TAB)
    assert order == ["skip-link", "q", "route", "k", "year", "venue", "search-button"]

    form = browser.find_element(By.ID, "search-form")
    assert form.get_attribute("role") == "search" and form.get_attribute("aria-label")
    assert browser.find_element(By.CSS_SELECTOR, "nav.pager").get_attribute("aria-label") == "Result pages"
    assert browser.find_element(By.ID, "status").get_attribute("aria-live") == "polite"
    for button in ("prev", "next"):
        assert browser.find_element(By.ID, button).get_attribute("aria-label")
    for field in ("q", "route", "k", "year", "venue"):
        assert browser.find_element(By.CSS_SELECTOR, f"label[for={field}]").text


def test_paging_with_prev_and_next(site, browser):
    base, _ = site
    open_page(browser, base + "/?q=traduction&route=dense&k=2")
    wait(browser).until(lambda d: d.find_element(By.ID, "status").text.startswith("Results 1–2"))
    first_page = [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".col-original h3")]
    prev, nxt = browser.find_element(By.ID, "prev"), browser.find_element(By.ID, "next")
    assert not prev.is_enabled() and nxt.is_enabled()

    nxt.send_keys(Keys.ENTER)   # keyboard activation
    wait(browser).until(lambda d: d.find_element(By.ID, "status").text.startswith("Results 3–4"))
    assert browser.switch_to.active_element.get_attribute("id") == "results-heading"  # focus follows the page
    assert "offset=2" in browser.current_url
    second_page = [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".col-original h3")]
    assert len(second_page) == 2 and not set(first_page) & set(second_page)
    assert browser.find_element(By.CSS_SELECTOR, "#results").get_attribute("start") == "3"

    browser.find_element(By.ID, "next").send_keys(Keys.ENTER)
    wait(browser).until(lambda d: d.find_element(By.ID, "status").text.startswith("Results 5–5"))
    assert not browser.find_element(By.ID, "next").is_enabled()
    browser.find_element(By.ID, "prev").send_keys(Keys.ENTER)
    wait(browser).until(lambda d: d.find_element(By.ID, "status").text.startswith("Results 3–4"))
    browser.back()   # history works too
    wait(browser).until(lambda d: d.find_element(By.ID, "status").text.startswith("Results 5–5"))


def test_escaping_filters_and_empty_query(site, browser):
    base, _ = site
    open_page(browser, base + "/")
    Select = pytest.importorskip("selenium.webdriver.support.select").Select
    Select(browser.find_element(By.ID, "route")).select_by_value("bm25")
    search_by_keyboard(browser, "balises")
    snippet = browser.find_element(By.CSS_SELECTOR, "#results .col-original .snippet")
    assert "<script>alert(1)</script>" in snippet.text            # shown as text...
    assert not browser.find_elements(By.CSS_SELECTOR, "#results script")   # ...never as markup
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    assert snippet.find_element(By.TAG_NAME, "mark").text == "balises"

    Select(browser.find_element(By.ID, "route")).select_by_value("dense")
    browser.find_element(By.ID, "year").send_keys("2010")
    search_by_keyboard(browser, "traduction")
    metas = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#results .hit-meta")]
    assert len(metas) == 2 and all(" · 2010 · " in m for m in metas), metas
    assert "year=2010" in browser.find_element(By.ID, "status").text and "year=2010" in browser.current_url
    browser.find_element(By.ID, "year").clear()
    browser.find_element(By.ID, "q").clear()
    browser.find_element(By.ID, "q").send_keys("   " + Keys.ENTER)
    wait(browser).until(lambda d: "Type a query first" in d.find_element(By.ID, "status").text)


def test_index_without_translation_says_so(site, browser):
    _, plain = site
    open_page(browser, plain + "/")
    search_by_keyboard(browser, "chats")
    first = browser.find_element(By.CSS_SELECTOR, "#results li.hit")
    assert first.find_element(By.CSS_SELECTOR, ".col-translation .none").text == "no translation in this index"
    assert "no stored translation" in browser.find_element(By.ID, "index-info").text


def test_click_a_facet_to_filter_and_again_to_clear(site, browser, tmp_path):
    base, _ = site
    open_page(browser, base + "/?q=traduction&route=dense")
    wait(browser).until(lambda d: d.find_element(By.ID, "status").text.startswith("Results 1–5"))
    facets = browser.find_element(By.ID, "facets")
    assert facets.is_displayed() and facets.get_attribute("aria-label")
    venue = {b.get_attribute("data-value"): b for b in facets.find_elements(By.CSS_SELECTOR,
                                                                             "button[data-field=venue]")}
    assert {v: b.text for v, b in venue.items()} == {"taln": "taln (3)", "recital": "recital (2)"}
    assert venue["recital"].get_attribute("aria-pressed") == "false"

    venue["recital"].click()
    wait(browser).until(lambda d: "venue=recital" in d.find_element(By.ID, "status").text)
    metas = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#results .hit-meta")]
    assert len(metas) == 2 and all(" · recital · " in m for m in metas), metas
    assert "venue=recital" in browser.current_url and browser.find_element(By.ID, "venue").get_attribute(
        "value") == "recital"
    pressed = browser.find_element(By.CSS_SELECTOR, "#facets button[data-field=venue][data-value=recital]")
    assert pressed.get_attribute("aria-pressed") == "true" and pressed.text == "recital (2)"
    years = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#facets button[data-field=year]")]
    assert years == ["2008 (1)", "2010 (1)"]   # counted over the filtered results
    shot = Path(os.environ.get("XSEARCH_FACET_SCREENSHOT") or tmp_path / "xsearch-facets.png")
    assert browser.save_screenshot(str(shot))

    pressed.send_keys(Keys.ENTER)   # the keyboard works too; pressing again clears the filter
    wait(browser).until(lambda d: d.find_element(By.ID, "status").text.startswith("Results 1–5"))
    assert "venue=" not in browser.current_url
    assert severe_console_errors(browser) == []
