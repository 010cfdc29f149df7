"""The search page in a real browser: Debian's headless Chromium driven by Playwright
(pointed at that executable: no browser download). .ci/run installs it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from _serve_fixtures import build_archive
from conftest import FakeEmbedder

from search.server import ServerConfig, create_app, serving


def chromium_path() -> str | None:
    """Debian's Chromium binary ($SEEDSEARCH_CHROMIUM, else /usr/lib/chromium/chromium,
    else chromium on PATH)."""
    for candidate in (
        os.environ.get("SEEDSEARCH_CHROMIUM"),
        "/usr/lib/chromium/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        chromium_path() is None,
        reason="no Chromium: apt-get install chromium (.ci/run does) or set SEEDSEARCH_CHROMIUM",
    ),
]


@pytest.fixture
def page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    _seeds, index = build_archive(tmp_path)
    app = create_app(ServerConfig(index, model=FakeEmbedder()))
    with serving(app) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            tab = browser.new_page(java_script_enabled=False, locale="de-DE")
            tab.set_default_timeout(15_000)
            tab.goto(url + "/")
            yield tab
        finally:
            browser.close()


def test_search_filter_and_article_view_in_chromium(page):
    assert page.locator("html").get_attribute("lang") == "de"
    box = page.get_by_label("Suchbegriffe oder Frage")
    box.fill("Wer liefert Waffen?")
    box.press("Enter")
    page.wait_for_url("**/?q=*")
    results = page.locator("ol.hits > li")
    assert results.count() >= 3
    assert "Waffenlieferungen" in page.locator("ol.hits").inner_text()
    assert page.locator("ol.hits mark").count() >= 1
    assert "BM25:" in results.first.inner_text()

    page.get_by_label("Quelle").select_option("Sportschau")
    page.get_by_role("button", name="Suchen").click()
    page.wait_for_url("**source=Sportschau*")
    sources = page.locator("ol.hits .meta").all_inner_texts()
    assert sources and all("Sportschau" in s for s in sources)

    page.get_by_label("Quelle").select_option("")
    page.get_by_role("button", name="Suchen").click()
    page.locator("ol.hits h2 a", has_text="Putin reist nach Nordkorea").first.click()
    page.wait_for_url("**/articles/nordkorea.txt*")
    assert page.get_by_role("heading", level=2).first.inner_text() == "Putin reist nach Nordkorea"
    marked = page.locator("p.marked")
    assert marked.count() == 1 and marked.locator("mark").count() >= 1


def test_page_is_usable_by_keyboard(page):
    """The search box has the focus on arrival; typing and Enter search; the first Tab
    stop of the page is the link past the header."""
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("Hitze")
    page.keyboard.press("Enter")
    page.wait_for_url("**/?q=Hitze*")
    assert "Hitzewelle" in page.locator("ol.hits").inner_text()
    page.get_by_label("Suchbegriffe oder Frage").focus()
    page.keyboard.press("Shift+Tab")  # the site name in the header
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent") == "Zum Inhalt springen"
    page.keyboard.press("Enter")
    assert page.url.endswith("#inhalt")
