"""The built-in Spring Festival calendar and the merging of disruption sources."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from carebot.disruptions import CalendarOptions, active_disruptions, spring_festival, window_of
from carebot.exceptions import RuleError
from carebot.rulebook.loader import load_rulebook_text
from carebot.rulebook.schema import Disruption, Region, Rulebook


def _library_days(year: int) -> list[date]:
    return sorted(
        holidays.country_holidays("CN", years=year, language="en_US").get_named("Chinese New Year")
    )


@pytest.mark.parametrize("year", [2026, 2027, 2030])
def test_the_spring_festival_window_surrounds_the_holiday_librarys_new_year(year: int) -> None:
    days = _library_days(year)
    pause = spring_festival(year)
    assert pause.start == days[0] - timedelta(days=7)
    assert pause.end == days[-1] + timedelta(days=7)
    assert pause.regions == [Region(country="CN")]


def test_the_spring_festival_moves_between_years_as_the_lunar_calendar_does() -> None:
    assert spring_festival(2026).start != spring_festival(2027).start.replace(year=2026)


def test_days_before_and_after_the_spring_festival_are_configurable() -> None:
    days = _library_days(2027)
    pause = spring_festival(2027, CalendarOptions(days_before=3, days_after=10))
    assert (pause.start, pause.end) == (
        days[0] - timedelta(days=3),
        days[-1] + timedelta(days=10),
    )


SUMMIT = Disruption(
    id="summit",
    title="峰会",
    regions=[Region(city="杭州市")],
    start=date(2026, 12, 10),
    end=date(2026, 12, 20),
)


def test_active_disruptions_combine_rules_calendars_and_declarations() -> None:
    rulebook = Rulebook(disruptions=(SUMMIT,), calendars=("cn-spring-festival",))
    typhoon = {"id": "typhoon", "title": "台风", "start": "2026-12-01", "end": "2026-12-02"}
    found = active_disruptions(rulebook, [typhoon], today=date(2026, 11, 23))
    ids = [d.id for d in found]
    assert ids == ["typhoon", "summit", "cn-spring-festival-2027"]


def test_a_later_declaration_with_the_same_id_ends_a_disruption_early() -> None:
    rulebook = Rulebook(disruptions=(SUMMIT,))
    ended = {**SUMMIT.model_dump(mode="json"), "end": "2026-12-12"}
    assert active_disruptions(rulebook, [ended], today=date(2026, 12, 11))[0].end == date(
        2026, 12, 12
    )
    assert active_disruptions(rulebook, [ended], today=date(2026, 12, 13)) == []


def test_a_withdrawn_or_malformed_declaration_changes_nothing_else() -> None:
    rulebook = Rulebook(disruptions=(SUMMIT,))
    withdrawn = {"id": "summit", "cancelled": True}
    malformed = {"id": "bad", "title": "x", "start": "2026-12-05", "end": "2026-12-01"}
    assert active_disruptions(rulebook, [withdrawn], today=date(2026, 12, 1)) == []
    assert [d.id for d in active_disruptions(rulebook, [malformed], today=date(2026, 12, 1))] == [
        "summit"
    ]


def test_a_disruption_window_is_read_in_the_customers_own_time_zone() -> None:
    shanghai = window_of(SUMMIT, ZoneInfo("Asia/Shanghai"))
    new_york = window_of(SUMMIT, ZoneInfo("America/New_York"))
    assert shanghai.start == datetime(2026, 12, 9, 16, 0, tzinfo=ZoneInfo("UTC"))
    assert shanghai.end == datetime(2026, 12, 20, 16, 0, tzinfo=ZoneInfo("UTC"))
    assert new_york.start - shanghai.start == timedelta(hours=13)


def test_the_window_counts_extra_transit_days_and_notice_from_local_midnight() -> None:
    slow = SUMMIT.model_copy(update={"extra_transit_days": 7, "notice_days": 10})
    window = window_of(slow, ZoneInfo("Asia/Shanghai"))
    assert window.normal_again == window.end + timedelta(days=7)
    assert window.notice_at() == datetime(2026, 11, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_an_unknown_calendar_name_is_a_located_problem_with_a_suggestion() -> None:
    with pytest.raises(RuleError) as caught:
        load_rulebook_text("calendars: [cn-spring-festivall]\n", path="rules/d.yaml")
    [problem] = caught.value.problems
    assert (problem.path, problem.line) == ("rules/d.yaml", 1)
    assert "did you mean 'cn-spring-festival'" in problem.message
    assert load_rulebook_text("calendars: [cn-spring-festival]\n").calendars == (
        "cn-spring-festival",
    )
