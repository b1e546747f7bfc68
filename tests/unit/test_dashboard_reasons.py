"""Every reason carebot records reads in Chinese on the zh-CN pages, times in the shop's zone to
the minute; words it does not know keep their meaning but lose their English status ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from carebot.dispatch.dispatcher import ALREADY_SENT
from carebot.dispatch.retry import Failure, FailureKind, RetryPolicy, after_failure, deferral
from carebot.rulebook.loader import load_rulebook
from carebot.store import schedule
from carebot.web.dashboard.i18n import Names

RULES = Path(__file__).resolve().parents[2] / "rules"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 3, 0, 7, 123456, tzinfo=UTC)
STATUS_IDS = re.compile(
    r"\b(scheduled|claimed|sending|sent|delivered|undelivered|failed|expired|cancelled|"
    r"suppressed|in_transit|out_for_delivery|failed_attempt|available_for_pickup|exception|"
    r"damaged_in_transit|wrong_item)\b"
)
# Left as they are: names, codes, ids and the provider's own error text ("21211: invalid
# number", "circuit open"), a rule id, not carebot's words.
KEPT = {"Twilio", "CAREBOT_ALERTS__EMAIL", "invalid", "number", "circuit", "open", "evt", "shipped"}


def _retry(kind: FailureKind, attempt: int, not_after: datetime) -> str:
    return after_failure(
        notification_id=7,
        attempt=attempt,
        max_attempts=3,
        not_after=not_after,
        now=NOW,
        failure=Failure(kind, "21211: invalid number"),
        policy=RetryPolicy(base_seconds=30, max_seconds=300),
    ).reason


def recorded_reasons() -> list[str]:
    """Reasons as the dispatcher, the retry rule, the reaper, the planner and the holds write
    them (from the code where it is reachable without a database)."""
    later = NOW + timedelta(days=2)
    return [
        _retry(FailureKind.PERMANENT, 1, later),
        _retry(FailureKind.UNEXPECTED, 3, later),
        _retry(FailureKind.UNEXPECTED, 1, later),
        _retry(FailureKind.TRANSIENT, 1, later),
        _retry(FailureKind.TRANSIENT, 1, NOW),
        deferral(
            notification_id=7, wait_seconds=30, not_after=later, now=NOW, error="circuit open"
        ).reason,
        deferral(
            notification_id=7, wait_seconds=30, not_after=NOW, now=NOW, error="circuit open"
        ).reason,
        ALREADY_SENT,
        schedule.REAPED_LATE_CLAIM,
        schedule.REAPED_RESEND,
        schedule.REAPED_UNKNOWN,
        schedule.REAPED_LATE_SEND,
        schedule.REAPED_GAVE_UP,
        f"held for quiet hours until {NOW.isoformat()}",
        "held: the customer has an unhandled complaint (case 3, damaged_in_transit, "
        "opened 2026-12-01 03:00 UTC, order 1001)",
        "not sent: held: the customer has an unhandled complaint (case 3, wrong_item, "
        "opened 2026-12-01 03:00 UTC, order 1001)",
        "deferred by the frequency cap (3 sms per 24 h) until 2026-12-02 09:00",
        "not sent: the frequency cap (3 sms per 24 h) has no free slot before its not-after time",
        "recipient opted out of sms; falling back to email",
        "invalid sms address; not sent",
        "no email address",
        "merged into notification 12",
        "rule 'shipped' was removed",
        "order cancelled: order.cancelled (evt-9)",
        "shipment cancelled: shipment.updated (evt-9)",
        "cancelled by order.refunded (evt-9)",
        f"resent by dashboard at {NOW.isoformat()}",
        "Twilio reported undelivered (error 30003)",
        "no alerts address: set CAREBOT_ALERTS__EMAIL",
        "stale event: order.shipped occurred 2d 3h ago (2026-11-29T00:00:00+00:00), older "
        "than max_event_age 2d",
    ]


@pytest.fixture(scope="module")
def zh() -> Names:
    return Names(load_rulebook(RULES), "zh-CN", zone=SHANGHAI)


@pytest.mark.parametrize("text", recorded_reasons())
def test_each_recorded_reason_reads_in_chinese(zh: Names, text: str) -> None:
    shown = zh.reason(text)
    assert re.search(r"[\u4e00-\u9fff]", shown), shown
    assert not STATUS_IDS.search(shown), shown
    english = set(re.findall(r"[A-Za-z_]{3,}", shown)) - KEPT
    assert not english, (text, shown)
    # Instants in Shanghai time, to the minute: no seconds, no offsets, no UTC.
    assert not re.search(r"\d{2}:\d{2}:\d{2}|\+\d{2}:\d{2}|T\d{2}", shown), shown


def test_times_are_the_shop_s_to_the_minute_and_labels_come_from_the_rules(zh: Names) -> None:
    held = zh.reason(
        "held: the customer has an unhandled complaint (case 3, damaged_in_transit, "
        "opened 2026-12-01 03:00 UTC, order 1001)"
    )
    assert held == "暂缓：客户有未处理的投诉（工单 3，运输破损，2026-12-01 11:00 创建，订单 1001）"
    assert zh.reason(f"held for quiet hours until {NOW.isoformat()}") == (
        "免打扰时段，推迟到 2026-12-01 11:00"
    )


def test_words_carebot_did_not_write_keep_their_meaning_without_status_ids(zh: Names) -> None:
    shown = zh.reason("carrier said the parcel was delivered and then failed_attempt")
    assert "已送达" in shown and "投递失败" in shown and not STATUS_IDS.search(shown)
    en = Names(zh.rulebook, "en", zone=SHANGHAI)
    assert en.reason("carrier said delivered") == "carrier said delivered"
