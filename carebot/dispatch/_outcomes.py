"""What becomes of a row that is not sent: finished, deferred, retried, or found already sent.

The dispatcher's outcomes after a decision or a failed call, each one short transaction:
``move`` puts a row back on the schedule (a hold, a deferral, a retry), ``finish`` ends a
row (and schedules its fallback), ``defer`` moves a row turned away by an open circuit
without spending an attempt, ``failed_send`` applies the retry rule
(``carebot.dispatch.retry``) to a failed attempt, and ``look_up`` asks the provider, before
a retry, whether an earlier attempt reached it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from carebot.channels.base import Channel, ChannelKind, OutboundMessage, SendReceipt
from carebot.channels.guards import CIRCUIT_OPEN
from carebot.clock import Clock
from carebot.dispatch._fallback import fallback_for, finish_and_fall_back
from carebot.dispatch.retry import (
    Failure,
    FailureKind,
    Outcome,
    RetryPolicy,
    after_failure,
    deferral,
)
from carebot.exceptions import ChannelError
from carebot.masking import mask_text
from carebot.notifications import NotificationStatus as S
from carebot.settings import DispatchSettings
from carebot.store import consent, schedule
from carebot.store.schedule import Claimed

__all__ = ["Outcomes"]

logger = logging.getLogger("carebot.dispatch.dispatcher")

# Twilio error 21610: the recipient replied STOP; the number must not be texted again.
TWILIO_OPTED_OUT = "21610"


class Outcomes:
    """Records what happened to rows that were not (or not yet) sent."""

    def __init__(
        self,
        db: Callable[..., Awaitable[Any]],
        *,
        clock: Clock,
        settings: DispatchSettings,
    ) -> None:
        self._db = db
        self.clock = clock
        self.settings = settings

    async def look_up(
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

    async def defer(self, row: Claimed, exc: ChannelError) -> str:
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
            return await self.finish(row, S.EXPIRED, outcome.reason, error=error)
        await self.move(row, outcome.retry_at, outcome.reason, now=now, error=error)
        return "deferred"

    async def failed_send(self, row: Claimed, attempt: int, exc: Exception) -> str:
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
            await self.move(
                row,
                outcome.retry_at,
                outcome.reason,
                now=now,
                error=error,
                # A plain refusal: the provider does not have it, no need to ask next time.
                forget_body=isinstance(exc, ChannelError) and not exc.maybe_accepted,
                unexpected=unexpected,
            )
            logger.warning("send failed; will retry", extra=log)
            return "retried"
        if outcome.action == "expire":
            logger.warning("send failed; past its not-after time", extra=log)
            return await self.finish(
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
        return await self.finish(
            row, S.FAILED, outcome.reason, error=error, fall_back=True, unexpected=unexpected
        )

    async def move(
        self,
        row: Claimed,
        until: datetime,
        reason: str | None,
        *,
        now: datetime,
        error: str | None = None,
        forget_body: bool = False,
        unexpected: bool = False,
    ) -> None:
        """Put ``row`` back on the schedule at ``until``: a hold, a deferral or a retry
        (``schedule.release``)."""
        await self._db(
            schedule.release,
            notification_id=row.id,
            due_at=until,
            now=now,
            reason=reason,
            error=error,
            forget_body=forget_body,
            unexpected=unexpected,
        )

    async def finish(
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
