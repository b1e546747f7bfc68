"""Service recovery end to end: ``carebot run``, the Twilio-compatible server, aiosmtpd, Chromium.

A complaint texted back to the follow-up opens a case; nobody acts, so the deadline alert
reaches the shop by email; the merchant marks the case contacted, then resolved, on the
dashboard in headless Chromium; the customer is asked whether it was put right, answers "5",
and the case closes as recovered (the recovery rate counts it).

The response deadline is scaled down to seconds in a copy of the sample rules, business hours
are round the clock, and watchers scan every second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from carebot.testing.twilio_server import DEFAULT_AUTH_TOKEN, FakeTwilioServer

from .conftest import REPO, shipped_event, smtp_env, twilio_env, wait_until
from .test_dashboard_browser import CHROMEDRIVER, CHROMIUM, _load_by, _shot, browser

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

__all__ = ["browser"]  # the fixture, shared with the dashboard's browser test

TOKEN = "recovery-admin-token"
PHONE = "+8613800138000"
ALERTS = "ops@shop.example"
DEADLINE_SECONDS = 4


def _rules(tmp_path: Path) -> Path:
    """The sample rules, with a damaged parcel's deadline in seconds and the follow-up due now."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    feedback = (rules / "feedback.yaml").read_text(encoding="utf-8")
    damaged = feedback.index("id: damaged_in_transit")
    head, tail = feedback[:damaged], feedback[damaged:]
    tail = tail.replace("respond_within: 4h", f"respond_within: {DEADLINE_SECONDS}s", 1)
    (rules / "feedback.yaml").write_text(head + tail, encoding="utf-8")
    journeys = (rules / "journeys.yaml").read_text(encoding="utf-8")
    journeys = journeys.replace('    window: "10:00-20:00"', "    # window removed for the test")
    (rules / "journeys.yaml").write_text(journeys, encoding="utf-8")
    return rules


def _alerts(smtp: Any, marker: str) -> list[str]:
    """Subjects of the emails to the shop that contain ``marker``."""
    return [
        str(message["Subject"])
        for envelope, message in zip(smtp.envelopes, smtp.messages, strict=True)
        if ALERTS in envelope.rcpt_tos and marker in str(message["Subject"])
    ]


def _texts(twilio: FakeTwilioServer) -> list[str]:
    return [r.get("Body", "") for r in twilio.requests if r.get("To") == PHONE]


def _text_back(url: str, body: str, sid: str) -> None:
    params = {"From": PHONE, "To": "+15005550006", "Body": body, "MessageSid": sid}
    target = f"{url}/twilio/inbound"
    signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(target, params)
    response = httpx.post(
        target,
        content=urlencode(params).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    assert response.status_code == 200, response.text


def test_a_complaint_is_followed_until_the_customer_says_it_was_put_right(
    daemon_factory: Any,
    twilio_server: FakeTwilioServer,
    smtp_server: Any,
    browser: WebDriver,
    tmp_path: Path,
) -> None:
    daemon = daemon_factory(
        **twilio_env(twilio_server),
        **smtp_env(smtp_server),
        CAREBOT_RULES_DIR=str(_rules(tmp_path)),
        CAREBOT_ADMIN_TOKEN=TOKEN,
        CAREBOT_ALERTS__EMAIL=ALERTS,
        CAREBOT_DEFAULT_TIMEZONE="Asia/Shanghai",
        CAREBOT_SERVICE__BUSINESS_HOURS="always",
        CAREBOT_SERVICE__BUSINESS_DAYS="mon-sun",
        CAREBOT_SERVICE__HOLIDAYS="",
        CAREBOT_WATCHERS__INTERVAL_MINUTES="0.02",
    )
    daemon.start(timeout=60)  # generous: a shared CI machine can be slow to start it
    # Delivered six days ago: the follow-up (five days after delivery for formula) is due now.
    now = datetime.now(UTC)
    assert daemon.post(shipped_event(1001, occurred_at=now - timedelta(days=7))).status_code == 202
    delivered = {
        "id": "evt-1001-delivered",
        "type": "shipment.updated",
        "occurred_at": (now - timedelta(days=6)).isoformat(),
        "order": {"id": "1001"},
        "shipment": {"id": "s-1001", "status": "delivered"},
    }
    assert daemon.post(delivered).status_code == 202
    assert wait_until(lambda: any("1-5" in t for t in _texts(twilio_server)), timeout=60)

    # The customer texts back a complaint: a case opens, the shop is alerted.
    _text_back(daemon.url, "1分，罐子压坏了", "SM" + "1" * 32)
    assert wait_until(lambda: daemon.query("select status from cases") == [("open",)], 60)
    assert wait_until(lambda: len(_alerts(smtp_server, "售后预警")) == 1, timeout=60)
    # Nobody acts: past the deadline the shop is alerted again, once for this step.
    assert wait_until(lambda: len(_alerts(smtp_server, "售后超时")) == 1, timeout=60)
    time.sleep(3)
    assert len(_alerts(smtp_server, "售后超时")) == 1
    [(case_id,)] = daemon.query("select id from cases")

    # The merchant steps the case on the dashboard.
    browser.get(f"{daemon.url}/dashboard/orders/1001?lang=zh-CN")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    _load_by(browser, browser.find_element(By.CSS_SELECTOR, "#login button"))
    status = browser.find_element(By.ID, f"case-{case_id}-status")
    assert status.get_attribute("data-status") == "open" and status.text == "待处理"
    assert "运输破损" in browser.find_element(By.ID, "cases").text
    browser.find_element(By.ID, f"case-{case_id}-contacted-note").send_keys("已致电客户")
    _load_by(browser, browser.find_element(By.ID, f"case-{case_id}-contacted"))
    assert "已联系" in browser.find_element(By.ID, "flash").text
    browser.find_element(By.ID, f"case-{case_id}-resolved-note").send_keys("补发新罐")
    _load_by(browser, browser.find_element(By.ID, f"case-{case_id}-resolved"))
    status = browser.find_element(By.ID, f"case-{case_id}-status")
    assert status.get_attribute("data-status") == "resolved"
    history = browser.find_element(By.ID, f"case-{case_id}").text
    assert (
        "已致电客户" in history and "补发新罐" in history and "控制台" in history
    )  # who, in zh-CN
    _shot(browser, "11-case-resolved")

    # The customer is asked whether it was put right, and answers 5: the case closes.
    assert wait_until(lambda: any("是否已解决" in t for t in _texts(twilio_server)), timeout=60)
    _text_back(daemon.url, "5", "SM" + "2" * 32)
    assert wait_until(
        lambda: daemon.query("select status, recovered from cases") == [("resolved", 1)], 60
    )
    report = subprocess.run(
        [sys.executable, "-m", "carebot", "report", "cases", "--json"],
        capture_output=True,
        text=True,
        env=daemon.env,
        cwd=daemon.tmp_path,
        timeout=60,
        check=True,
    )
    measures = json.loads(report.stdout)
    assert (measures["recovered"], measures["recoverable"], measures["recovery_rate"]) == (1, 1, 1)
    assert measures["by_category"] == {"damaged_in_transit": 1}
    assert measures["past_deadline"] == 1
    browser.get(f"{daemon.url}/dashboard/feedback?lang=en")
    assert browser.find_element(By.ID, "recovery-rate").text == "100%"
    _shot(browser, "12-feedback-cases")
