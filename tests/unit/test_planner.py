"""The planner: one event and what the store knows → what to send, to whom, when; what to cancel."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carebot.events import Event, parse_event
from carebot.facts import Facts, OrderFacts
from carebot.notifications import NotificationStatus, PlannedNotification
from carebot.planning import Cancellation, Planner, PlanningPolicy
from carebot.rulebook.schema import ProductProfile, Rule, Rulebook

SHANGHAI = ZoneInfo("Asia/Shanghai")
LA = ZoneInfo("America/Los_Angeles")
PHONE = "+8613800138000"
EMAIL = "wang@example.com"


def rule(**fields: Any) -> Rule:
    values: dict[str, Any] = {
        "id": "shipped",
        "on": "order.shipped",
        "send": {"channel": "sms", "template": "shipped"},
    }
    values.update(fields)
    return Rule(**values)


def event(occurred_at: datetime, *, type: str = "order.shipped", event_id: str = "evt-1") -> Event:
    return parse_event(
        {
            "id": event_id,
            "type": type,
            "occurred_at": occurred_at.isoformat(),
            "order": {"id": "1001"},
            "shipment": {"id": "s-1"},
        }
    )


def facts(
    *,
    phone: str | None = PHONE,
    email: str | None = EMAIL,
    timezone: str | None = "Asia/Shanghai",
    country: str | None = "CN",
    tracking_number: str | None = "SF1234567890",
    items: list[dict[str, Any]] | None = None,
) -> Facts:
    return Facts(
        order={"id": "1001", "status": "shipped", "total": "358.00", "currency": "CNY"},
        customer={
            "id": "c-42",
            "name": "王芳",
            "phone": phone,
            "email": email,
            "locale": "zh-CN",
            "timezone": timezone,
        },
        shipping_address={"country": country} if country else {},
        shipment={"id": "s-1", "carrier": "SF Express", "tracking_number": tracking_number},
        shipments=[{"id": "s-1", "status": "in_transit"}],
        items=items
        if items is not None
        else [{"sku": "MILK-900G", "title": "婴儿配方奶粉 900g", "quantity": 2, "tags": []}],
    )


def plan_one(
    rules: list[Rule] | Rulebook,
    occurred_at: datetime,
    *,
    the_facts: Facts | None = None,
    policy: PlanningPolicy | None = None,
    type: str = "order.shipped",
) -> list[PlannedNotification]:
    rulebook = rules if isinstance(rules, Rulebook) else Rulebook(rules=tuple(rules))
    planner = Planner(policy=policy or PlanningPolicy())
    plan = planner.plan(
        event(occurred_at, type=type),
        the_facts or facts(),
        rulebook=rulebook,
        now=occurred_at.astimezone(UTC),
    )
    return plan.notifications


def test_a_three_day_delay_is_due_three_days_later_at_the_same_local_time() -> None:
    shipped_at = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
    [planned] = plan_one([rule(delay="3d")], shipped_at)
    assert planned.due_at == datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
    assert planned.due_at.tzinfo is UTC
    assert planned.status == NotificationStatus.SCHEDULED
    assert planned.timezone == "Asia/Shanghai"
    # not_after follows the rule's expires_after (2d by default) from the due time
    assert planned.not_after == planned.due_at + timedelta(days=2)


def test_a_delay_landing_in_quiet_hours_is_held_to_nine_the_next_morning() -> None:
    shipped_at = datetime(2026, 11, 20, 19, 0, tzinfo=SHANGHAI)
    [planned] = plan_one([rule(delay="3h")], shipped_at)  # 22:00 local
    assert planned.due_at == datetime(2026, 11, 21, 9, 0, tzinfo=SHANGHAI)
    assert any("held to 2026-11-21 09:00" in why for why in planned.why)


def test_quiet_hours_none_sends_at_the_computed_time_even_late_at_night() -> None:
    shipped_at = datetime(2026, 11, 20, 19, 0, tzinfo=SHANGHAI)
    [planned] = plan_one([rule(delay="3h")], shipped_at, policy=PlanningPolicy(quiet_hours=None))
    assert planned.due_at == datetime(2026, 11, 20, 22, 0, tzinfo=SHANGHAI)
    assert not any("held" in why for why in planned.why)


def test_a_computed_delay_uses_the_largest_follow_up_days_of_the_matching_product_profiles() -> (
    None
):
    rulebook = Rulebook(
        rules=(
            rule(
                id="follow-up",
                on="order.delivered",
                delay="{{ items | map(attribute='follow_up_days') | max }}d",
            ),
        ),
        products=(
            ProductProfile(match={"sku": "MILK-*"}, follow_up_days=5),
            ProductProfile(match={"tag": "diapers"}, follow_up_days=3),
        ),
    )
    items = [
        {"sku": "MILK-900G", "title": "奶粉", "quantity": 1, "tags": []},
        {"sku": "DIAPER-L", "title": "纸尿裤", "quantity": 1, "tags": ["diapers"]},
    ]
    delivered_at = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
    [planned] = plan_one(
        rulebook, delivered_at, the_facts=facts(items=items), type="order.delivered"
    )
    assert planned.due_at == datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
    assert [item["follow_up_days"] for item in planned.context["items"]] == [5, 3]


@pytest.mark.parametrize(
    ("phone", "email", "channel", "recipient"),
    [
        pytest.param(PHONE, EMAIL, "sms", PHONE, id="valid-phone-gets-sms"),
        pytest.param("13800138000", EMAIL, "sms", PHONE, id="national-number-made-e164"),
        pytest.param("12345", EMAIL, "email", EMAIL, id="invalid-phone-falls-back-to-email"),
        pytest.param(None, EMAIL, "email", EMAIL, id="no-phone-gets-email"),
    ],
)
def test_preferred_sends_sms_to_a_valid_phone_and_email_otherwise(
    phone: str | None, email: str, channel: str, recipient: str
) -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
    send = {"channel": "preferred", "template": "shipped"}
    [planned] = plan_one([rule(send=send)], at, the_facts=facts(phone=phone, email=email))
    assert (planned.channel, planned.recipient) == (channel, recipient)
    assert planned.status == NotificationStatus.SCHEDULED
    assert planned.dedupe_key == "order:1001:shipped:preferred"


def test_preferred_with_neither_a_valid_phone_nor_email_plans_a_failed_notification() -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
    send = {"channel": "preferred", "template": "shipped"}
    [planned] = plan_one(
        [rule(send=send)], at, the_facts=facts(phone="12345", email="not-an-address")
    )
    assert planned.status == NotificationStatus.FAILED
    assert planned.recipient is None
    assert planned.reason is not None and "no valid" in planned.reason


def test_sms_plus_email_plans_two_notifications_with_distinct_dedupe_keys() -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
    send = {"channel": "sms+email", "template": "shipped"}
    planned = plan_one([rule(send=send)], at)
    assert sorted((p.channel, p.recipient) for p in planned) == [("email", EMAIL), ("sms", PHONE)]
    assert len({p.dedupe_key for p in planned}) == 2


@pytest.mark.parametrize(
    ("once_per", "expected"),
    [
        ("order", "order:1001:shipped:sms"),
        ("shipment", "shipment:s-1:shipped:sms"),
        ("event", "event:carebot:evt-1:shipped:sms"),
        ("customer", "customer:c-42:shipped:sms"),
        (None, "order:1001:shipped:sms"),  # an order.* event defaults to the order
    ],
)
def test_the_dedupe_key_names_the_scope_the_rule_fires_once_per(
    once_per: str | None, expected: str
) -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
    [planned] = plan_one([rule(once_per=once_per)], at)
    assert planned.dedupe_key == expected


@pytest.mark.parametrize(("tracking_number", "count"), [("SF1234567890", 1), (None, 0), ("", 0)])
def test_a_rule_whose_condition_is_false_plans_nothing(
    tracking_number: str | None, count: int
) -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
    planned = plan_one(
        [rule(when="shipment.tracking_number")],
        at,
        the_facts=facts(tracking_number=tracking_number),
    )
    assert len(planned) == count


@pytest.mark.parametrize(
    ("phone", "zone"),
    [("+8613800138000", "Asia/Shanghai"), ("+1 415 555 0123", "America/Los_Angeles")],
)
def test_a_customer_without_a_time_zone_is_planned_in_the_zone_of_their_phone_number(
    phone: str, zone: str
) -> None:
    # A default zone that matches neither, so the phone number must be what decides.
    policy = PlanningPolicy(default_timezone="Europe/London", quiet_hours=None)
    at = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    [planned] = plan_one(
        [rule()], at, the_facts=facts(phone=phone, timezone=None, country=None), policy=policy
    )
    assert planned.timezone == zone


def test_a_customer_with_no_zone_no_phone_and_no_country_gets_the_default_zone() -> None:
    policy = PlanningPolicy(default_timezone="Europe/London")
    at = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    send = {"channel": "email", "template": "shipped"}
    the_facts = facts(phone=None, timezone=None, country=None)
    [planned] = plan_one([rule(send=send)], at, the_facts=the_facts, policy=policy)
    assert planned.timezone == "Europe/London"


def test_quiet_hours_are_kept_in_the_zone_implied_by_the_phone_number() -> None:
    # 18:00 UTC is 02:00 in Shanghai but 10:00 in Los Angeles.
    at = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    [us] = plan_one([rule()], at, the_facts=facts(phone="+14155550123", timezone=None))
    [cn] = plan_one([rule()], at, the_facts=facts(phone=PHONE, timezone=None))
    assert us.due_at == at
    assert cn.due_at == datetime(2026, 11, 21, 9, 0, tzinfo=SHANGHAI)


def test_an_event_named_in_cancel_on_cancels_that_rules_notifications_for_the_order() -> None:
    rulebook = Rulebook(rules=(rule(cancel_on=["order.paid", "order.delivered"]),))
    paid = event(datetime(2026, 11, 20, 11, 0, tzinfo=SHANGHAI), type="order.paid")
    plan = Planner(policy=PlanningPolicy()).plan(
        paid, facts(), rulebook=rulebook, now=paid.occurred_at
    )
    assert plan.notifications == []
    assert plan.cancellations == [
        Cancellation(
            order_id="1001",
            shipment_id=None,
            rule_ids=("shipped",),
            reason="cancelled by order.paid (evt-1)",
        )
    ]


def test_an_event_not_named_in_cancel_on_cancels_nothing() -> None:
    rulebook = Rulebook(rules=(rule(cancel_on=["order.paid"]),))
    delivered = event(datetime(2026, 11, 20, 11, 0, tzinfo=SHANGHAI), type="order.delivered")
    plan = Planner(policy=PlanningPolicy()).plan(
        delivered, facts(), rulebook=rulebook, now=delivered.occurred_at
    )
    assert plan.cancellations == []


@pytest.mark.parametrize("kind", ["order.cancelled", "order.refunded"])
def test_a_cancelled_or_refunded_order_cancels_every_pending_customer_message_whatever_cancel_on(
    kind: str,
) -> None:
    rulebook = Rulebook(rules=(rule(cancel_on=[]),))
    ended = event(datetime(2026, 11, 20, 11, 0, tzinfo=SHANGHAI), type=kind)
    plan = Planner(policy=PlanningPolicy()).plan(
        ended, facts(), rulebook=rulebook, now=ended.occurred_at
    )
    assert plan.cancellations == [
        Cancellation(
            order_id="1001",
            shipment_id=None,
            rule_ids=None,
            reason=f"order {kind.split('.')[1]}: {kind} (evt-1)",
            customer_only=True,
        )
    ]


def test_a_cancelled_order_gets_no_new_customer_message_from_a_late_event() -> None:
    rulebook = Rulebook(rules=(rule(on=["shipment.updated"]),))
    update = event(datetime(2026, 11, 20, 11, 0, tzinfo=SHANGHAI), type="shipment.updated")
    cancelled = replace(facts(), order=OrderFacts(id="1001", status="cancelled"))
    plan = Planner(policy=PlanningPolicy()).plan(
        update, cancelled, rulebook=rulebook, now=update.occurred_at
    )
    assert plan.notifications == []


def test_delays_are_elapsed_time_so_a_day_across_spring_forward_lands_an_hour_later_locally() -> (
    None
):
    # 2026-03-07 10:00 PST + 24 hours = 2026-03-08 11:00 PDT: clocks sprang forward overnight.
    occurred = datetime(2026, 3, 7, 10, 0, tzinfo=LA)
    [planned] = plan_one(
        [rule(delay="1d")], occurred, the_facts=facts(phone="+14155550123", timezone=None)
    )
    assert planned.timezone == "America/Los_Angeles"
    assert planned.due_at - occurred == timedelta(hours=24)
    local = planned.due_at.astimezone(LA)
    assert (local.date().isoformat(), local.hour, local.minute) == ("2026-03-08", 11, 0)


def test_a_delay_already_past_is_due_now_not_in_the_past() -> None:
    occurred = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
    now = occurred + timedelta(hours=5)
    plan = Planner(policy=PlanningPolicy()).plan(
        event(occurred), facts(), rulebook=Rulebook(rules=(rule(delay="1h"),)), now=now
    )
    [planned] = plan.notifications
    assert planned.due_at == now


def test_an_absurdly_long_delay_skips_the_rule_instead_of_failing_the_event() -> None:
    rule = Rule(id="far", on=["order.shipped"], delay="9999999d", send={"template": "shipped"})
    plan = Planner(policy=PlanningPolicy()).plan(
        _absurd_event(), Facts(order={"id": "1"}), rulebook=Rulebook(rules=(rule,)), now=_NOW
    )
    assert plan.notifications == []


_NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def _absurd_event() -> Event:
    return parse_event(
        {"id": "e", "type": "order.shipped", "occurred_at": _NOW.isoformat(), "order": {"id": "1"}}
    )


def test_preferred_uses_email_when_the_number_opted_out_of_sms() -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
    send = {"channel": "preferred", "template": "shipped"}
    plan = Planner(policy=PlanningPolicy()).plan(
        event(at),
        facts(),
        rulebook=Rulebook(rules=(rule(send=send),)),
        now=at,
        opted_out=lambda channel, address: (channel, address) == ("sms", PHONE),
    )
    [planned] = plan.notifications
    assert (planned.channel, planned.recipient) == ("email", EMAIL)


def test_preferred_still_plans_sms_when_every_channel_opted_out_so_dispatch_says_why() -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
    send = {"channel": "preferred", "template": "shipped"}
    plan = Planner(policy=PlanningPolicy()).plan(
        event(at),
        facts(),
        rulebook=Rulebook(rules=(rule(send=send),)),
        now=at,
        opted_out=lambda channel, address: True,
    )
    [planned] = plan.notifications
    assert (planned.channel, planned.status) == ("sms", NotificationStatus.SCHEDULED)


def test_an_email_address_with_a_control_character_is_refused_at_ingest_with_the_reason() -> None:
    at = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
    send = {"channel": "email", "template": "shipped"}
    [planned] = plan_one(
        [rule(send=send)], at, the_facts=facts(phone=None, email="wang\r\nBcc: x@evil.example")
    )
    assert planned.status == NotificationStatus.FAILED and planned.recipient is None
    assert planned.reason == (
        "no valid email address: the email address contains control characters"
    )
