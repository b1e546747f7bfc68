"""``carebot simulate``: replay canonical events in virtual time through the real pipeline.

A throwaway SQLite database, a virtual clock and capturing channels; everything else (store,
planner, dispatcher, templates) is what the daemon runs. The same file gives the same output.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
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
from carebot.watchers import Watcher

__all__ = ["SimulationRecord", "format_timeline", "read_events", "simulate"]

# (events replayed, events in all): called now and then during a replay.
Progress = Callable[[int, int], None]

# Without --until the replay runs until nothing is pending, but never past this horizon.
HORIZON = timedelta(days=400)
# Watchers keep scanning this long after the last event (or up to --until): long enough for a
# parcel to stall or run late, short enough that a 400-day horizon is not 57,600 scans.
WATCH_HORIZON = timedelta(days=30)
_PENDING = {S.SCHEDULED, S.CLAIMED, S.SENDING}
# How much of a message's first line the readable timeline shows.
FIRST_LINE_CHARS = 80


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
    # For the readable timeline only, already masked; not part of the ``--json`` output.
    customer: str | None = field(default=None, metadata={"json": False})

    def as_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("json", True)}
        return json.dumps(data, ensure_ascii=False)


def read_events(path: Path) -> list[Event]:
    """Parse a JSON Lines file of canonical events; every bad line is reported at once."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EventError(f"{path}: cannot read the events file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise EventError(f"{path}: not UTF-8 text: {exc.reason}") from exc
    events: list[Event] = []
    problems: list[Problem] = []
    # read_text turned every line ending into "\n" (as iterating the file would split).
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            events.append(parse_event(json.loads(line)))
        except json.JSONDecodeError as exc:
            if not problems and _one_json_document(text):
                # A pretty-printed event (or a list of them): say so once, not per line.
                raise EventError(
                    f"{path}:{number}:{exc.colno}: not JSON Lines: simulate reads one canonical"
                    " event per line, and this file is one JSON document spread over lines"
                ) from exc
            problems.append(Problem(str(path), number, exc.colno, f"not JSON: {exc.msg}"))
        except EventError as exc:
            problems.append(Problem(str(path), number, 1, str(exc)))
    if problems:
        raise EventError("\n".join(str(p) for p in problems))
    # Stable: events at the same instant keep their order in the file.
    return sorted(events, key=lambda e: e.occurred_at)


def _one_json_document(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


class _Replay:
    """Virtual time: the dispatcher at every due instant, each watcher at its interval.

    Watcher ticks fall on ``start + k * interval`` as in the daemon. A watcher that says it
    would find nothing before some instant (``Watcher.idle_until``) skips the ticks before it,
    until the store changes: every ingest wakes every watcher for its next tick.
    """

    def __init__(self, runtime: Runtime, clock: VirtualClock) -> None:
        self.runtime = runtime
        self.clock = clock
        self.start = clock.now()
        self.ticks: dict[int, datetime | None] = {
            id(w): self.start + w.interval for w in runtime.watchers
        }
        # Watchers stop ticking past this instant (see ``WATCH_HORIZON``).
        self.watch_until: datetime | None = None
        # When the earliest scheduled row falls due, as last read from the store, or lowered
        # by what an ingest scheduled since; not known after anything else changed the store.
        # Early is harmless (the dispatcher finds nothing and the store is asked again), and
        # it spares a query per replayed event.
        self._due: datetime | None = None
        self._due_known = False

    def _aligned(self, watcher: Watcher, instant: datetime) -> datetime:
        """The first tick of ``watcher`` at or after ``instant``."""
        steps = -((self.start - instant) // watcher.interval)  # ceiling division
        return self.start + max(steps, 1) * watcher.interval

    def ingest(self, event: Event, *, source: str = "carebot") -> None:
        """Ingest through the real pipeline; the store changed, so every watcher wakes."""
        result = self.runtime.pipeline.ingest(event, source=source)
        if result.earliest_due is not None and self._due_known:
            self._due = min(filter(None, (self._due, result.earliest_due)))
        after = self.clock.now() + timedelta(microseconds=1)
        for watcher in self.runtime.watchers:
            tick = self._aligned(watcher, after)
            current = self.ticks[id(watcher)]
            if current is None or tick < current:
                self.ticks[id(watcher)] = tick

    def _next_tick(self) -> tuple[datetime, Watcher] | None:
        pending = [
            (tick, n, w)
            for n, w in enumerate(self.runtime.watchers)
            if (tick := self.ticks[id(w)]) is not None
            and (self.watch_until is None or tick <= self.watch_until)
        ]
        if not pending:
            return None
        at, _, watcher = min(pending, key=lambda p: (p[0], p[1]))
        return at, watcher

    async def _tick(self, at: datetime, watcher: Watcher) -> None:
        if at > self.clock.now():
            self.clock.set(at)
        now = self.clock.now()
        events = watcher.scan(now=now)
        idle = watcher.idle_until(now=now)
        self.ticks[id(watcher)] = (
            None if idle is None else self._aligned(watcher, max(idle, at + watcher.interval))
        )
        self._due_known = False
        for event in events:
            self.ingest(event, source=watcher.source)

    def _next_due(self) -> datetime | None:
        if not self._due_known:
            with self.runtime.db.transaction() as session:
                self._due = schedule.next_due_at(session)
            self._due_known = True
        return self._due

    async def run_until(self, instant: datetime) -> None:
        """Send what falls due and run the watchers' ticks up to ``instant``, in time order."""
        while True:
            due = self._next_due()
            tick = self._next_tick()
            # A message due at the same instant as a tick goes first, as in the daemon, where
            # the 1 s dispatch tick runs long before a watcher's next interval.
            if due is not None and due <= instant and (tick is None or due <= tick[0]):
                if due > self.clock.now():
                    self.clock.set(due)
                report = await self.runtime.dispatcher.run_once(read_next_due=True)
                # The claim read the next due time; it still holds if the tick only sent.
                self._due, self._due_known = report.next_due, report.settled
                continue
            if tick is None or tick[0] > instant:
                break
            await self._tick(*tick)
        if instant > self.clock.now():
            self.clock.set(instant)


async def simulate(
    events: list[Event],
    *,
    settings: Settings,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> list[SimulationRecord]:
    """Replay ``events`` and return every notification, in due order.

    ``progress`` is told how far the replay is about a hundred times, and once at the end.
    """
    if not events:
        return []
    clock = VirtualClock(events[0].occurred_at)
    with tempfile.TemporaryDirectory(prefix="carebot-simulate-") as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'simulate.db'}")
        db.upgrade()
        channels = {kind: MemoryChannel(kind=kind, keep=False) for kind in ChannelKind}
        # A replay repeats itself, its unsubscribe links included: seeded tokens.
        tokens = random.Random(0)
        runtime = build_runtime(
            settings,
            clock=clock,
            channels=channels,
            db=db,
            inline_db=True,
            new_token=lambda: f"{tokens.getrandbits(128):032x}",
        )
        replay = _Replay(runtime, clock)
        try:
            step = max(1, len(events) // 100)
            for number, event in enumerate(events, start=1):
                if until is not None and event.occurred_at > until:
                    break
                await replay.run_until(event.occurred_at)
                replay.ingest(event)
                await replay.run_until(clock.now())
                if progress is not None and number % step == 0 and number < len(events):
                    progress(number, len(events))
            if progress is not None:
                progress(len(events), len(events))
            last = max(clock.now(), events[-1].occurred_at)
            replay.watch_until = min(until or last + WATCH_HORIZON, last + WATCH_HORIZON)
            await replay.run_until(until or last + HORIZON)
            return list(_records(runtime))
        finally:
            db.dispose()


def _local(instant: datetime | None, zone: str) -> str | None:
    return None if instant is None else instant.astimezone(ZoneInfo(zone)).isoformat()


# What the records need of a notification, read a chunk at a time: a whole replay's rows with
# their contexts as ORM objects would hold hundreds of megabytes at 40,000 notifications.
_RECORD_COLUMNS = (
    NotificationRow.due_at,
    NotificationRow.sent_at,
    NotificationRow.timezone,
    NotificationRow.rule_id,
    NotificationRow.channel,
    NotificationRow.recipient,
    NotificationRow.order_id,
    NotificationRow.status,
    NotificationRow.reason,
    NotificationRow.subject,
    NotificationRow.body,
    NotificationRow.template,
    NotificationRow.locale,
    NotificationRow.context,
    NotificationRow.customer_id,
)


def _records(runtime: Runtime) -> Iterator[SimulationRecord]:
    query = (
        select(*_RECORD_COLUMNS)
        .order_by(NotificationRow.due_at, NotificationRow.id)
        .execution_options(yield_per=500)
    )
    with runtime.db.transaction() as session:
        for row in session.execute(query):
            status = S.SCHEDULED if row.status in _PENDING else S(row.status)
            subject, body = row.subject, row.body
            if body is None and row.recipient:
                subject, body = _preview(
                    runtime, row.template, row.channel, row.locale, row.context
                )
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
                customer=_customer_label(row.context, row.customer_id),
            )


def _customer_label(context: dict[str, Any] | None, customer_id: str | None) -> str | None:
    """``c-42 王*``: the customer's id and the first character of their name."""
    customer = (context or {}).get("customer") or {}
    ident = customer.get("id") or customer_id
    name = customer.get("name")
    masked = f"{name[0]}{'*' * min(len(name) - 1, 3)}" if isinstance(name, str) and name else None
    label = " ".join(part for part in (ident, masked) if part)
    return label or None


def _preview(
    runtime: Runtime, template: str, channel: str, locale: str, context: dict[str, Any]
) -> tuple[str | None, str | None]:
    """What a message not sent (yet) would say, so the timeline shows it."""
    try:
        rendered = runtime.renderer.render(template, ChannelKind(channel), locale, context)
    except TemplateError:
        return None, None
    return rendered.subject, rendered.text


def format_timeline(records: list[SimulationRecord]) -> str:
    """A readable timeline grouped by order: a header per order, one line per notification.

    Times are the customer's local time; recipients and names are masked.
    """
    groups: dict[str | None, list[SimulationRecord]] = {}
    for record in records:
        groups.setdefault(record.order_id, []).append(record)
    blocks = [_timeline_block(order_id, group) for order_id, group in groups.items()]
    return "\n\n".join(blocks) if blocks else "no notifications"


def _timeline_block(order_id: str | None, group: list[SimulationRecord]) -> str:
    """One order's header and its notifications, one line each."""
    customer = next((r.customer for r in group if r.customer), None)
    header = f"order {order_id}" if order_id else "no order"
    if customer:
        header += f" · customer {customer}"
    lines = [f"{header} · {len(group)} notification(s)"]
    lines += [_timeline_line(r) for r in group]
    return "\n".join(lines)


def _timeline_line(r: SimulationRecord) -> str:
    """When, status, channel, masked recipient, rule, and the first line of the message."""
    from carebot.masking import mask_recipient

    when = r.sent_at or r.due_at
    first_line = (r.body or "").strip().splitlines()[0] if (r.body or "").strip() else ""
    if len(first_line) > FIRST_LINE_CHARS:
        first_line = first_line[: FIRST_LINE_CHARS - 1] + "…"
    to = mask_recipient(r.to) if r.to else "-"
    reason = f"  ({r.reason})" if r.reason and r.status != "sent" else ""
    return (
        f"  {_clock(when)}  {r.status:<10} {r.channel:<5} {to:<18} {r.rule:<14} "
        f"{first_line}{reason}".rstrip()
    )


def _clock(iso: str) -> str:
    """``2026-11-20T10:00:00+08:00`` → ``2026-11-20 10:00 +08:00``."""
    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso)
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def parse_until(text: str, *, flag: str = "--until") -> datetime:
    """An ISO 8601 instant from the command line; it must carry its UTC offset."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{flag} {text!r} needs a UTC offset, e.g. 2026-11-23T09:00:00+08:00")
    return value
