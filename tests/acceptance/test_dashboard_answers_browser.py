"""A shop owner in headless Chromium: the overview's numbers open the rows behind them, a
wrong phone number is corrected and the message resent, a national-format number is found,
every zh-CN page shows no English status id (a check shown to catch them on the English
pages), and the timeline fits a 390 px phone."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from .conftest import shipped_event, wait_until
from .test_dashboard_browser import ARTIFACTS, TOKEN, _load_by, _shot, browser  # noqa: F401

STATUS_IDS = re.compile(
    r"\b(scheduled|claimed|sending|sent|delivered|undelivered|failed|expired|cancelled|"
    r"suppressed|in_transit|out_for_delivery|failed_attempt|available_for_pickup|exception|"
    r"queued|accepted|open|contacted|resolved|dismissed|damaged_in_transit|wrong_item)\b"
)


def _visible(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "main").text)


def _no_status_ids(driver: WebDriver, path: str) -> None:
    found = STATUS_IDS.findall(_visible(driver))
    assert not found, f"{path}: English status ids {sorted(set(found))}"


def test_a_shop_owner_walks_the_overview_corrects_a_contact_and_finds_it_again(
    daemon_factory: Any,
    browser: WebDriver,  # noqa: F811
) -> None:
    daemon = daemon_factory(CAREBOT_ADMIN_TOKEN=TOKEN, CAREBOT_DEFAULT_TIMEZONE="Asia/Shanghai")
    daemon.start()
    # 3001's number is a digit short: its shipped notice fails for want of a valid number.
    assert daemon.post(shipped_event(3001, phone="1380013800", email=None)).status_code == 202
    assert daemon.post(shipped_event(3002, phone="+8613900139000")).status_code == 202
    attempt = {
        "id": "evt-3002-courier-missed",
        "type": "shipment.updated",
        "occurred_at": datetime.now(UTC).isoformat(),
        "order": {"id": "3002"},
        "shipment": {"id": "s-3002", "status": "failed_attempt"},
    }
    assert daemon.post(attempt).status_code == 202

    browser.get(f"{daemon.url}/dashboard/login?lang=zh-CN")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    _load_by(browser, browser.find_element(By.CSS_SELECTOR, "#login button"))
    browser.get(f"{daemon.url}/dashboard")
    _shot(browser, "20-overview-answers")
    _no_status_ids(browser, "/dashboard")

    # A number on the overview opens the rows behind it.
    link = browser.find_element(By.ID, "trouble-failed_attempt")
    assert link.text == "1"
    _load_by(browser, link)
    assert browser.find_element(By.ID, "listing-count").text == "1"
    assert browser.find_elements(By.LINK_TEXT, "3002")
    _no_status_ids(browser, "trouble listing")
    browser.get(f"{daemon.url}/dashboard")
    failures = browser.find_element(By.ID, "failures")
    assert failures.text == "1"
    _load_by(browser, failures)
    _load_by(browser, browser.find_element(By.LINK_TEXT, "3001"))
    assert browser.find_element(By.ID, "order-id").text == "3001"
    _no_status_ids(browser, "/dashboard/orders/3001")

    # Correct the number (typed the national way), then resend.
    field = browser.find_element(By.ID, "contact-phone-value")
    field.clear()
    field.send_keys("138 0013 8000")
    _load_by(browser, browser.find_element(By.ID, "contact-phone-save"))
    assert browser.find_element(By.ID, "flash").is_displayed()
    changes = browser.find_element(By.ID, "contact-changes").text
    assert "1380013800" in changes and "+8613800138000" in changes
    [(notification_id,)] = daemon.query("select id from notifications where order_id = '3001'")
    _load_by(browser, browser.find_element(By.ID, f"resend-{notification_id}"))
    assert wait_until(
        lambda: (
            daemon.query(
                "select status, recipient from notifications where id = ?", notification_id
            )
            == [("sent", "+8613800138000")]
        )
    ), daemon.query("select status, recipient, reason from notifications")
    _shot(browser, "21-contact-corrected")

    # The timeline reads on a phone: nothing wider than the screen.
    browser.set_window_size(390, 844)
    browser.get(f"{daemon.url}/dashboard/orders/3001")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert int(width) <= 390, width
    browser.save_screenshot(str(ARTIFACTS / "22-timeline-390.png"))
    browser.set_window_size(1280, 1400)

    # Found again the way it is typed in China.
    browser.get(f"{daemon.url}/dashboard/orders")
    browser.find_element(By.ID, "q").send_keys("138 0013 8000")
    _load_by(browser, browser.find_element(By.CSS_SELECTOR, "#search button"))
    results = _visible(browser)
    assert "3001" in results and "+86138****8000" in results and "13800138000" not in results

    # A case opened by hand on 3002, so the cases pages have a row to show.
    browser.get(f"{daemon.url}/dashboard/orders/3002")
    _load_by(browser, browser.find_element(By.ID, "open-case-submit"))
    [(case_id,)] = daemon.query("select id from cases where order_id = '3002'")

    # Every page a shop owner reads, in Chinese: no English status, category or event id.
    pages = [
        "/dashboard",
        "/dashboard/orders",
        "/dashboard/orders?q=138%200013%208000",
        "/dashboard/orders?trouble=failed_attempt",
        "/dashboard/orders/3001",
        "/dashboard/orders/3002",
        "/dashboard/feedback",
        "/dashboard/cases",
        f"/dashboard/cases/{case_id}",
        "/dashboard/disruptions",
        "/dashboard/results",
        "/dashboard/upcoming",
    ]
    for path in pages:
        browser.get(f"{daemon.url}{path}")
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
        _no_status_ids(browser, path)
    # The check can fail: the same pages in English show the ids it looks for, and the
    # Chinese ones show them by name.
    browser.get(f"{daemon.url}/dashboard/orders/3001?lang=en")
    assert "sent" in STATUS_IDS.findall(_visible(browser))
    browser.get(f"{daemon.url}/dashboard/cases/{case_id}?lang=en")
    assert "open" in STATUS_IDS.findall(_visible(browser))
    browser.get(f"{daemon.url}/dashboard/orders/3001?lang=zh-CN")
    assert "已发送" in _visible(browser)
    browser.get(f"{daemon.url}/dashboard/cases/{case_id}")
    assert "待处理" in _visible(browser)
