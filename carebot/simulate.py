"""``carebot simulate``: replay canonical events in virtual time through the real pipeline.

A throwaway SQLite database, a virtual clock and capturing channels; everything else (store,
planner, dispatcher, templates) is what the daemon runs. The same file gives the same output.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from carebot.channels import ChannelKind, MemoryChannel
from carebot.clock import VirtualClock
from carebot.events import Event, parse_event
from carebot.exceptions import EventError, Problem, TemplateError
from carebot.notifications import NotificationStatus as S
from carebot.runtime import Runtime, build_runtime
from carebot.settings import Settings
from carebot.store import schedule
from carebot.store.database import Database
from carebot.store.models import NotificationRow

__all__ = ["SimulationRecord", "read_events", "simulate"]

# Without --until the replay runs until nothing is pending, but never past this horizon.
HORIZON = timedelta(days=400)
_PENDING = {S.SCHEDULED, S.CLAIMED, S.SENDING}


@dataclass(frozen=True)
class SimulationRecord:
    """One notification as ``--json`` prints it."""

    due_at: str
    sent_at: str | None
    rule: str
    channel: str
    to: str | None
    order_id: str | None
    status: str
    reason: str | None
    subject: str | None
    body: str | None

    def as_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)


def read_events(path: Path) -> list[Event]:
    """Parse a JSON Lines file of canonical events; every bad line is reported at once."""
    events: list[Event] = []
    problems: list[Problem] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                events.append(parse_event(json.loads(line)))
            except json.JSONDecodeError as exc:
                problems.append(Problem(str(path), number, exc.colno, f"not JSON: {exc.msg}"))
            except EventError as exc:
                problems.append(Problem(str(path), number, 1, str(exc)))
    if problems:
        raise EventError("\n".join(str(p) for p in problems))
    # Stable: events at the same instant keep their order in the file.
    return sorted(events, key=lambda e: e.occurred_at)


class _Replay:
    def __init__(self, runtime: Runtime, clock: VirtualClock) -> None:
        self.runtime = runtime
        self.clock = clock

    async def run_until(self, instant: datetime) -> None:
        """Send everything that falls due up to ``instant``, in due order."""
        while True:
            with self.runtime.db.transaction() as session:
                due = schedule.next_due_at(session)
            if due is None or due > instant:
                break
            if due > self.clock.now():
                self.clock.set(due)
            await self.runtime.dispatcher.run_once()
        if instant > self.clock.now():
            self.clock.set(instant)


async def simulate(
    events: list[Event], *, settings: Settings, until: datetime | None = None
) -> list[SimulationRecord]:
    """Replay ``events`` and return every notification, in due order."""
    if not events:
        return []
    clock = VirtualClock(events[0].occurred_at)
    with tempfile.TemporaryDirectory(prefix="carebot-simulate-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'simulate.db'}")
        db.upgrade()
        channels = {kind: MemoryChannel(kind=kind) for kind in ChannelKind}
        runtime = build_runtime(settings, clock=clock, channels=channels, db=db, inline_db=True)
        replay = _Replay(runtime, clock)
        try:
            for event in events:
                if until is not None and event.occurred_at > until:
                    break
                await replay.run_until(event.occurred_at)
                runtime.pipeline.ingest(event)
                await replay.run_until(clock.now())
            end = until or max(clock.now(), events[-1].occurred_at) + HORIZON
            await replay.run_until(end)
            return list(_records(runtime))
        finally:
            db.dispose()


def _local(instant: datetime | None, zone: str) -> str | None:
    return None if instant is None else instant.astimezone(ZoneInfo(zone)).isoformat()


def _records(runtime: Runtime) -> Iterator[SimulationRecord]:
    with runtime.db.transaction() as session:
        rows = session.scalars(
            select(NotificationRow).order_by(NotificationRow.due_at, NotificationRow.id)
        ).all()
    for row in rows:
        status = S.SCHEDULED if row.status in _PENDING else S(row.status)
        subject, body = row.subject, row.body
        if body is None and row.recipient:
            subject, body = _preview(runtime, row)
        yield SimulationRecord(
            due_at=_local(row.due_at, row.timezone) or "",
            sent_at=_local(row.sent_at, row.timezone),
            rule=row.rule_id,
            channel=row.channel,
            to=row.recipient,
            order_id=row.order_id,
            status=str(status),
            reason=row.reason,
            subject=subject,
            body=body,
        )


def _preview(runtime: Runtime, row: NotificationRow) -> tuple[str | None, str | None]:
    """What a message not sent (yet) would say, so the timeline shows it."""
    try:
        rendered = runtime.renderer.render(
            row.template, ChannelKind(row.channel), row.locale, row.context
        )
    except TemplateError:
        return None, None
    return rendered.subject, rendered.text


def format_timeline(records: list[SimulationRecord]) -> str:
    """A readable timeline: one line per notification in due order."""
    from carebot.masking import mask_recipient

    lines = []
    for r in records:
        when = r.sent_at or r.due_at
        first_line = (r.body or "").splitlines()[0] if r.body else ""
        lines.append(
            f"{when[:16].replace('T', ' ')} {when[19:] if len(when) > 19 else ''}  "
            f"{r.status:<10} {r.channel:<5} {mask_recipient(r.to) if r.to else '-':<18} "
            f"order {r.order_id or '-':<8} {r.rule:<14} {first_line[:70]}"
            + (f"  ({r.reason})" if r.reason and r.status != "sent" else "")
        )
    return "\n".join(lines)


def parse_until(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"--until {text!r} needs a UTC offset, e.g. 2026-11-23T09:00:00+08:00")
    return value
