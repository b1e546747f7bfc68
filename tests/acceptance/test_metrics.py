"""``GET /metrics`` is scraped and its counters move with the traffic."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import shipped_event, wait_until


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_webhooks_notifications_and_provider_calls(daemon_factory: Any) -> None:
    daemon = daemon_factory()
    daemon.start()
    accepted = ("carebot_webhook_requests_total", (("outcome", "accepted"), ("source", "carebot")))
    refused = (
        "carebot_webhook_requests_total",
        (("outcome", "unauthorized"), ("source", "carebot")),
    )
    sent = ("carebot_notifications", (("channel", "sms"), ("rule", "shipped"), ("status", "sent")))
    latency = (
        "carebot_provider_latency_seconds_count",
        (("channel", "sms"), ("provider", "console")),
    )
    before = _scrape(daemon.url)
    assert before.get(accepted, 0) == 0 and before.get(sent, 0) == 0

    assert daemon.post(shipped_event(1)).status_code == 202
    assert daemon.post(shipped_event(2)).status_code == 202
    assert httpx.post(f"{daemon.url}/webhooks/carebot", content=b"{}").status_code == 401
    assert wait_until(lambda: _scrape(daemon.url).get(sent) == 2, timeout=5)

    after = _scrape(daemon.url)
    assert after[accepted] == 2
    assert after[refused] == 1
    assert after[latency] == 2
    assert after[("carebot_queue_depth", ())] == 0
