"""The UI app's page in headless Chromium asks nothing of the internet: whole on a machine without it.

Every request of /view and of the frames it embeds (the Streamlit page, HiPlot's component) goes to
the app itself, none fails, and the footer's "Running on" logo shows (``components.fixes.runtime``).
The sweep is run and each tab opened, so that whatever the page draws has been drawn.
"""

import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import artifacts, report_config
from tests.harness import CHROMIUM, kill_group, start_ui_app

pytestmark = [pytest.mark.slow, pytest.mark.browser]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium", allow_module_level=True)

#: Where the page may send requests: the app (its API server, the Streamlit page).
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
#: URLs that are no network request (an inline image, a worker's blob).
LOCAL_SCHEMES = {"data", "blob", "about"}
#: The footer's "Running on" logo.
FOOTER_LOGO = "img[alt='Lightning.ai']"


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in LOCAL_SCHEMES or parsed.hostname in LOCAL_HOSTS


def test_the_page_loads_whole_from_the_app_alone(tmp_path, write_config, browser):
    out = artifacts("offline-page")
    proc, url = start_ui_app(write_config(report_config(tmp_path)), cwd=tmp_path, log_path=out / "app.log")
    requested: list[str] = []
    failed: list[str] = []
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1200})
        context.on("request", lambda request: requested.append(request.url))  # every page, frame and worker
        context.on("requestfailed", lambda request: failed.append(f"{request.url}: {request.failure}"))
        page = context.new_page()
        page.on("websocket", lambda socket: requested.append(socket.url))
        page.goto(url)
        sweep_page = page.frame_locator("iframe").first
        sweep_page.get_by_text("0 of 5 trials finished · waiting").wait_for(timeout=60_000)
        sweep_page.frame_locator("iframe[title*='hiplot']").locator("body").wait_for(timeout=30_000)
        page.wait_for_function(f'document.querySelector("{FOOTER_LOGO}")?.complete', timeout=10_000)
        logo_width = page.locator(FOOTER_LOGO).evaluate("img => img.naturalWidth")
        logo_src = page.locator(FOOTER_LOGO).get_attribute("src")
        page.screenshot(path=out / "loaded.png", full_page=True)
        page.locator(FOOTER_LOGO).screenshot(path=out / "footer-logo.png")

        sweep_page.get_by_role("button", name="Run", exact=True).click()
        sweep_page.get_by_text("5 of 5 trials finished · finished").wait_for(timeout=90_000)
        tabs = sweep_page.get_by_role("tab")
        for n in [*range(1, tabs.count()), 0]:  # each tab's charts, then back to the first
            tabs.nth(n).click()
            time.sleep(1)  # its charts drawn
        page.screenshot(path=out / "finished.png", full_page=True)
        time.sleep(1)  # a late request (a poll, a deferred fetch) is counted too
    finally:
        kill_group(proc)
        (out / "requests.txt").write_text("".join(f"{request}\n" for request in requested))

    assert logo_width > 0, f"the footer's logo ({logo_src}) did not load"
    assert re.fullmatch(r"/static/media/lightning-logo-with-text\.\w+\.svg", logo_src), logo_src
    assert any(urlparse(request).path == logo_src for request in requested)
    assert [request for request in requested if not is_local(request)] == []
    assert failed == []
    assert len(requested) > 20, "the page, its frames and their files were all seen"
