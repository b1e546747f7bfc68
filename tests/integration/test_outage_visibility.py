"""An outage is visible where operators look: /metrics, ``carebot status``, the dashboard.

The breaker lives in the sending process; it records its turns in the database, so status and
dashboard (possibly other processes) read the same outage. Real SQLite file, real app.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from support.core import insert, make_runtime, planned

from carebot.channels import ChannelKind
from carebot.clock import VirtualClock
from carebot.exceptions import ChannelError
from carebot.settings import DispatchSettings
from carebot.store import provider_health
from carebot.store.reports import status_summary
from carebot.web.app import create_app

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
TOKEN = "admin-secret"


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_a_failing_provider_shows_as_failing_since_with_its_waiting_messages(
    tmp_path: Path,
) -> None:
    clock = VirtualClock(NOW)
    runtime, channels = make_runtime(
        tmp_path,
        clock=clock,
        dispatch=DispatchSettings(breaker_threshold=2, breaker_cooldown_seconds=60),
    )
    runtime.settings.admin_token = SecretStr(TOKEN)
    sms = channels[ChannelKind.SMS]
    sms.fail_next(ChannelError("twilio 20503: Service Unavailable (HTTP 503)", retryable=True), 50)
    insert(
        runtime.db,
        *(planned(f"sms-{n}", due_at=NOW, recipient=f"+86138001380{n:02d}") for n in range(5)),
        now=NOW,
    )
    await runtime.dispatcher.run_once()

    with runtime.db.transaction() as session:
        [outage] = provider_health.outages(session, now=NOW)
        summary = status_summary(session, now=NOW)
    assert (outage.channel, outage.provider, outage.since, outage.waiting) == (
        "sms",
        "memory",
        NOW,
        5,
    )
    assert outage.last_error is not None and "503" in outage.last_error
    assert summary.as_json()["outages"] == [outage.as_json()]
    # ``carebot status``, another process on the same database, says it first.
    status = subprocess.run(
        [sys.executable, "-m", "carebot", "status"],
        env={**os.environ, "CAREBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'carebot.db'}"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    first = status.stdout.splitlines()[0]
    assert first.startswith(f"memory failing since {NOW.isoformat()}")
    assert "5 waiting; last error: twilio 20503" in first

    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        metrics = (await client.get("/metrics")).text
        state = _samples(metrics, "carebot_circuit_state")
        assert state[(("channel", "sms"), ("provider", "memory"))] == 2  # open
        assert state[(("channel", "email"), ("provider", "memory"))] == 0
        waiting = _samples(metrics, "carebot_provider_waiting")
        assert waiting[(("channel", "sms"),)] == 5 and waiting[(("channel", "email"),)] == 0

        assert (await client.post("/dashboard/login", data={"token": TOKEN})).status_code == 303
        english = await client.get("/dashboard?lang=en")
        assert "memory failing since 2026-11-20 10:00" in english.text  # shown in Asia/Shanghai
        assert "5 waiting" in english.text
        chinese = await client.get("/dashboard?lang=zh-CN")
        assert "memory 自 2026-11-20 10:00 起发送失败，5 条消息等待中" in chinese.text

        # The provider is back: the trial after the cool-down succeeds, the circuit closes,
        # the outage is gone from every view and the backlog drains.
        sms.clear()
        clock.advance(timedelta(seconds=61))
        for _ in range(5):
            await runtime.dispatcher.run_once()
            clock.advance(timedelta(seconds=2))
        assert len(sms.sent) == 5
        with runtime.db.transaction() as session:
            assert provider_health.outages(session, now=clock.now()) == []
        metrics = (await client.get("/metrics")).text
        assert (
            _samples(metrics, "carebot_circuit_state")[(("channel", "sms"), ("provider", "memory"))]
            == 0
        )
        assert "failing since" not in (await client.get("/dashboard?lang=en")).text
