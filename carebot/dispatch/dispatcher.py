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

from carebot.channels.base import Channel, ChannelKind, OutboundMessage, SendReceipt
from carebot.channels.guards import CIRCUIT_OPEN
from carebot.clock import Clock
from carebot.contacts import normalize_phone, valid_email
from carebot.dispatch._fallback import fallback_for, finish_and_fall_back
from carebot.dispatch.caps import ROLLING_WINDOW, merge_entry, next_free_slot
from carebot.dispatch.retry import (
    Failure,
    FailureKind,
    Outcome,
    RetryPolicy,
    after_failure,
    deferral,
)
from carebot.exceptions import ChannelError, TemplateError
from carebot.holds import Hold
from carebot.masking import mask_recipient, mask_text
from carebot.notifications import NotificationStatus as S
from carebot.rendering import Rendered, TemplateRenderer
from carebot.rulebook.windows import DailyWindow, next_allowed, parse_window
from carebot.segments import count_segments
from carebot.settings import CapSettings, DispatchSettings
from carebot.store import consent, schedule
from carebot.store.database import Database
from carebot.store.schedule import Claimed
from carebot.unsubscribe import token_of

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
    unknown: int = 0
    # Rows whose handling raised past every guard (a database error): left to the reaper.
    errors: int = 0
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
        hold: Callable[..., Hold | None] | None = None,
    ) -> None:
        self.db = db
        # A hold beyond quiet hours (``carebot.holds``), read in a transaction at send time.
        self._hold = hold
        self.channels = channels
        self.renderer = renderer
        self.clock = clock
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self.worker_id = worker_id or new_worker_id()
        caps = caps or CapSettings()
        self._caps = {ChannelKind.SMS: caps.sms_per_day, ChannelKind.EMAIL: caps.email_per_day}
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
                await self._deliver_safely(row, first if n == 0 else None)
                for n, row in enumerate(queue)
            ]

        for outcomes in await asyncio.gather(*(drain(q) for q in queues.values())):
            for outcome in outcomes:
                report.add(outcome)
        return report

    async def reap(self) -> schedule.ReapReport:
        """Hand back rows whose worker died (see ``schedule.reap_expired_leases``)."""
        result = await self._db(schedule.reap_expired_leases, now=self.clock.now())
        if result.released or result.resent or result.unknown or result.expired or result.failed:
            logger.warning(
                "expired leases recovered",
                extra={
                    "action": "leases_reaped",
                    "released": result.released,
                    "resent": result.resent,
                    "unknown": result.unknown,
                    "expired": result.expired,
                    "failed": result.failed,
                },
            )
        return result

    async def _deliver_safely(self, row: Claimed, guards: Guards | None) -> str:
        """``_deliver``, except that whatever it raises stays with this row: the others of
        the batch go on, and the row (claimed or sending) is left to the reaper."""
        try:
            return await self._deliver(row, guards)
        except Exception:
            logger.exception(
                "notification could not be handled; left to the lease reaper",
                extra={"action": "dispatch_error", "notification_id": row.id, "rule": row.rule_id},
            )
            return "errors"

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
        if self._hold is not None:
            hold = await self._db(self._hold, row=row, now=now)
            if hold is not None:
                if hold.until > row.not_after:
                    return await self._finish(row, S.EXPIRED, f"not sent: {hold.reason}")
                await self._db(
                    schedule.release,
                    notification_id=row.id,
                    due_at=hold.until,
                    now=now,
                    reason=hold.reason,
                )
                return "held"
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
            # Rendering is bounded (render.timeout_seconds) but blocking: off the event loop.
            rendered = await asyncio.to_thread(
                self.renderer.render, row.template, kind, row.locale, context
            )
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
            rule_id=row.rule_id,
            context=context,
        )
        channel = self.channels[kind]
        async with self._slots[kind]:
            # The provider's rate limit is waited for while the row is only claimed; an open
            # circuit turns the row away here, before an attempt is spent on it.
            try:
                await channel.ready()
            except ChannelError as exc:
                return await self._defer(row, exc)
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
            found: SendReceipt | None = None
            try:
                if row.attempts and row.body is not None:
                    # An earlier attempt may have reached the provider without its answer
                    # being recorded (a timeout, a crash): ask before sending it again.
                    lookup = await self._look_up(channel, replace(message, body=row.body), row)
                    if isinstance(lookup, str):
                        return await self._finish(row, S.UNKNOWN, lookup)
                    found = lookup
                receipt = found or await channel.send(message)
            except ChannelError as exc:
                return await self._failed_send(row, attempt, exc)
            except Exception as exc:
                # A poison row: something about this message makes the send raise. It is a
                # failed attempt like any other; the rest of the batch goes on.
                logger.warning(
                    "send raised an unexpected error",
                    exc_info=True,
                    extra={"action": "send_error", "notification_id": row.id, "rule": row.rule_id},
                )
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

    async def _look_up(
        self, channel: Channel, earlier: OutboundMessage, row: Claimed
    ) -> SendReceipt | str | None:
        """Whether the provider already has ``earlier``: its receipt, None when it has not,
        or, when it cannot say and the rule's ``in_doubt`` policy is not ``resend``, the
        reason to end the row ``unknown`` with. Best effort: a failed lookup never fails the
        message (the metrics count it, see ``MeteredChannel``)."""
        try:
            return await channel.find_sent(earlier, since=row.created_at)
        except ChannelError as exc:
            if exc.code == CIRCUIT_OPEN:
                # The provider is resting: retry later, and ask it then (still in doubt).
                raise ChannelError(
                    str(exc),
                    retryable=True,
                    code=CIRCUIT_OPEN,
                    retry_after=exc.retry_after,
                    maybe_accepted=True,
                ) from exc
            logger.warning(
                "lookup before a retry failed; the in-doubt policy decides",
                extra={
                    "action": "lookup_failed",
                    "notification_id": row.id,
                    "channel": row.channel,
                    "in_doubt": row.in_doubt,
                    "code": exc.code,
                },
            )
            if row.in_doubt == "resend":
                return None
            return (
                "an earlier attempt may have reached the provider and it could not be asked "
                f"({exc}); not sent again (in_doubt: {row.in_doubt})"
            )

    async def _defer(self, row: Claimed, exc: ChannelError) -> str:
        """The provider's circuit is open: move the row, spending no attempt."""
        now = self.clock.now()
        error = _error_text(exc)
        outcome = deferral(
            notification_id=row.id,
            wait_seconds=exc.retry_after or self.settings.breaker_cooldown_seconds,
            not_after=row.not_after,
            now=now,
            error=error,
        )
        if outcome.retry_at is None:
            logger.warning(
                "not sent before its not-after time; the provider was failing",
                extra={"action": "send_expired", "notification_id": row.id, "rule": row.rule_id},
            )
            return await self._finish(row, S.EXPIRED, outcome.reason, error=error)
        await self._db(
            schedule.release,
            notification_id=row.id,
            due_at=outcome.retry_at,
            now=now,
            reason=outcome.reason,
            error=error,
        )
        return "deferred"

    async def _failed_send(self, row: Claimed, attempt: int, exc: Exception) -> str:
        now = self.clock.now()
        failure = _failure_of(exc)
        unexpected = failure.kind == FailureKind.UNEXPECTED
        outcome: Outcome = after_failure(
            notification_id=row.id,
            attempt=row.unexpected_failures + 1 if unexpected else attempt,
            max_attempts=row.max_attempts,
            not_after=row.not_after,
            now=now,
            failure=failure,
            policy=RetryPolicy(
                base_seconds=self.settings.backoff_base_seconds,
                max_seconds=self.settings.backoff_max_seconds,
            ),
        )
        error = failure.error
        code = exc.code if isinstance(exc, ChannelError) else type(exc).__name__
        log = {
            "action": "send_failed",
            "notification_id": row.id,
            "rule": row.rule_id,
            "channel": row.channel,
            "attempt": attempt,
            "failure": str(failure.kind),
            "code": code,
        }
        if outcome.retry_at is not None:
            await self._db(
                schedule.release,
                notification_id=row.id,
                due_at=outcome.retry_at,
                now=now,
                reason=outcome.reason,
                error=error,
                # A plain refusal: the provider does not have it, no need to ask next time.
                forget_body=isinstance(exc, ChannelError) and not exc.maybe_accepted,
                unexpected=unexpected,
            )
            logger.warning("send failed; will retry", extra=log)
            return "retried"
        if outcome.action == "expire":
            logger.warning("send failed; past its not-after time", extra=log)
            return await self._finish(
                row, S.EXPIRED, outcome.reason, error=error, unexpected=unexpected
            )
        if row.channel == ChannelKind.SMS and code == TWILIO_OPTED_OUT and row.recipient:
            await self._db(
                consent.set_consent,
                channel="sms",
                address=row.recipient,
                opted_out=True,
                source="twilio-21610",
                now=now,
            )
        logger.error("send failed for good", extra=log)
        return await self._finish(
            row, S.FAILED, outcome.reason, error=error, fall_back=True, unexpected=unexpected
        )

    async def _finish(
        self,
        row: Claimed,
        status: S,
        reason: str,
        *,
        error: str | None = None,
        fall_back: bool = False,
        unexpected: bool = False,
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
            unexpected=unexpected,
        )
        return str(status)

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
        if not await asyncio.to_thread(self._shows_merged, target, context):
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
        token = await self._db(token_of, address=address, now=self.clock.now())
        return f"{self.public_url}/unsubscribe/{token}"


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


def _error_text(exc: ChannelError) -> str:
    return f"{exc}" if exc.code is None or exc.code in str(exc) else f"{exc.code}: {exc}"


def _failure_of(exc: Exception) -> Failure:
    """Classify what a send raised (see ``carebot.dispatch.retry``)."""
    if isinstance(exc, ChannelError):
        kind = FailureKind.TRANSIENT if exc.retryable else FailureKind.PERMANENT
        return Failure(kind, _error_text(exc), exc.retry_after)
    # Vendor text may quote the address: mask it like the adapters do.
    return Failure(
        FailureKind.UNEXPECTED, f"unexpected error: {type(exc).__name__}: {mask_text(str(exc))}"
    )


def _valid_address(kind: ChannelKind, address: str) -> bool:
    if kind == ChannelKind.SMS:
        return normalize_phone(address) == address
    return valid_email(address)


def _local(instant: datetime, zone: str) -> str:
    return f"{instant.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M %Z}"
