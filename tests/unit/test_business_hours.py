"""Business hours: deadlines counted in working time, days off and holidays skipped."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from carebot.business_hours import BusinessHours, parse_days
from carebot.cases import parse_answer

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(day: int, hour: int, month: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def test_working_time_runs_over_the_weekend_into_monday() -> None:
    hours = BusinessHours()
    assert hours.add(at(4, 17), timedelta(hours=4)) == at(7, 12)  # Friday 17:00 → Monday 12:00


def test_a_start_before_opening_counts_from_opening() -> None:
    assert BusinessHours().add(at(2, 7), timedelta(hours=1)) == at(2, 10)


def test_chinese_public_holidays_are_days_off_when_asked() -> None:
    national_day_eve = datetime(2026, 9, 30, 17, 0, tzinfo=SHANGHAI)
    with_holidays = BusinessHours(holiday_country="CN").add(national_day_eve, timedelta(hours=4))
    without = BusinessHours().add(national_day_eve, timedelta(hours=4))
    assert without == datetime(2026, 10, 1, 12, 0, tzinfo=SHANGHAI)
    assert with_holidays.astimezone(SHANGHAI).date() > datetime(2026, 10, 7).date()


def test_always_counts_round_the_clock() -> None:
    always = BusinessHours(hours="always", days=parse_days("mon-sun"))
    assert always.add(at(5, 23, minute=30), timedelta(hours=1)) == at(6, 0, minute=30)


def test_business_days_are_read_as_ranges_and_lists() -> None:
    assert parse_days("mon-fri") == frozenset(range(5))
    assert parse_days("sat,sun") == frozenset({5, 6})
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    with pytest.raises(ValueError, match="mon, tue"):
        parse_days("weekdays")


@pytest.mark.parametrize(
    ("text", "score", "expected"),
    [
        ("5", 5, True),
        ("4分", 4, True),
        ("3", 3, False),
        ("是的，解决了", None, True),
        ("还没有解决", None, False),
        ("不满意", None, False),
        ("yes thanks", None, True),
        ("no", None, False),
        ("什么时候发货", None, None),
    ],
)
def test_the_answer_to_was_it_put_right(
    text: str, score: int | None, expected: bool | None
) -> None:
    assert parse_answer(text, score) is expected
