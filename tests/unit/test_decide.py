"""The pure dispatch decision: one test (or a few) per guard, in the order they apply."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

import pytest

from carebot.channels.base import ChannelKind
from carebot.dispatch import decide as decision
from carebot.dispatch.decide import Decision, Finish, Guards, Hold, Merge, Policy, Send
from carebot.notifications import NotificationStatus as S
from carebot.rulebook.windows import DailyWindow
from carebot.store.schedule import Claimed

# 10:00 in Shanghai: inside the allowed hours (09:00-21:00).
NOW = datetime(2026, 11, 11, 2, 0, tzinfo=UTC)
QUIET = DailyWindow(time(21), time(9))
POLICY = Policy(send_window=QUIET.inverse(), caps={ChannelKind.SMS: 2, ChannelKind.EMAIL: 2})


@dataclass(frozen=True)
class Row:
    """The columns of a claimed row ``decide`` reads (see ``schedule.Claimed``)."""

    id: int = 1
    dedupe_key: str = "order:1:shipped:sms"
    rule_id: str = "shipped"
    channel: str = "sms"
    recipient: str | None = "+8613800138000"
    fallback_recipient: str | None = None
    template: str = "shipped"
    locale: str = "zh-CN"
    timezone: str = "Asia/Shanghai"
    window: str | None = None
    order_id: str | None = "1"
    customer_id: str | None = None
    shipment_id: str | None = None
    event_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    due_at: datetime = NOW
    not_after: datetime = NOW + timedelta(days=2)
    attempts: int = 0
    max_attempts: int = 6
    unexpected_failures: int = 0
    transactional: bool = False
    in_doubt: str = "resend"
    audience: str = "customer"
    body: str | None = None
    created_at: datetime = NOW


CLEAR: Guards = (False, [])


# ``Row`` stands in for ``schedule.Claimed`` (the columns decide reads), typed as one here.
def decide(row: Row, guards: Guards | None, now: datetime, policy: Policy) -> Decision:
    return decision.decide(cast("Claimed", row), guards, now, policy)


def needs_guards(row: Row, now: datetime) -> bool:
    return decision.needs_guards(cast("Claimed", row), now)


def test_a_row_that_passes_every_guard_is_sent() -> None:
    assert decide(Row(), CLEAR, NOW, POLICY) == Send()


def test_past_not_after_the_row_expires_before_anything_else() -> None:
    row = Row(not_after=NOW - timedelta(seconds=1), recipient=None)
    decision = decide(row, None, NOW, POLICY)
    assert isinstance(decision, Finish) and decision.status == S.EXPIRED
    assert not decision.fall_back
    assert not needs_guards(row, NOW)


@pytest.mark.parametrize(
    ("channel", "recipient"),
    [("sms", None), ("sms", "13800138000"), ("email", "not-an-address")],
)
def test_a_missing_or_invalid_address_fails_and_falls_back(
    channel: str, recipient: str | None
) -> None:
    row = Row(channel=channel, recipient=recipient)
    decision = decide(row, None, NOW, POLICY)
    assert isinstance(decision, Finish) and decision.status == S.FAILED
    assert decision.fall_back
    assert not needs_guards(row, NOW)


def test_an_sms_opt_out_suppresses_even_a_transactional_notice() -> None:
    for transactional in (False, True):
        decision = decide(Row(transactional=transactional), (True, []), NOW, POLICY)
        assert isinstance(decision, Finish) and decision.status == S.SUPPRESSED
        assert decision.fall_back


def test_a_transactional_email_overrides_an_email_opt_out() -> None:
    email = Row(channel="email", recipient="wang@example.com")
    suppressed = decide(email, (True, []), NOW, POLICY)
    assert isinstance(suppressed, Finish) and suppressed.status == S.SUPPRESSED
    assert decide(replace(email, transactional=True), (True, []), NOW, POLICY) == Send()


def test_quiet_hours_hold_until_the_customers_morning() -> None:
    night = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    decision = decide(Row(due_at=night), CLEAR, night, POLICY)
    assert isinstance(decision, Hold) and decision.outcome == "held"
    assert decision.until == datetime(2026, 11, 11, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    # The same instant is mid-morning in Berlin: no hold there.
    assert decide(Row(timezone="Europe/Berlin"), CLEAR, night, POLICY) == Send()


def test_a_hold_past_not_after_expires_instead() -> None:
    night = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
    row = Row(not_after=night + timedelta(hours=1))
    decision = decide(row, CLEAR, night, POLICY)
    assert isinstance(decision, Finish) and decision.status == S.EXPIRED


def test_the_rules_own_window_holds_too() -> None:
    decision = decide(Row(window="14:00-16:00"), CLEAR, NOW, POLICY)
    assert isinstance(decision, Hold)
    assert decision.until == datetime(2026, 11, 11, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai


def test_a_full_cap_asks_for_a_merge_else_defers_to_the_free_slot() -> None:
    sent = [NOW - timedelta(hours=5), NOW - timedelta(hours=1)]
    decision = decide(Row(), (False, sent), NOW, POLICY)
    assert isinstance(decision, Merge)
    # The oldest of the two ages out 24 h after it went: 21:00 in Shanghai is quiet, so the
    # free slot is the next morning's 09:00.
    assert decision.due_by == datetime(2026, 11, 12, 1, 0, tzinfo=UTC)
    assert isinstance(decision.otherwise, Hold)
    assert decision.otherwise.until == decision.due_by
    assert decision.otherwise.outcome == "deferred"


def test_a_full_cap_with_no_slot_before_not_after_expires_if_not_merged() -> None:
    sent = [NOW - timedelta(hours=5), NOW - timedelta(hours=1)]
    row = Row(not_after=NOW + timedelta(hours=3))
    decision = decide(row, (False, sent), NOW, POLICY)
    assert isinstance(decision, Merge)
    assert isinstance(decision.otherwise, Finish)
    assert decision.otherwise.status == S.EXPIRED


def test_under_the_cap_or_transactional_is_sent() -> None:
    one = [NOW - timedelta(hours=1)]
    assert decide(Row(), (False, one), NOW, POLICY) == Send()
    full = [NOW - timedelta(hours=2), NOW - timedelta(hours=1)]
    assert decide(Row(transactional=True), (False, full), NOW, POLICY) == Send()


def test_merchant_alerts_skip_consent_quiet_hours_and_caps() -> None:
    night = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
    alert = Row(channel="email", recipient="shop@example.com", audience="merchant")
    assert not needs_guards(alert, night)
    assert decide(alert, None, night, POLICY) == Send()


def test_a_customer_message_without_its_guards_is_a_programming_error() -> None:
    assert needs_guards(Row(), NOW)
    with pytest.raises(ValueError, match="guards"):
        decide(Row(), None, NOW, POLICY)
