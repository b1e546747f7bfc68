"""Dispatch-time guardrails on a real SQLite file, in virtual time: frequency caps that defer
or merge, channel fallback, transactional notices, invalid addresses, segments, unsubscribe."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.core import EMAIL, PHONE, insert, make_runtime, notification, planned, sample_context

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.exceptions import ChannelError
from carebot.notifications import NotificationStatus as S
from carebot.notifications import PlannedNotification
from carebot.runtime import Runtime
from carebot.store import consent
from carebot.unsubscribe import address_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)
DAY = timedelta(hours=24)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(NOW)


@pytest.fixture
def setup(tmp_path: Path, clock: VirtualClock) -> tuple[Runtime, dict[ChannelKind, MemoryChannel]]:
    return make_runtime(tmp_path, clock=clock, quiet_hours="none")


@pytest.fixture
def runtime(setup: tuple[Runtime, dict[ChannelKind, MemoryChannel]]) -> Runtime:
    return setup[0]


@pytest.fixture
def sms(setup: tuple[Runtime, dict[ChannelKind, MemoryChannel]]) -> MemoryChannel:
    return setup[1][ChannelKind.SMS]


@pytest.fixture
def email(setup: tuple[Runtime, dict[ChannelKind, MemoryChannel]]) -> MemoryChannel:
    return setup[1][ChannelKind.EMAIL]


def shipped(n: int, *, due_at: datetime, **overrides: Any) -> PlannedNotification:
    """The shipped SMS for shipment ``s-n`` of order ``100n`` with tracking number ``SF000n``."""
    context = sample_context(f"100{n}")
    context["shipment"] = {"id": f"s-{n}", "carrier": "SF Express", "tracking_number": f"SF000{n}"}
    return planned(
        f"shipment:s-{n}:shipped:sms",
        due_at=due_at,
        context=context,
        order_id=f"100{n}",
        shipment_id=f"s-{n}",
        **overrides,
    )


def opt_out(runtime: Runtime, channel: str, address: str) -> None:
    with runtime.db.transaction() as session:
        consent.set_consent(
            session, channel=channel, address=address, opted_out=True, source="test", now=NOW
        )


# --- frequency cap ---------------------------------------------------------------------------


async def test_a_fourth_sms_in_24_hours_is_deferred_until_the_first_ages_out_without_an_attempt(
    runtime: Runtime, sms: MemoryChannel, clock: VirtualClock
) -> None:
    ids = insert(runtime.db, *(shipped(n, due_at=NOW) for n in range(1, 5)), now=NOW)

    report = await runtime.dispatcher.run_once()

    assert (report.sent, report.deferred) == (3, 1)
    fourth = notification(runtime.db, ids[3])
    assert (fourth.status, fourth.attempts, fourth.due_at) == (S.SCHEDULED, 0, NOW + DAY)
    assert fourth.reason is not None and "frequency cap (3 sms per 24 h)" in fourth.reason

    clock.set(NOW + DAY - timedelta(seconds=1))
    assert (await runtime.dispatcher.run_once()).claimed == 0
    clock.set(NOW + DAY)
    assert (await runtime.dispatcher.run_once()).sent == 1
    assert "SF0004" in sms.sent[-1].body
    assert len(sms.sent) == 4


async def test_a_notice_beyond_the_cap_is_merged_into_the_deferred_one_and_both_numbers_go(
    runtime: Runtime, sms: MemoryChannel, clock: VirtualClock
) -> None:
    ids = insert(runtime.db, *(shipped(n, due_at=NOW) for n in range(1, 5)), now=NOW)
    await runtime.dispatcher.run_once()
    clock.advance(timedelta(hours=1))
    [fifth] = insert(runtime.db, shipped(5, due_at=clock.now()), now=clock.now())

    report = await runtime.dispatcher.run_once()

    assert report.merged == 1
    absorbed = notification(runtime.db, fifth)
    assert absorbed.status == S.CANCELLED
    assert absorbed.reason == f"merged into notification {ids[3]}"
    clock.set(NOW + DAY)
    await runtime.dispatcher.run_once()
    merged = sms.sent[-1]
    assert merged.notification_id == ids[3]
    assert "SF0004" in merged.body and "SF0005" in merged.body
    assert len(sms.sent) == 4


async def test_the_cap_counts_per_address_and_per_channel(
    runtime: Runtime, sms: MemoryChannel, email: MemoryChannel
) -> None:
    other = "+8613900139000"
    items = [shipped(n, due_at=NOW) for n in range(1, 4)]
    items.append(shipped(4, due_at=NOW, recipient=other))
    items.append(shipped(5, due_at=NOW, channel="email", recipient=EMAIL))
    insert(runtime.db, *items, now=NOW)

    report = await runtime.dispatcher.run_once()

    assert report.sent == 5
    assert [m.to for m in email.sent] == [EMAIL]


async def test_a_transactional_notice_is_exempt_from_the_cap(
    runtime: Runtime, sms: MemoryChannel
) -> None:
    insert(runtime.db, *(shipped(n, due_at=NOW) for n in range(1, 4)), now=NOW)
    await runtime.dispatcher.run_once()
    [urgent] = insert(runtime.db, shipped(9, due_at=NOW, transactional=True), now=NOW)

    assert (await runtime.dispatcher.run_once()).sent == 1
    assert notification(runtime.db, urgent).status == S.SENT


async def test_a_capped_notice_whose_free_slot_is_past_its_not_after_expires_with_the_reason(
    runtime: Runtime,
) -> None:
    insert(runtime.db, *(shipped(n, due_at=NOW) for n in range(1, 4)), now=NOW)
    await runtime.dispatcher.run_once()
    [late] = insert(runtime.db, shipped(4, due_at=NOW, not_after=NOW + timedelta(hours=2)), now=NOW)

    await runtime.dispatcher.run_once()

    row = notification(runtime.db, late)
    assert row.status == S.EXPIRED
    assert row.reason is not None and "frequency cap" in row.reason


async def test_a_deferred_notice_waits_for_its_window_when_the_free_slot_falls_outside_it(
    tmp_path: Path,
) -> None:
    early = datetime(2026, 11, 20, 9, 30, tzinfo=SHANGHAI)
    clock = VirtualClock(early)
    runtime, _ = make_runtime(tmp_path, clock=clock, quiet_hours="none")
    insert(runtime.db, *(shipped(n, due_at=early) for n in range(1, 4)), now=early)
    await runtime.dispatcher.run_once()
    # The fourth may only go 10:00-20:00: held to 10:00, then capped until 09:30 tomorrow,
    # which is outside its window, so 10:00 tomorrow.
    [fourth] = insert(runtime.db, shipped(4, due_at=early, window="10:00-20:00"), now=early)
    assert (await runtime.dispatcher.run_once()).held == 1
    clock.set(datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI))

    assert (await runtime.dispatcher.run_once()).deferred == 1

    assert notification(runtime.db, fourth).due_at == datetime(2026, 11, 21, 10, 0, tzinfo=SHANGHAI)


# --- fallback and validation -----------------------------------------------------------------


async def test_a_preferred_sms_refused_by_stop_falls_back_to_the_email_address(
    runtime: Runtime, sms: MemoryChannel, email: MemoryChannel
) -> None:
    opt_out(runtime, "sms", PHONE)
    [nid] = insert(
        runtime.db,
        planned("order:1001:shipped:preferred", due_at=NOW, fallback_recipient=EMAIL),
        now=NOW,
    )

    first = await runtime.dispatcher.run_once()
    second = await runtime.dispatcher.run_once()

    assert (first.suppressed, second.sent) == (1, 1)
    row = notification(runtime.db, nid)
    assert row.status == S.SUPPRESSED
    assert row.reason == "recipient opted out of sms; falling back to email"
    assert sms.attempts == []
    [message] = email.sent
    assert message.to == EMAIL
    with runtime.db.transaction() as session:
        from carebot.store.models import NotificationRow

        fallback = session.get(NotificationRow, message.notification_id)
        assert fallback is not None
        assert fallback.dedupe_key == "order:1001:shipped:preferred:fallback"
        assert fallback.fallback_recipient is None


async def test_a_permanent_sms_error_falls_back_to_email(
    runtime: Runtime, sms: MemoryChannel, email: MemoryChannel
) -> None:
    insert(runtime.db, planned("k", due_at=NOW, fallback_recipient=EMAIL), now=NOW)
    sms.fail_next(ChannelError("invalid 'To' phone number", retryable=False, code="21211"))

    await runtime.dispatcher.run_once()
    await runtime.dispatcher.run_once()

    assert [m.to for m in email.sent] == [EMAIL]


async def test_a_suppressed_sms_without_a_fallback_address_just_ends_suppressed(
    runtime: Runtime, email: MemoryChannel
) -> None:
    opt_out(runtime, "sms", PHONE)
    [nid] = insert(runtime.db, planned("k", due_at=NOW), now=NOW)
    await runtime.dispatcher.run_once()
    assert (await runtime.dispatcher.run_once()).claimed == 0
    assert notification(runtime.db, nid).reason == "recipient opted out of sms"
    assert email.attempts == []


async def test_a_fallback_email_that_is_also_opted_out_is_suppressed_too(
    runtime: Runtime, sms: MemoryChannel, email: MemoryChannel
) -> None:
    opt_out(runtime, "sms", PHONE)
    opt_out(runtime, "email", EMAIL.upper())
    insert(runtime.db, planned("k", due_at=NOW, fallback_recipient=EMAIL), now=NOW)
    await runtime.dispatcher.run_once()
    assert (await runtime.dispatcher.run_once()).suppressed == 1
    assert (sms.attempts, email.attempts) == ([], [])


@pytest.mark.parametrize(
    ("channel", "recipient"),
    [("sms", "12345"), ("sms", "13800138000"), ("email", "wang@example")],
)
async def test_an_invalid_address_is_never_sent_to_and_fails_with_the_reason(
    runtime: Runtime, sms: MemoryChannel, email: MemoryChannel, channel: str, recipient: str
) -> None:
    [nid] = insert(
        runtime.db, planned("k", due_at=NOW, channel=channel, recipient=recipient), now=NOW
    )
    report = await runtime.dispatcher.run_once()
    assert report.failed == 1
    assert (sms.attempts, email.attempts) == ([], [])
    assert notification(runtime.db, nid).reason == f"invalid {channel} address; not sent"


# --- transactional ---------------------------------------------------------------------------


async def test_a_transactional_email_overrides_an_email_opt_out(
    runtime: Runtime, email: MemoryChannel
) -> None:
    opt_out(runtime, "email", EMAIL)
    insert(
        runtime.db,
        planned("k", due_at=NOW, channel="email", recipient=EMAIL, transactional=True),
        now=NOW,
    )
    assert (await runtime.dispatcher.run_once()).sent == 1
    assert [m.to for m in email.sent] == [EMAIL]


async def test_a_transactional_sms_never_overrides_stop(
    runtime: Runtime, sms: MemoryChannel
) -> None:
    opt_out(runtime, "sms", PHONE)
    [nid] = insert(runtime.db, planned("k", due_at=NOW, transactional=True), now=NOW)
    assert (await runtime.dispatcher.run_once()).suppressed == 1
    assert sms.attempts == []
    assert notification(runtime.db, nid).status == S.SUPPRESSED


# --- what a sent message carries --------------------------------------------------------------


async def test_an_sms_records_its_segment_count(runtime: Runtime) -> None:
    long_name = replace(shipped(1, due_at=NOW))
    long_name.context["customer"]["name"] = "王" * 150
    [short, long] = insert(
        runtime.db, shipped(2, due_at=NOW), replace(long_name, dedupe_key="long"), now=NOW
    )
    await runtime.dispatcher.run_once()
    assert notification(runtime.db, short).segments == 1
    assert notification(runtime.db, long).segments == 3


async def test_every_email_carries_a_signed_unsubscribe_link_in_its_body_and_headers(
    runtime: Runtime, email: MemoryChannel
) -> None:
    insert(runtime.db, planned("k", due_at=NOW, channel="email", recipient=EMAIL), now=NOW)
    await runtime.dispatcher.run_once()

    [message] = email.sent
    url = message.headers["List-Unsubscribe"].strip("<>")
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert url.startswith("https://care.example.com/unsubscribe/")
    assert url in message.body
    assert message.html is not None and url in message.html
    token = url.rsplit("/", 1)[1]
    with runtime.db.transaction() as session:
        assert address_of(session, token) == EMAIL
    # The link says nothing about the address, in any encoding a proxy log could undo.
    padded = token + "=" * (-len(token) % 4)
    assert EMAIL.split("@")[0] not in base64.urlsafe_b64decode(padded).decode("latin-1")
    assert "." not in token and EMAIL not in url


async def test_two_installations_give_one_address_unrelated_random_tokens(
    tmp_path: Path, clock: VirtualClock
) -> None:
    # Only a replay (carebot simulate) makes its tokens from a seeded source.
    tokens = []
    for name in ("shop-a", "shop-b"):
        (tmp_path / name).mkdir()
        runtime, channels = make_runtime(tmp_path / name, clock=clock)
        insert(runtime.db, planned("k", due_at=NOW, channel="email", recipient=EMAIL), now=NOW)
        await runtime.dispatcher.run_once()
        [message] = channels[ChannelKind.EMAIL].sent
        tokens.append(message.headers["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1])
        await runtime.aclose()
        runtime.db.dispose()
    assert tokens[0] != tokens[1]
    assert all(len(token) == 32 for token in tokens)


async def test_an_sms_has_no_unsubscribe_headers(runtime: Runtime, sms: MemoryChannel) -> None:
    insert(runtime.db, planned("k", due_at=NOW), now=NOW)
    await runtime.dispatcher.run_once()
    assert sms.sent[0].headers == {}
