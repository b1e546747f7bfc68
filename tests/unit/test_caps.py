"""The frequency cap's rolling 24-hour window, as a pure function of past send times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from carebot.dispatch.caps import next_free_slot

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("sent", "limit", "now", "expected"),
    [
        pytest.param([], 3, at(0), at(0), id="nothing-sent-send-now"),
        pytest.param([at(0), at(1)], 3, at(2), at(2), id="under-the-cap-send-now"),
        pytest.param([at(0), at(1), at(2)], 3, at(3), at(24), id="at-the-cap-wait-for-oldest"),
        pytest.param([at(2), at(0), at(1)], 3, at(3), at(24), id="order-of-input-does-not-matter"),
        pytest.param([at(0), at(1), at(2)], 3, at(24), at(24), id="oldest-aged-out-exactly"),
        pytest.param([at(0), at(1), at(2)], 3, at(23.99), at(24), id="a-moment-before-it-ages-out"),
        pytest.param([at(-30), at(1), at(2)], 3, at(3), at(3), id="older-than-24h-does-not-count"),
        pytest.param([at(0), at(1), at(2), at(3)], 3, at(4), at(25), id="over-the-cap-waits-more"),
        pytest.param([at(0)], 1, at(5), at(24), id="limit-one"),
        pytest.param([at(5)], 3, at(4), at(4), id="a-send-in-the-future-does-not-count"),
    ],
)
def test_next_free_slot(
    sent: list[datetime], limit: int, now: datetime, expected: datetime
) -> None:
    assert next_free_slot(sent, limit=limit, now=now) == expected


def test_sending_at_each_free_slot_never_puts_more_than_the_limit_in_any_24_hours() -> None:
    sent: list[datetime] = []
    now = T0
    for _ in range(20):
        now = next_free_slot(sent, limit=3, now=now)
        sent.append(now)
        now += timedelta(minutes=10)
    for start in sent:
        assert sum(start <= t < start + timedelta(hours=24) for t in sent) <= 3


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        next_free_slot([], limit=0, now=T0)
