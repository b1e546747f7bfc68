"""The dispatcher: claim due rows, re-check guards, render, send, record, retry.

Send protocol (see DESIGN.md "Scheduling core"): commit ``sending``, call the provider, commit
``sent``. A crash before ``sending`` only leaves a claim, which the reaper hands back; a crash
after it leaves the one message that may go out twice. Sends run concurrently, at most the
channel's ``concurrency`` in flight; their ``sending`` and ``sent`` writes are group-committed
(``_writes.SendWrites``): a row is still committed ``sending`` before its own call starts.

Guards at send time (``decide.decide``, a pure function), in order: ``not_after``
(expired), a valid address (failed), consent (suppressed; a transactional email overrides an
email opt-out, nothing overrides an SMS STOP), quiet hours and the rule's window (moved), the
frequency cap (merged into a pending message of the same rule to the same address, or moved
to the next free slot; transactional messages are exempt). Moves are not attempts. A refused
``preferred`` notice falls back to the other channel as a new row keyed ``<dedupe
key>:fallback``. Alerts to the merchant (``audience = merchant``) skip consent, quiet hours
and caps: they are the shop's own mail, and a complaint must not wait for the morning.
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

from carebot import holds
from carebot.channels.base import Channel, ChannelKind, SendReceipt
from carebot.clock import Clock
from carebot.dispatch import _prepare
from carebot.dispatch._claim import claim_with_guards, read_guards
from carebot.dispatch._merging import Merging
from carebot.dispatch._outcomes import Outcomes
from carebot.dispatch._writes import SendWrites
from carebot.dispatch.caps import ROLLING_WINDOW
from carebot.dispatch.decide import (
    MERCHANT,
    Finish,
    Guards,
    Hold,
    Merge,
    Policy,
    decide,
    needs_guards,
)
from carebot.exceptions import ChannelError
from carebot.masking import mask_recipient
from carebot.notifications import NotificationStatus as S
from carebot.rendering import Rendered, TemplateRenderer
from carebot.rulebook.windows import DailyWindow
from carebot.segments import count_segments
from carebot.settings import CapSettings, DispatchSettings
from carebot.store import schedule
from carebot.store.database import Database
from carebot.store.schedule import Claimed
from carebot.store.unsubscribe_tokens import random_token
from carebot.unsubscribe import token_of

__all__ = ["DispatchReport", "Dispatcher", "new_worker_id"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

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
        hold: holds.ComplaintHold | None = None,
        new_token: Callable[[], str] = random_token,
        claim_limit: int | None = None,
    ) -> None:
        self.db = db
        # Rows per claim (``runtime.claim_limit``: the batch size, less under a rate limit).
        self.claim_limit = claim_limit or settings.batch_size
        # Where a new unsubscribe token comes from (``carebot simulate`` passes a seeded one).
        self._new_token = new_token
        # A hold beyond quiet hours (``carebot.holds``), read in a transaction at send time.
        self._hold = hold
        self.channels = channels
        self.renderer = renderer
        self.clock = clock
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        self.worker_id = worker_id or new_worker_id()
        caps = caps or CapSettings()
        self._policy = Policy(
            send_window=None if quiet_hours is None else quiet_hours.inverse(),
            caps={ChannelKind.SMS: caps.sms_per_day, ChannelKind.EMAIL: caps.email_per_day},
        )
        # The host of every email's Message-ID.
        self._mail_domain = urlsplit(self.public_url).hostname or "carebot.local"
        # A row becomes `sending` only once a provider slot is free: rows queued behind a
        # slow provider stay `claimed`, so a crash never leaves them in doubt.
        limits = concurrency or {}
        self._slots = {kind: asyncio.Semaphore(limits.get(kind, 8)) for kind in ChannelKind}
        # Virtual-time replays run database work inline: one thread, deterministic order.
        self._inline_db = inline_db
        self._outcomes = Outcomes(self._db, clock=clock, settings=settings)
        self._merging = Merging(self._db, renderer=renderer, clock=clock)
        self._writes = SendWrites(
            lambda work: self._db(work),
            worker=self.worker_id,
            lease=timedelta(seconds=settings.send_lease_seconds),
            inline=inline_db,
        )

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
            claim_with_guards,
            now=now,
            worker=self.worker_id,
            limit=self.claim_limit,
            lease=timedelta(seconds=self.settings.claim_lease_seconds),
            read_next_due=read_next_due,
        )
        report.claimed = len(rows)
        prepared = await self._offload(_prepare.render_batch, self.renderer, rows)
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
                await self._deliver_safely(row, first if n == 0 else None, prepared.get(row.id))
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

    async def _offload(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Blocking work other than the database's (rendering), off the event loop; inline in
        a virtual-time replay."""
        if self._inline_db:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def _deliver_safely(
        self, row: Claimed, guards: Guards | None, prepared: _prepare.Prepared | None
    ) -> str:
        """``_deliver``, except that whatever it raises stays with this row: the others of
        the batch go on, and the row (claimed or sending) is left to the reaper."""
        try:
            return await self._deliver(row, guards, prepared)
        except Exception:
            logger.exception(
                "notification could not be handled; left to the lease reaper",
                extra={"action": "dispatch_error", "notification_id": row.id, "rule": row.rule_id},
            )
            return "errors"

    async def _deliver(
        self, row: Claimed, guards: Guards | None, prepared: _prepare.Prepared | None
    ) -> str:
        now = self.clock.now()
        if guards is None and needs_guards(row, now):
            assert row.recipient is not None
            guards = await self._db(
                read_guards,
                channel=row.channel,
                address=row.recipient,
                since=None if row.transactional else now - ROLLING_WINDOW,
            )
        decision = decide(row, guards, now, self._policy)
        if self._hold is not None and not isinstance(decision, Finish) and self._hold.applies(row):
            decision = await self._complaint_hold(row, now) or decision
        if isinstance(decision, Merge):
            if await self._merging.merge(row, due_by=decision.due_by):
                return "merged"
            decision = decision.otherwise
        if isinstance(decision, Finish):
            return await self._outcomes.finish(
                row, decision.status, decision.reason, fall_back=decision.fall_back
            )
        if isinstance(decision, Hold):
            await self._outcomes.move(row, decision.until, decision.reason, now=now)
            return decision.outcome
        return await self._send(row, ChannelKind(row.channel), prepared)

    async def _complaint_hold(self, row: Claimed, now: datetime) -> Hold | Finish | None:
        """A marketing message waits while its customer has an unhandled complaint."""
        assert self._hold is not None
        found = await self._db(self._hold, row=row, now=now)
        if found is None:
            return None
        if found.until > row.not_after:
            return Finish(S.EXPIRED, f"not sent: {found.reason}")
        return Hold(found.until, found.reason)

    async def _send(
        self, row: Claimed, kind: ChannelKind, prepared: _prepare.Prepared | None
    ) -> str:
        """Hand ``row`` to its channel, rendered (the guards have passed); ``prepared`` is
        its render from the claim, if it had one."""
        assert row.recipient is not None
        context, headers = await self._unsubscribe(row, kind)
        rendered = prepared
        if rendered is None:
            rendered = await self._offload(_prepare.render, self.renderer, row, kind, context)
        if not isinstance(rendered, Rendered):
            return await self._outcomes.finish(row, S.FAILED, f"template error: {rendered}")
        segments = count_segments(rendered.text)[1] if kind == ChannelKind.SMS else None
        message = _prepare.outbound(
            row,
            kind,
            rendered,
            context,
            headers,
            public_url=self.public_url,
            mail_domain=self._mail_domain,
        )
        channel = self.channels[kind]
        async with self._slots[kind]:
            # The provider's rate limit is waited for while the row is only claimed; an open
            # circuit turns the row away here, before an attempt is spent on it.
            try:
                await channel.ready()
            except ChannelError as exc:
                return await self._outcomes.defer(row, exc)
            claimed = await self._writes.sending(
                notification_id=row.id,
                now=self.clock.now(),
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
                    lookup = await self._outcomes.look_up(
                        channel, replace(message, body=row.body), row
                    )
                    if isinstance(lookup, str):
                        return await self._outcomes.finish(row, S.UNKNOWN, lookup)
                    found = lookup
                receipt = found or await channel.send(message)
            except ChannelError as exc:
                return await self._outcomes.failed_send(row, attempt, exc)
            except Exception as exc:
                # A poison row: something about this message makes the send raise. It is a
                # failed attempt like any other; the rest of the batch goes on.
                logger.warning(
                    "send raised an unexpected error",
                    exc_info=True,
                    extra={"action": "send_error", "notification_id": row.id, "rule": row.rule_id},
                )
                return await self._outcomes.failed_send(row, attempt, exc)
        await self._writes.sent(
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

    async def _unsubscribe(
        self, row: Claimed, kind: ChannelKind
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The context to render ``row`` with and its mail headers: an email to a customer
        carries an unsubscribe link."""
        context = dict(row.context)
        if kind != ChannelKind.EMAIL or row.audience == MERCHANT:
            return context, {}
        assert row.recipient is not None
        token = await self._db(
            token_of, address=row.recipient, now=self.clock.now(), new_token=self._new_token
        )
        url = f"{self.public_url}/unsubscribe/{token}"
        context["unsubscribe_url"] = url
        # RFC 2369 and RFC 8058: mail clients show an unsubscribe button that POSTs here.
        headers = {
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        return context, headers
