"""The daemon end to end: signed events in, real SMS and email out."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from carebot.testing.twilio_server import FakeTwilioServer

from .conftest import REPO, SECRET, shipped_event, signed_headers, smtp_env, twilio_env, wait_until


def _provider_env(twilio: FakeTwilioServer, smtp: Any) -> dict[str, str]:
    return {**twilio_env(twilio), **smtp_env(smtp)}


def test_a_signed_shipped_event_sends_one_sms_through_twilio_within_two_seconds(
    daemon_factory: Any, twilio_server: FakeTwilioServer, smtp_server: Any
) -> None:
    daemon = daemon_factory(**_provider_env(twilio_server, smtp_server))
    daemon.start()
    started = time.monotonic()
    response = daemon.post(shipped_event(1001))
    assert response.status_code == 202, response.text
    assert twilio_server.wait_for(1, timeout=2.0), "no POST …/Messages.json within 2 s"
    elapsed = time.monotonic() - started
    request = twilio_server.requests[0]
    assert request["To"] == "+8613800138000"
    assert "SF0000001001" in request["Body"]
    assert request["StatusCallback"].startswith(f"{daemon.url}/twilio/status")
    assert elapsed < 2.0
    # The same delivery again, and the same event under a new webhook id: nothing more.
    assert daemon.post(shipped_event(1001)).status_code == 200
    assert daemon.post(shipped_event(1001), webhook_id="msg_other").status_code == 200
    time.sleep(1.5)
    assert len(twilio_server.requests) == 1
    assert smtp_server.messages == []
    assert wait_until(
        lambda: daemon.query("select status from notifications") == [("sent",)], timeout=3
    )


def test_a_customer_with_only_an_email_gets_the_shipped_notice_by_email(
    daemon_factory: Any, twilio_server: FakeTwilioServer, smtp_server: Any
) -> None:
    daemon = daemon_factory(**_provider_env(twilio_server, smtp_server))
    daemon.start()
    assert daemon.post(shipped_event(7, phone=None)).status_code == 202
    assert wait_until(lambda: len(smtp_server.messages) == 1, timeout=3)
    message = smtp_server.messages[0]
    assert message["To"] == "wang@example.com"
    assert message["Message-ID"].startswith("<carebot.")
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "SF0000000007" in text and "SF0000000007" in html
    assert twilio_server.requests == []


def test_bad_signatures_are_401_and_bad_bodies_are_400_and_kept_for_inspection(
    daemon_factory: Any,
) -> None:
    daemon = daemon_factory()
    daemon.start()
    url = f"{daemon.url}/webhooks/carebot"
    unsigned = httpx.post(url, content=b'{"id": "x"}', headers={"content-type": "application/json"})
    assert unsigned.status_code == 401
    wrong = signed_headers(b"{}", secret="whsec_" + "A" * 32, webhook_id="msg_1")
    assert httpx.post(url, content=b"{}", headers=wrong).status_code == 401
    # A correct signature over a ten-minute-old timestamp is a replay: refused.
    body = json.dumps(shipped_event(9)).encode()
    stale_at = datetime.now(UTC) - timedelta(minutes=10)
    stale = {
        "webhook-id": "msg_stale",
        "webhook-timestamp": str(int(stale_at.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("msg_stale", stale_at, body.decode()),
    }
    assert httpx.post(url, content=body, headers=stale).status_code == 401
    malformed = {**stale, "webhook-timestamp": "soon", "webhook-signature": "v1"}
    assert httpx.post(url, content=body, headers=malformed).status_code == 401
    garbage = b"{not json"
    response = httpx.post(url, content=garbage, headers=signed_headers(garbage, webhook_id="m2"))
    assert response.status_code == 400 and "not JSON" in response.json()["error"]
    naive = shipped_event(1)
    naive["occurred_at"] = "2026-11-20T10:00:00"
    response = daemon.post(naive)
    assert response.status_code == 400
    assert "timezone" in response.json()["error"]
    rejected = daemon.query("select source, reason, body from rejected_payloads order by id")
    assert [r[0] for r in rejected] == ["carebot", "carebot"]
    assert rejected[0][2] == garbage
    assert daemon.query("select count(*) from events") == [(0,)]


def test_the_readme_tour_signs_with_the_generated_secret_and_the_console_prints_the_notice(
    tmp_path: Any, daemon_factory: Any
) -> None:
    """No credentials and no webhook secret: the console stands in, `carebot sign` signs."""
    daemon = daemon_factory(CAREBOT_WEBHOOKS__CAREBOT_SECRET="")
    daemon.start()
    event_file = tmp_path / "shipped.json"
    body = json.dumps(shipped_event(42), ensure_ascii=False).encode()
    event_file.write_bytes(body)
    signed = subprocess.run(
        [sys.executable, "-m", "carebot", "sign", str(event_file)],
        capture_output=True,
        text=True,
        env=daemon.env,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    headers = dict(line.split(": ", 1) for line in signed.stdout.splitlines())
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    response = httpx.post(f"{daemon.url}/webhooks/carebot", content=body, headers=headers)
    assert response.status_code == 202, response.text
    assert wait_until(lambda: "SF0000000042" in daemon.stdout(), timeout=3)
    output = daemon.stdout()
    assert "sms:       console" in output and "email:     console" in output
    assert "secret generated" in output
    assert "+86138****8000" in output  # the console masks the number
    assert "+8613800138000" not in output
    assert (REPO / "rules" / "shipping.yaml").exists()


def test_json_logs_carry_the_event_and_the_send_with_the_number_masked(
    daemon_factory: Any,
) -> None:
    daemon = daemon_factory(CAREBOT_LOG_FORMAT="json")
    daemon.start()
    assert daemon.post(shipped_event(77)).status_code == 202

    def records() -> list[dict[str, Any]]:
        lines = daemon.stderr_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    assert wait_until(
        lambda: any(r.get("action") == "notification_sent" for r in records()), timeout=5
    )
    stored = next(r for r in records() if r.get("action") == "event_stored")
    assert stored["event_type"] == "order.shipped" and stored["scheduled"] == 1
    assert stored["level"] == "info" and stored["logger"].startswith("carebot")
    sent = next(r for r in records() if r.get("action") == "notification_sent")
    assert sent["to"] == "+86138****8000" and sent["channel"] == "sms"
    assert "+8613800138000" not in daemon.stderr_path.read_text(encoding="utf-8")
