"""Daily windows and durations: the pure time arithmetic under every due time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from carebot.rulebook.windows import DailyWindow, next_allowed, parse_duration, parse_window

LA = ZoneInfo("America/Los_Angeles")
SHANGHAI = ZoneInfo("Asia/Shanghai")
KIRITIMATI = ZoneInfo("Pacific/Kiritimati")
PAGO_PAGO = ZoneInfo("Pacific/Pago_Pago")

# The default quiet hours 21:00-09:00, as the hours one may send in.
DAYTIME = parse_window("21:00-09:00").inverse()


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("local", "zone", "windows", "expected"),
    [
        pytest.param(
            datetime(2026, 6, 1, 12, 0, tzinfo=SHANGHAI),
            SHANGHAI,
            [DAYTIME],
            utc(2026, 6, 1, 4, 0),
            id="inside-the-window-unchanged",
        ),
        pytest.param(
            datetime(2026, 3, 7, 22, 30, tzinfo=LA),
            LA,
            [DAYTIME],
            utc(2026, 3, 8, 16, 0),  # 09:00 PDT (UTC-7) the morning after spring-forward
            id="across-us-spring-forward",
        ),
        pytest.param(
            datetime(2026, 10, 31, 22, 30, tzinfo=LA),
            LA,
            [DAYTIME],
            utc(2026, 11, 1, 17, 0),  # 09:00 PST (UTC-8) the morning after fall-back
            id="across-us-fall-back",
        ),
        pytest.param(
            datetime(2026, 6, 1, 8, 30, tzinfo=SHANGHAI),
            SHANGHAI,
            [DAYTIME],
            utc(2026, 6, 1, 1, 0),
            id="early-morning-waits-for-nine-the-same-day",
        ),
        pytest.param(
            datetime(2026, 6, 1, 12, 0, tzinfo=SHANGHAI),
            SHANGHAI,
            [parse_window("22:00-06:00")],
            utc(2026, 6, 1, 14, 0),
            id="wrapping-window-opens-in-the-evening",
        ),
        pytest.param(
            datetime(2026, 6, 2, 3, 0, tzinfo=SHANGHAI),
            SHANGHAI,
            [parse_window("22:00-06:00")],
            utc(2026, 6, 1, 19, 0),
            id="wrapping-window-contains-the-small-hours",
        ),
        pytest.param(
            datetime(2026, 6, 2, 6, 0, tzinfo=SHANGHAI),
            SHANGHAI,
            [parse_window("22:00-06:00")],
            utc(2026, 6, 2, 14, 0),
            id="wrapping-window-end-is-exclusive",
        ),
        pytest.param(
            datetime(2026, 6, 1, 9, 30, tzinfo=SHANGHAI),
            SHANGHAI,
            [DAYTIME, parse_window("10:00-20:00")],
            utc(2026, 6, 1, 2, 0),
            id="intersection-opens-at-the-later-start",
        ),
        pytest.param(
            datetime(2026, 6, 1, 20, 30, tzinfo=SHANGHAI),
            SHANGHAI,
            [DAYTIME, parse_window("10:00-20:00")],
            utc(2026, 6, 2, 2, 0),
            id="intersection-closed-in-the-evening-waits-for-tomorrow",
        ),
        pytest.param(
            datetime(2026, 6, 1, 15, 0, tzinfo=SHANGHAI),
            SHANGHAI,
            [DAYTIME, parse_window("10:00-20:00")],
            utc(2026, 6, 1, 7, 0),
            id="intersection-inside-unchanged",
        ),
        pytest.param(
            utc(2026, 6, 1, 8, 0),  # 22:00 on 1 June in Kiritimati (UTC+14)
            KIRITIMATI,
            [DAYTIME],
            utc(2026, 6, 1, 19, 0),  # 09:00 on 2 June there
            id="date-line-kiritimati",
        ),
        pytest.param(
            utc(2026, 6, 1, 8, 0),  # 21:00 on 31 May in Pago Pago (UTC-11)
            PAGO_PAGO,
            [DAYTIME],
            utc(2026, 6, 1, 20, 0),  # 09:00 on 1 June there
            id="date-line-pago-pago",
        ),
        pytest.param(
            # 01:10 PST, the second time the clock shows 01:10 on fall-back night (09:10 UTC).
            utc(2026, 11, 1, 9, 10),
            LA,
            [parse_window("01:30-03:00")],
            utc(2026, 11, 1, 9, 30),  # 01:30 PST, twenty minutes later
            id="repeated-fall-back-hour-moves-forward-not-back",
        ),
    ],
)
def test_next_allowed_is_the_first_instant_whose_local_time_is_in_every_window(
    local: datetime, zone: ZoneInfo, windows: list[DailyWindow], expected: datetime
) -> None:
    result = next_allowed(local, zone, windows)
    assert result == expected
    assert result.tzinfo is UTC
    assert result >= local


def test_the_same_instant_gives_different_local_mornings_on_either_side_of_the_date_line() -> None:
    instant = utc(2026, 6, 1, 8, 0)
    east = next_allowed(instant, KIRITIMATI, [DAYTIME]).astimezone(KIRITIMATI)
    west = next_allowed(instant, PAGO_PAGO, [DAYTIME]).astimezone(PAGO_PAGO)
    assert (east.date().isoformat(), east.time()) == ("2026-06-02", time(9, 0))
    assert (west.date().isoformat(), west.time()) == ("2026-06-01", time(9, 0))


def test_a_window_starting_inside_the_spring_forward_gap_opens_once_the_clock_has_jumped() -> None:
    # On 2026-03-08 Los Angeles clocks jump from 02:00 PST to 03:00 PDT: 02:30 never happens.
    window = parse_window("02:30-05:00")
    instant = datetime(2026, 3, 8, 0, 0, tzinfo=LA)
    result = next_allowed(instant, LA, [window])
    local = result.astimezone(LA)
    assert result > instant
    assert local.date().isoformat() == "2026-03-08"
    assert window.contains(local.time())
    assert local.utcoffset() == timedelta(hours=-7)


def test_no_windows_means_any_time_and_the_answer_is_in_utc() -> None:
    instant = datetime(2026, 6, 1, 23, 0, tzinfo=SHANGHAI)
    result = next_allowed(instant, SHANGHAI, [])
    assert result == instant
    assert result.tzinfo is UTC


def test_windows_that_never_overlap_are_refused() -> None:
    with pytest.raises(ValueError, match="never overlap"):
        next_allowed(
            utc(2026, 6, 1, 0, 0),
            SHANGHAI,
            [parse_window("09:00-10:00"), parse_window("11:00-12:00")],
        )


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("09:00-21:00", time(9), time(21)),
        ("21:00-09:00", time(21), time(9)),
        (" 9:30 - 17:45 ", time(9, 30), time(17, 45)),
        ("22:00-24:00", time(22), time(0)),
    ],
)
def test_parse_window_reads_hh_mm_ranges(text: str, start: time, end: time) -> None:
    assert parse_window(text) == DailyWindow(start, end)


@pytest.mark.parametrize(
    "text",
    ["25:00-09:00", "09:60-10:00", "24:30-09:00", "09:00-09:00", "0900-1000", "09:00", "", "x"],
)
def test_parse_window_refuses_what_is_not_a_non_empty_hh_mm_range(text: str) -> None:
    with pytest.raises(ValueError, match="window"):
        parse_window(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3d", timedelta(days=3)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90m", timedelta(minutes=90)),
        ("0", timedelta(0)),
        ("36h", timedelta(hours=36)),
        ("2w", timedelta(weeks=2)),
        ("1.5d", timedelta(hours=36)),
        ("5.0d", timedelta(days=5)),  # what a computed delay over float profile facts renders
        ("3D", timedelta(days=3)),
    ],
)
def test_parse_duration_reads_compact_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["3 days", "", "   ", "d3", "3", "3dd", "-3d", "3d-1h", "1y", "three days", "99999999999d"],
)
def test_parse_duration_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
