"""The dispatcher: claim due rows, re-check guards, render, send, record, retry.

Send protocol (see DESIGN.md "Scheduling core"): commit ``sending``, call the provider, commit
``sent``. A crash before ``sending`` only leaves a claim, which the reaper hands back; a crash
after it leaves the one message that may go out twice.

Guards at send time, in order: ``not_after`` (expired), a valid address (failed), consent
(suppressed; a transactional email overrides an email opt-out, nothing overrides an SMS STOP),
quiet hours and the rule's window (moved), the frequency cap (merged into a pending message of
the same rule to the same address, or moved to the next free slot; transactional messages are
exempt). Moves are not attempts. A refused ``preferred`` notice falls back to the other
channel as a new row keyed ``<dedupe key>:fallback``. Alerts to the merchant (``audience =
merchant``) skip consent, quiet hours and caps: they are the shop's own mail, and a complaint
must not wait for the morning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from carebot.channels.base import Channel, ChannelKind, OutboundMessage
from carebot.clock import Clock
from carebot.contacts import normalize_phone, valid_email
from carebot.dispatch._fallback import fallback_for, finish_and_fall_back
from carebot.dispatch.backoff import retry_delay
from carebot.dispatch.caps import ROLLING_WINDOW, merge_entry, next_free_slot
from carebot.exceptions import ChannelError, TemplateError
from carebot.masking import mask_recipient
from carebot.notifications import NotificationStatus as S
from carebot.rendering import Rendered, TemplateRenderer
from carebot.rulebook.windows import DailyWindow, next_allowed, parse_window
from carebot.segments import count_segments
from carebot.settings import CapSettings, DispatchSettings
from carebot.store import consent, schedule
from carebot.store.database import Database
from carebot.store.schedule import Claimed
from carebot.unsubscribe import make_token, signing_key

__all__ = ["DispatchReport", "Dispatcher", "new_worker_id"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Rows of rules with ``audience: merchant``.
MERCHANT = "merchant"

# What the guards need to know of an address before a send: whether it opted out of the
# channel, and when messages to it went out within the frequency cap's rolling window.
Guards = tuple[bool, list[datetime]]

# Twilio error 21610: the recipient replied STOP; the number must not be texted again.
TWILIO_OPTED_OUT = "21610"
ALREADY_SENT = "an earlier attempt had reached the provider; not sent again"


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class DispatchReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    expired: int = 0
    suppressed: int = 0
    held: int = 0
    deferred: int = 0
    merged: int = 0
    lost: int = 0
    # With ``run_once(read_next_due=True)``: when the earliest row still scheduled after the
    # claim falls due, read in the claim's transaction. Still right after the tick when every
    # claimed row was sent (``settled``): nothing else was moved or added.
    next_due: datetime | None = None

    @property
    def settled(self) -> bool:
        return self.sent == self.claimed

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


class Dispatcher:
    """Sends what is due. ``run_once`` is one tick: the daemon, simulate and tests call it."""

    def __init__(
        self,
        *,
        db: Database,
        channels: Mapping[ChannelKind, Channel],
        renderer: TemplateRenderer,
        clock: Clock,
        settings: DispatchSettings,
        public_url: str,
        quiet_hours: DailyWindow | None,
        caps: CapSettings | None = None,
        concurrency: Mapping[ChannelKind, int] | None = None,
        worker_id: str | None = None,
        inline_db: bool = False,
    ) -> None:
        self.db = db
        self.channels = channels
        self.renderer = renderer
        self.clock = clock
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self.worker_id = worker_id or new_worker_id()
        caps = caps or CapSettings()
        self._caps = {ChannelKind.SMS: caps.sms_per_day, ChannelKind.EMAIL: caps.email_per_day}
        self._unsubscribe_key: bytes | None = None
        self._send_window = None if quiet_hours is None else quiet_hours.inverse()
        self._mail_domain = urlsplit(self.public_url).hostname or "carebot.local"
        # A row becomes `sending` only once a provider slot is free: rows queued behind a
        # slow provider stay `claimed`, so a crash never leaves them in doubt.
        limits = concurrency or {}
        self._slots = {kind: asyncio.Semaphore(limits.get(kind, 8)) for kind in ChannelKind}
        # Virtual-time replays run database work inline: one thread, deterministic order.
        self._inline_db = inline_db

    async def _db(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        def work() -> T:
            with self.db.transaction() as session:
                return fn(session, **kwargs)

        if self._inline_db:
            return work()
        return await self.db.call(work)

    async def run_once(self, *, read_next_due: bool = False) -> DispatchReport:
        """Claim one batch of due rows and see each to its next state.

        ``read_next_due``: also report when the next scheduled row falls due (``simulate``
        steps its clock by it; the daemon has no use for it).
        """
        report = DispatchReport()
        now = self.clock.now()
        rows, guards, report.next_due = await self._db(
            _claim_with_guards,
            now=now,
            worker=self.worker_id,
            limit=self.settings.batch_size,
            lease=timedelta(seconds=self.settings.claim_lease_seconds),
            read_next_due=read_next_due,
        )
        report.claimed = len(rows)
        # Rows to one address go one after another, so each sees the frequency cap as the
        # ones before it left it; different addresses go concurrently.
        queues: dict[tuple[str, str | None], list[Claimed]] = {}
        for row in rows:
            queues.setdefault((row.channel, row.recipient), []).append(row)

        async def drain(queue: list[Claimed]) -> list[str]:
            # The first row to an address uses what the claim read of it; the ones after it
            # read again, to count what the ones before them sent.
            first = guards.get((queue[0].channel, queue[0].recipient or ""))
            return [
                await self._deliver(row, first if n == 0 else None) for n, row in enumerate(queue)
            ]

        for outcomes in await asyncio.gather(*(drain(q) for q in queues.values())):
            for outcome in outcomes:
                report.add(outcome)
        return report

    async def reap(self) -> schedule.ReapReport:
        """Hand back rows whose worker died (see ``schedule.reap_expired_leases``)."""
        result = await self._db(schedule.reap_expired_leases, now=self.clock.now())
        if result.released or result.resent or result.unknown:
            logger.warning(
                "expired leases recovered",
                extra={
                    "action": "leases_reaped",
                    "released": result.released,
                    "resent": result.resent,
                    "unknown": result.unknown,
                },
            )
        return result

    def _windows(self, row: Claimed) -> list[DailyWindow]:
        windows = [self._send_window] if self._send_window else []
        if row.window:
            windows.append(parse_window(row.window))
        return windows

    async def _deliver(self, row: Claimed, guards: Guards | None = None) -> str:
        now = self.clock.now()
        if now > row.not_after:
            return await self._finish(
                row, S.EXPIRED, f"not sent: past its not-after time {row.not_after.isoformat()}"
            )
        kind = ChannelKind(row.channel)
        if not row.recipient:
            return await self._finish(row, S.FAILED, f"no {kind} address", fall_back=True)
        if not _valid_address(kind, row.recipient):
            return await self._finish(
                row, S.FAILED, f"invalid {kind} address; not sent", fall_back=True
            )
        if row.audience == MERCHANT:
            return await self._send(row, kind)
        if guards is None:
            guards = await self._db(
                _guards,
                channel=row.channel,
                address=row.recipient,
                since=None if row.transactional else now - ROLLING_WINDOW,
            )
        opted_out, recent = guards
        # A transactional notice overrides an email marketing opt-out, never an SMS STOP.
        if opted_out and (kind == ChannelKind.SMS or not row.transactional):
            return await self._finish(
                row, S.SUPPRESSED, f"recipient opted out of {kind}", fall_back=True
            )
        held = next_allowed(now, ZoneInfo(row.timezone), self._windows(row))
        if held > now:
            if held > row.not_after:
                return await self._finish(
                    row, S.EXPIRED, "not sent: no allowed hour before its not-after time"
                )
            await self._db(
                schedule.release,
                notification_id=row.id,
                due_at=held,
                now=now,
                reason=f"held for quiet hours until {_local(held, row.timezone)}",
            )
            return "held"
        if not row.transactional:
            capped = await self._apply_cap(row, kind, now, recent)
            if capped is not None:
                return capped
        return await self._send(row, kind)

    async def _send(self, row: Claimed, kind: ChannelKind) -> str:
        """Render ``row`` and hand it to its channel (the guards have passed)."""
        assert row.recipient is not None
        context = dict(row.context)
        headers: dict[str, str] = {}
        if kind == ChannelKind.EMAIL and row.audience != MERCHANT:
            url = await self._unsubscribe_url(row.recipient)
            context["unsubscribe_url"] = url
            # RFC 2369 and RFC 8058: mail clients show an unsubscribe button that POSTs here.
            headers = {
                "List-Unsubscribe": f"<{url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        try:
            rendered = self.renderer.render(row.template, kind, row.locale, context)
        except TemplateError as exc:
            return await self._finish(row, S.FAILED, f"template error: {exc}")
        segments = count_segments(rendered.text)[1] if kind == ChannelKind.SMS else None
        message = OutboundMessage(
            notification_id=row.id,
            kind=kind,
            to=row.recipient,
            body=rendered.text,
            subject=rendered.subject,
            html=rendered.html,
            message_id=f"<carebot.{row.id}@{self._mail_domain}>",
            status_callback=f"{self.public_url}/twilio/status?notification={row.id}"
            if kind == ChannelKind.SMS
            else None,
            headers=headers,
        )
        async with self._slots[kind]:
            # The provider's rate limit is waited for while the row is only claimed.
            await self.channels[kind].ready()
            claimed = await self._db(
                schedule.mark_sending,
                notification_id=row.id,
                worker=self.worker_id,
                now=self.clock.now(),
                lease=timedelta(seconds=self.settings.send_lease_seconds),
                subject=rendered.subject,
                body=rendered.text,
                segments=segments,
            )
            if not claimed:
                return "lost"
            attempt = row.attempts + 1
            channel = self.channels[kind]
            found = None
            try:
                if row.attempts and row.body is not None:
                    # An earlier attempt may have reached the provider without its answer
                    # being recorded (a timeout, a crash): ask before sending it again.
                    earlier = replace(message, body=row.body)
                    found = await channel.find_sent(earlier, since=row.created_at)
                receipt = found or await channel.send(message)
            except ChannelError as exc:
                return await self._failed_send(row, attempt, exc)
        await self._db(
            schedule.mark_sent,
            notification_id=row.id,
            provider_id=receipt.provider_id,
            provider_status=receipt.status,
            now=self.clock.now(),
            reason=ALREADY_SENT if found else None,
        )
        logger.info(
            "notification sent",
            extra={
                "action": "notification_sent",
                "notification_id": row.id,
                "rule": row.rule_id,
                "channel": row.channel,
                "to": mask_recipient(row.recipient),
                "attempt": attempt,
                "found_at_provider": found is not None,
            },
        )
        return "sent"

    async def _failed_send(self, row: Claimed, attempt: int, exc: ChannelError) -> str:
        now = self.clock.now()
        error = f"{exc}" if exc.code is None or exc.code in str(exc) else f"{exc.code}: {exc}"
        log = {
            "action": "send_failed",
            "notification_id": row.id,
            "rule": row.rule_id,
            "channel": row.channel,
            "attempt": attempt,
            "retryable": exc.retryable,
            "code": exc.code,
        }
        if exc.retryable and attempt < row.max_attempts:
            retry_at = now + retry_delay(
                attempt,
                notification_id=row.id,
                base_seconds=self.settings.backoff_base_seconds,
                max_seconds=self.settings.backoff_max_seconds,
                retry_after=exc.retry_after,
            )
            if retry_at <= row.not_after:
                await self._db(
                    schedule.release,
                    notification_id=row.id,
                    due_at=retry_at,
                    now=now,
                    reason=f"retry {attempt + 1}/{row.max_attempts} at {retry_at.isoformat()}",
                    error=error,
                )
                logger.warning("send failed; will retry", extra=log)
                return "retried"
            reason = (
                f"gave up after {attempt} attempt(s): the next try would be past not-after; "
                f"last error: {error}"
            )
        elif exc.retryable:
            reason = f"gave up after {attempt} attempt(s); last error: {error}"
        else:
            reason = f"permanent error: {error}"
        if row.channel == ChannelKind.SMS and exc.code == TWILIO_OPTED_OUT and row.recipient:
            await self._db(
                consent.set_consent,
                channel="sms",
                address=row.recipient,
                opted_out=True,
                source="twilio-21610",
                now=now,
            )
        logger.error("send failed for good", extra=log)
        return await self._finish(row, S.FAILED, reason, error=error, fall_back=True)

    async def _finish(
        self,
        row: Claimed,
        status: S,
        reason: str,
        *,
        error: str | None = None,
        fall_back: bool = False,
    ) -> str:
        """End ``row``; with ``fall_back``, also schedule it on the other channel if it has one."""
        now = self.clock.now()
        fallback = fallback_for(row, now) if fall_back else None
        if fallback is not None:
            reason = f"{reason}; falling back to {fallback.channel}"
        await self._db(
            finish_and_fall_back,
            notification_id=row.id,
            status=status,
            reason=reason,
            now=now,
            error=error,
            fallback=fallback,
        )
        return {S.FAILED: "failed", S.EXPIRED: "expired", S.SUPPRESSED: "suppressed"}[status]

    async def _apply_cap(
        self, row: Claimed, kind: ChannelKind, now: datetime, sent: list[datetime]
    ) -> str | None:
        """Merge or defer ``row`` when sending it now would pass the cap; None to send it now.

        A capped message is never dropped: it joins a pending message of the same rule to the
        same address that goes out no later than it could (one message listing both), or it
        waits for the first free slot that is also an allowed hour.
        """
        limit = self._caps[kind]
        free = next_free_slot(sent, limit=limit, now=now)
        if free <= now:
            return None
        slot = next_allowed(free, ZoneInfo(row.timezone), self._windows(row))
        if await self._merge(row, due_by=slot):
            return "merged"
        if slot > row.not_after:
            return await self._finish(
                row,
                S.EXPIRED,
                f"not sent: the frequency cap ({limit} {kind} per 24 h) has no free slot "
                "before its not-after time",
            )
        await self._db(
            schedule.release,
            notification_id=row.id,
            due_at=slot,
            now=now,
            reason=f"deferred by the frequency cap ({limit} {kind} per 24 h) "
            f"until {_local(slot, row.timezone)}",
        )
        return "deferred"

    async def _merge(self, row: Claimed, *, due_by: datetime) -> bool:
        """Fold ``row`` into a pending message of the same rule to the same address."""
        target = await self._db(schedule.merge_target, row=row, due_by=due_by)
        if target is None:
            return False
        merged = list(target.context.get("merged") or [merge_entry(target.context)])
        merged.append(merge_entry(row.context))
        context = {**target.context, "merged": merged}
        # Merge only where the template shows the merged list; otherwise the absorbed
        # notice would vanish from the text, so it waits for its own slot instead.
        if not self._shows_merged(target, context):
            return False
        absorbed = await self._db(
            schedule.absorb,
            survivor_id=target.id,
            survivor_version=target.updated_at,
            absorbed_id=row.id,
            context=context,
            not_after=max(target.not_after, row.not_after),
            now=self.clock.now(),
        )
        if absorbed:
            logger.info(
                "notification merged",
                extra={
                    "action": "notification_merged",
                    "notification_id": row.id,
                    "into": target.id,
                    "rule": row.rule_id,
                    "channel": row.channel,
                },
            )
        return bool(absorbed)

    def _shows_merged(self, row: Claimed, context: dict[str, Any]) -> bool:
        kind = ChannelKind(row.channel)

        def render(ctx: Mapping[str, Any]) -> Rendered:
            return self.renderer.render(row.template, kind, row.locale, ctx)

        try:
            return render(context) != render({**context, "merged": []})
        except TemplateError:
            return False

    async def _unsubscribe_url(self, address: str) -> str:
        if self._unsubscribe_key is None:
            self._unsubscribe_key = await self._db(signing_key)
        return f"{self.public_url}/unsubscribe/{make_token(self._unsubscribe_key, address)}"


def _guards(session: Session, *, channel: str, address: str, since: datetime | None) -> Guards:
    """Whether ``address`` opted out of ``channel``; when not and ``since`` is given, when
    messages to it went out after ``since`` (for the frequency cap)."""
    if since is None:
        return consent.is_opted_out(session, channel=channel, address=address), []
    return schedule.guards(session, channel=channel, address=address, since=since)


def _claim_with_guards(
    session: Session,
    *,
    now: datetime,
    worker: str,
    limit: int,
    lease: timedelta,
    read_next_due: bool,
) -> tuple[list[Claimed], dict[tuple[str, str], Guards], datetime | None]:
    """Claim due rows and, in the same transaction, read the guards of their addresses and,
    with ``read_next_due``, when the next scheduled row falls due."""
    rows = schedule.claim_due(session, now=now, worker=worker, limit=limit, lease=lease)
    guards: dict[tuple[str, str], Guards] = {}
    for row in rows:
        key = (row.channel, row.recipient or "")
        if row.audience != MERCHANT and row.recipient and key not in guards:
            guards[key] = _guards(
                session, channel=row.channel, address=row.recipient, since=now - ROLLING_WINDOW
            )
    return rows, guards, schedule.next_due_at(session) if read_next_due else None


def _valid_address(kind: ChannelKind, address: str) -> bool:
    if kind == ChannelKind.SMS:
        return normalize_phone(address) == address
    return valid_email(address)


def _local(instant: datetime, zone: str) -> str:
    return f"{instant.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M %Z}"
