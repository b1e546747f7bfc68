"""The replay reports its progress to a callback, ending with every event replayed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from support.core import MESSAGE_TEMPLATES, RULES

from carebot.events import parse_event
from carebot.settings import Settings
from carebot.simulate import simulate


async def test_progress_is_reported_in_steps_and_once_at_the_end() -> None:
    start = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    events = [
        parse_event(
            {
                "id": f"evt-{n}",
                "type": "order.placed",
                "occurred_at": (start + timedelta(minutes=n)).isoformat(),
                "order": {"id": str(n)},
            }
        )
        for n in range(250)
    ]
    settings = Settings(rules_dir=RULES, templates_dir=MESSAGE_TEMPLATES, quiet_hours="none")
    calls: list[tuple[int, int]] = []
    await simulate(
        events, settings=settings, progress=lambda done, total: calls.append((done, total))
    )
    assert calls[-1] == (250, 250)
    assert calls[0] == (2, 250)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) <= 130
