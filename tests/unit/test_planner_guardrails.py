"""Planner guardrails: the zone from the shipping country, and the fallback address that a
``preferred`` notice carries for dispatch."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from test_planner import (  # type: ignore[import-not-found]  # a sibling test module
    EMAIL,
    PHONE,
    facts,
    plan_one,
    rule,
)

BERLIN = ZoneInfo("Europe/Berlin")


def test_with_no_zone_and_no_phone_the_shipping_country_sets_the_zone_and_quiet_hours() -> None:
    evening = datetime(2026, 11, 20, 22, 30, tzinfo=BERLIN)
    [planned] = plan_one(
        [rule(send={"channel": "email", "template": "shipped"})],
        evening,
        the_facts=facts(phone=None, timezone=None, country="DE"),
    )
    assert planned.timezone == "Europe/Berlin"
    assert planned.due_at == datetime(2026, 11, 21, 9, 0, tzinfo=BERLIN).astimezone(UTC)


def test_a_national_number_is_read_in_the_shipping_countrys_region() -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    [planned] = plan_one([rule()], at, the_facts=facts(phone="138 0013 8000", timezone=None))
    assert (planned.recipient, planned.timezone) == (PHONE, "Asia/Shanghai")


@pytest.mark.parametrize(
    ("phone", "email", "expected"),
    [
        pytest.param(PHONE, EMAIL, ("sms", PHONE, EMAIL), id="sms-first-email-to-fall-back-on"),
        pytest.param(PHONE, None, ("sms", PHONE, None), id="sms-only"),
        pytest.param("12345", EMAIL, ("email", EMAIL, None), id="invalid-phone-email-only"),
        pytest.param(PHONE, "not-an-email", ("sms", PHONE, None), id="invalid-email-ignored"),
    ],
)
def test_a_preferred_notice_carries_the_other_channels_address_for_fallback(
    phone: str, email: str | None, expected: tuple[str, str, str | None]
) -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    [planned] = plan_one(
        [rule(send={"channel": "preferred", "template": "shipped"})],
        at,
        the_facts=facts(phone=phone, email=email),
    )
    assert (planned.channel, planned.recipient, planned.fallback_recipient) == expected


def test_sms_plus_email_rows_carry_no_fallback_because_both_channels_are_planned() -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    planned = plan_one([rule(send={"channel": "sms+email", "template": "shipped"})], at)
    assert [(p.channel, p.fallback_recipient) for p in planned] == [("sms", None), ("email", None)]
