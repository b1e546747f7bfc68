"""The dispatcher: claim due rows, re-check guards, render, send, record, retry.

Send protocol (see DESIGN.md "Scheduling core"): commit ``sending``, call the provider, commit
``sent``. A crash before ``sending`` only leaves a claim, which the reaper hands back; a crash
after it leaves the one message that may go out twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from carebot.channels.base import Channel, ChannelKind, OutboundMessage
from carebot.clock import Clock
from carebot.dispatch.backoff import retry_delay
from carebot.exceptions import ChannelError, TemplateError
from carebot.masking import mask_recipient
from carebot.notifications import NotificationStatus as S
from carebot.rendering import TemplateRenderer
from carebot.rulebook.windows import DailyWindow, next_allowed, parse_window
from carebot.settings import DispatchSettings
from carebot.store import consent, schedule
from carebot.store.database import Database
from carebot.store.models import NotificationRow

__all__ = ["DispatchReport", "Dispatcher", "new_worker_id"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Twilio error 21610: the recipient replied STOP; the number must not be texted again.
TWILIO_OPTED_OUT = "21610"


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
    lost: int = 0

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
        quiet_hours: str | None,
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
        self._send_window = (
            parse_window(quiet_hours).inverse()
            if quiet_hours and quiet_hours.strip().lower() != "none"
            else None
        )
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
        return await asyncio.to_thread(work)

    async def run_once(self) -> DispatchReport:
        """Claim one batch of due rows and see each to its next state."""
        report = DispatchReport()
        now = self.clock.now()
        rows = await self._db(
            schedule.claim_due,
            now=now,
            worker=self.worker_id,
            limit=self.settings.batch_size,
            lease=timedelta(seconds=self.settings.claim_lease_seconds),
        )
        report.claimed = len(rows)
        if rows:
            outcomes = await asyncio.gather(*(self._deliver(row) for row in rows))
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

    def _windows(self, row: NotificationRow) -> list[DailyWindow]:
        windows = [self._send_window] if self._send_window else []
        if row.window:
            windows.append(parse_window(row.window))
        return windows

    async def _deliver(self, row: NotificationRow) -> str:
        now = self.clock.now()
        if now > row.not_after:
            return await self._finish(
                row, S.EXPIRED, f"not sent: past its not-after time {row.not_after.isoformat()}"
            )
        kind = ChannelKind(row.channel)
        if not row.recipient:
            return await self._finish(row, S.FAILED, f"no {kind} address")
        opted_out = await self._db(consent.is_opted_out, channel=row.channel, address=row.recipient)
        if opted_out and (kind == ChannelKind.SMS or not row.transactional):
            return await self._finish(row, S.SUPPRESSED, f"recipient opted out of {kind}")
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
        try:
            rendered = self.renderer.render(row.template, kind, row.locale, row.context)
        except TemplateError as exc:
            return await self._finish(row, S.FAILED, f"template error: {exc}")
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
        )
        async with self._slots[kind]:
            claimed = await self._db(
                schedule.mark_sending,
                notification_id=row.id,
                worker=self.worker_id,
                now=self.clock.now(),
                lease=timedelta(seconds=self.settings.send_lease_seconds),
                subject=rendered.subject,
                body=rendered.text,
            )
            if not claimed:
                return "lost"
            attempt = row.attempts + 1
            try:
                receipt = await self.channels[kind].send(message)
            except ChannelError as exc:
                return await self._failed_send(row, attempt, exc)
        await self._db(
            schedule.mark_sent,
            notification_id=row.id,
            provider_id=receipt.provider_id,
            provider_status=receipt.status,
            now=self.clock.now(),
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
            },
        )
        return "sent"

    async def _failed_send(self, row: NotificationRow, attempt: int, exc: ChannelError) -> str:
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
        return await self._finish(row, S.FAILED, reason, error=error)

    async def _finish(
        self, row: NotificationRow, status: S, reason: str, *, error: str | None = None
    ) -> str:
        await self._db(
            schedule.finish,
            notification_id=row.id,
            status=status,
            reason=reason,
            now=self.clock.now(),
            error=error,
        )
        return {S.FAILED: "failed", S.EXPIRED: "expired", S.SUPPRESSED: "suppressed"}[status]


def _local(instant: datetime, zone: str) -> str:
    return f"{instant.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M %Z}"
