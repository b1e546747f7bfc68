"""A claimed batch rendered ahead of its sends (``dispatch._prepare``), on a real SQLite file.

What is rendered ahead must be exactly what would have been rendered at send time; what the
time allowance leaves out, or what needs an unsubscribe link, is rendered at send time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.core import insert, make_runtime, planned

from carebot.channels import ChannelKind
from carebot.clock import VirtualClock
from carebot.dispatch import _prepare
from carebot.exceptions import TemplateError
from carebot.notifications import PlannedNotification
from carebot.rendering import Rendered
from carebot.store import schedule

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def _rows(count: int) -> list[PlannedNotification]:
    return [planned(f"k-{n}", due_at=T0, recipient=f"+861380013{n:04d}") for n in range(count)]


def test_sms_and_merchant_mail_are_rendered_ahead_a_customers_email_is_not(
    tmp_path: Path,
) -> None:
    runtime, _ = make_runtime(tmp_path, clock=VirtualClock(T0))
    insert(
        runtime.db,
        *_rows(2),
        planned("mail", due_at=T0, channel="email", recipient="wang@example.com"),
        planned(
            "alert", due_at=T0, channel="email", recipient="shop@example.com", audience="merchant"
        ),
        planned("broken", due_at=T0, template="no-such-template"),
        now=T0,
    )
    with runtime.db.transaction() as session:
        rows = schedule.claim_due(session, now=T0, worker="w", limit=10, lease=LEASE)
    prepared = _prepare.render_batch(runtime.renderer, rows)
    by_key = {row.dedupe_key: row for row in rows}
    assert set(prepared) == {by_key[k].id for k in ("k-0", "k-1", "alert", "broken")}
    sms = prepared[by_key["k-0"].id]
    assert isinstance(sms, Rendered)
    # The very text a render at send time gives.
    row = by_key["k-0"]
    assert sms == runtime.renderer.render(row.template, ChannelKind.SMS, row.locale, row.context)
    assert isinstance(prepared[by_key["broken"].id], TemplateError)


def test_rendering_ahead_stops_at_its_allowance(tmp_path: Path) -> None:
    runtime, _ = make_runtime(tmp_path, clock=VirtualClock(T0))
    insert(runtime.db, *_rows(5), now=T0)
    with runtime.db.transaction() as session:
        rows = schedule.claim_due(session, now=T0, worker="w", limit=10, lease=LEASE)
    assert len(_prepare.render_batch(runtime.renderer, rows)) == 5
    assert len(_prepare.render_batch(runtime.renderer, rows, within=-1.0)) == 0


async def test_rows_left_out_of_the_render_ahead_are_rendered_at_send_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_prepare, "AHEAD_SECONDS", -1.0)
    runtime, channels = make_runtime(tmp_path, clock=VirtualClock(T0))
    insert(runtime.db, *_rows(3), now=T0)
    report = await runtime.dispatcher.run_once()
    assert report.sent == 3
    sent = channels[ChannelKind.SMS].sent
    assert len(sent) == 3 and all(message.body for message in sent)
    assert len({message.body for message in sent}) == 1  # one template, one context
