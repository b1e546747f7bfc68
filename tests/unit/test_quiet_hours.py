"""Default quiet hours (21:00-09:00 local) in zones the DST and date-line tests elsewhere miss:
southern-hemisphere and half-hour DST changes, Europe's, and Samoa's skipped day."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from carebot.rulebook.windows import next_allowed, parse_window

# CAREBOT_QUIET_HOURS' default, as the hours one may send in.
QUIET = parse_window("21:00-09:00").inverse()
Moment = tuple[int, int, int, int, int]


def wall(moment: Moment) -> datetime:
    year, month, day, hour, minute = moment
    return datetime(year, month, day, hour, minute)


@pytest.mark.parametrize(
    ("zone", "held_at", "sent_at"),
    [
        pytest.param(
            "America/Los_Angeles",
            (2026, 11, 20, 22, 30),
            (2026, 11, 21, 9, 0),
            id="la-evening-shipment-waits-for-nine-pacific",
        ),
        pytest.param(
            "Europe/Berlin",
            (2026, 3, 28, 23, 0),
            (2026, 3, 29, 9, 0),  # CEST began at 02:00 that night
            id="europe-spring-forward",
        ),
        pytest.param(
            "Europe/Berlin",
            (2026, 10, 24, 21, 15),
            (2026, 10, 25, 9, 0),  # CET again since 03:00
            id="europe-fall-back",
        ),
        pytest.param(
            "Australia/Sydney",
            (2026, 10, 3, 22, 0),
            (2026, 10, 4, 9, 0),  # AEDT began at 02:00 on 4 October
            id="southern-spring-forward-sydney",
        ),
        pytest.param(
            "Australia/Sydney",
            (2026, 4, 4, 21, 30),
            (2026, 4, 5, 9, 0),  # AEST again since 03:00 on 5 April
            id="southern-fall-back-sydney",
        ),
        pytest.param(
            "Australia/Lord_Howe",
            (2026, 10, 3, 23, 0),
            (2026, 10, 4, 9, 0),  # a half-hour DST change at 02:00
            id="half-hour-dst-lord-howe",
        ),
        pytest.param(
            "America/Santiago",
            (2026, 9, 5, 22, 0),
            (2026, 9, 6, 9, 0),  # Chile springs forward at midnight: 00:00 never happens
            id="midnight-spring-forward-santiago",
        ),
        pytest.param(
            "Asia/Kolkata",
            (2026, 6, 1, 3, 0),
            (2026, 6, 1, 9, 0),
            id="half-hour-offset-small-hours",
        ),
        pytest.param(
            "Pacific/Chatham",
            (2026, 6, 1, 21, 0),
            (2026, 6, 2, 9, 0),
            id="quarter-hour-offset-at-the-start-of-quiet-hours",
        ),
    ],
)
def test_a_message_due_in_quiet_hours_goes_at_nine_local_the_next_allowed_morning(
    zone: str, held_at: Moment, sent_at: Moment
) -> None:
    tz = ZoneInfo(zone)
    result = next_allowed(wall(held_at).replace(tzinfo=tz), tz, [QUIET])
    assert result.astimezone(tz).replace(tzinfo=None) == wall(sent_at)


def test_samoa_skipped_30_december_2011_so_the_morning_after_the_29th_is_the_31st() -> None:
    apia = ZoneInfo("Pacific/Apia")
    evening = datetime(2011, 12, 29, 22, 0, tzinfo=apia)  # UTC-10 then; UTC+14 next day
    result = next_allowed(evening, apia, [QUIET]).astimezone(apia)
    assert (result.date().isoformat(), result.hour) == ("2011-12-31", 9)
    # 22:00 at UTC-10 to 09:00 at UTC+14 is eleven hours of real time, not a day and a half.
    assert result.astimezone(UTC) - evening.astimezone(UTC) == timedelta(hours=11)


def test_quiet_hours_are_parsed_once_from_the_settings_and_none_turns_them_off() -> None:
    from carebot.rulebook.windows import DailyWindow
    from carebot.settings import Settings

    assert Settings(quiet_hours="22:30-08:00").quiet_hours == DailyWindow(time(22, 30), time(8))
    assert Settings(quiet_hours="None").quiet_hours is None
    with pytest.raises(ValueError, match="not HH:MM-HH:MM"):
        Settings(quiet_hours="late")
