"""A disruption declared through the webhook warns the parcels it catches at once, not at the
watchers' next interval (10 minutes by default)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .conftest import shipped_event, wait_until

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _at_risk(daemon: Any) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = daemon.query(
        "select order_id, status from notifications where rule_id = 'shipment-at-risk'"
    )
    return rows


def test_a_declared_disruption_schedules_the_at_risk_warning_within_a_tick(
    daemon_factory: Any,
) -> None:
    daemon = daemon_factory(CAREBOT_WATCHERS__INTERVAL_MINUTES="10")
    daemon.start()
    today = datetime.now(UTC).astimezone(SHANGHAI).date()
    parcel = shipped_event(2001)
    parcel["shipment"]["expected_delivery"] = (today + timedelta(days=3)).isoformat()
    assert daemon.post(parcel).status_code == 202
    # The scan at start has run and found nothing: no disruption yet.
    time.sleep(1.5)
    assert _at_risk(daemon) == []

    declared = {
        "id": "evt-typhoon",
        "type": "disruption.declared",
        "occurred_at": datetime.now(UTC).isoformat(),
        "disruption": {
            "id": "typhoon-hangzhou",
            "title": "台风过境杭州",
            "regions": [{"country": "CN", "city": "杭州市"}],
            "start": (today + timedelta(days=1)).isoformat(),
            "end": (today + timedelta(days=4)).isoformat(),
            "extra_transit_days": 3,
            "notice_days": 2,
        },
    }
    declared_at = time.monotonic()
    assert daemon.post(declared).status_code == 202
    # One dispatch tick is 1 s; a loaded CI machine gets a few more.
    assert wait_until(lambda: _at_risk(daemon) != [], timeout=5.0), daemon.stdout()
    assert time.monotonic() - declared_at < 5.0
    [(order_id, status)] = _at_risk(daemon)
    assert order_id == "2001" and status in ("scheduled", "claimed", "sending", "sent", "delivered")
