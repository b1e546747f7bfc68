"""The dashboard in headless Chromium against ``carebot run``: log in, find, cancel.

Debian's ``chromium`` and ``chromium-driver`` drive the pages through Selenium; nothing is
downloaded at test time. Screenshots of every page land in ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from .conftest import REPO, shipped_event

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
TOKEN = "browser-admin-token"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed (/usr/bin/chromium)",
        allow_module_level=True,
    )

from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


def _quiet_hours_now() -> str:
    """A quiet window around the present hour in Shanghai, so every message stays pending."""
    hour = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).hour
    return f"{(hour - 1) % 24:02d}:00-{(hour + 3) % 24:02d}:00"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="carebot-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1280,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _load_by(driver: WebDriver, element: WebElement) -> None:
    """Click ``element`` and wait until the next page has replaced this one.

    The current document is marked first; the wait ends when a fully loaded document
    without the mark is in place. Asking about the old page's elements while Chromium
    navigates away can fail with an inspector error instead of a stale reference, so
    every WebDriver error during the navigation just means "not yet".
    """
    driver.execute_script("window.__carebotPage = true;")
    element.click()

    def next_page_loaded(d: WebDriver) -> bool:
        return bool(
            d.execute_script(
                "return window.__carebotPage === undefined && document.readyState === 'complete';"
            )
        )

    WebDriverWait(driver, 10, ignored_exceptions=(WebDriverException,)).until(next_page_loaded)


def _shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(int(height) + 40, 800))
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_a_merchant_logs_in_finds_an_order_and_cancels_its_pending_message(
    daemon_factory: Any, browser: WebDriver
) -> None:
    daemon = daemon_factory(
        CAREBOT_ADMIN_TOKEN=TOKEN,
        CAREBOT_QUIET_HOURS=_quiet_hours_now(),
        CAREBOT_DEFAULT_TIMEZONE="Asia/Shanghai",
    )
    daemon.start()
    earlier = datetime.now(UTC) - timedelta(minutes=5)
    for n in (1001, 1002, 1003):
        assert daemon.post(shipped_event(n, occurred_at=earlier)).status_code == 202
    delivered = {
        "id": "evt-1002-delivered",
        "type": "shipment.updated",
        "occurred_at": datetime.now(UTC).isoformat(),
        "order": {"id": "1002"},
        "shipment": {"id": "s-1002", "status": "delivered"},
    }
    assert daemon.post(delivered).status_code == 202
    pending = daemon.query("select id from notifications where order_id = '1001'")
    assert len(pending) == 1, pending

    browser.get(f"{daemon.url}/dashboard/orders?lang=en")
    assert "/dashboard/login" in browser.current_url
    _shot(browser, "01-login")
    browser.find_element(By.ID, "token").send_keys("wrong")
    _load_by(browser, browser.find_element(By.CSS_SELECTOR, "#login button"))
    assert browser.find_element(By.ID, "login-error").is_displayed()
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    _load_by(browser, browser.find_element(By.CSS_SELECTOR, "#login button"))
    assert browser.current_url.startswith(f"{daemon.url}/dashboard/orders")

    browser.find_element(By.ID, "q").send_keys("+8613800138000")
    _load_by(browser, browser.find_element(By.CSS_SELECTOR, "#search button"))
    results = browser.find_element(By.TAG_NAME, "main").text
    assert "1001" in results and "+86138****8000" in results and "+8613800138000" not in results
    _shot(browser, "02-search")
    _load_by(browser, browser.find_element(By.LINK_TEXT, "1001"))
    assert browser.find_element(By.ID, "order-id").text == "1001"
    messages = browser.find_element(By.ID, "messages").text
    assert "shipped" in messages and "scheduled" in messages
    assert "order.shipped" in browser.find_element(By.ID, "events").text
    _shot(browser, "03-timeline")

    [(notification_id,)] = pending
    _load_by(browser, browser.find_element(By.ID, f"cancel-{notification_id}"))
    assert "cancelled" in browser.find_element(By.ID, "flash").text.lower()
    row = browser.find_element(By.ID, f"notification-{notification_id}").text
    assert "cancelled" in row and "dashboard" in row
    assert browser.find_elements(By.ID, f"cancel-{notification_id}") == []
    _shot(browser, "04-timeline-cancelled")
    assert daemon.query("select status from notifications where id = ?", notification_id) == [
        ("cancelled",)
    ]

    for name, path in (
        ("05-overview", "/dashboard"),
        ("06-upcoming", "/dashboard/upcoming"),
        ("07-feedback", "/dashboard/feedback"),
        ("08-disruptions", "/dashboard/disruptions"),
        ("09-rules", "/dashboard/rules"),
        ("10-overview-zh", "/dashboard?lang=zh-CN"),
    ):
        browser.get(f"{daemon.url}{path}")
        assert browser.find_element(By.TAG_NAME, "h1").text, path
        _shot(browser, name)
    assert "概览" in browser.find_element(By.TAG_NAME, "h1").text
