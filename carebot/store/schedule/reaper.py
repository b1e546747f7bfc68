"""The lease reaper: rows whose worker died go back, or end by their in-doubt policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, update
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store.schedule._sql import TABLE, execute

__all__ = [
    "REAPED_GAVE_UP",
    "REAPED_LATE_CLAIM",
    "REAPED_LATE_SEND",
    "REAPED_RESEND",
    "REAPED_UNKNOWN",
    "ReapReport",
    "reap_expired_leases",
]


@dataclass(frozen=True)
class ReapReport:
    released: int
    resent: int
    unknown: int
    expired: int = 0
    failed: int = 0


# Reasons the reaper writes.
REAPED_LATE_CLAIM = "not sent: past its not-after time when its worker's claim ran out"
REAPED_RESEND = "sender stopped mid-send; the provider is asked before it goes again"
REAPED_UNKNOWN = "sender stopped mid-send; the provider may or may not have it"
REAPED_LATE_SEND = (
    "sender stopped mid-send, past its not-after time: not sent again; "
    "the provider may or may not have it"
)
REAPED_GAVE_UP = (
    "gave up: the sender stopped mid-send on the last of its attempts; "
    "the provider may or may not have it"
)


def reap_expired_leases(session: Session, *, now: datetime) -> ReapReport:
    """Recover rows whose worker died: claims go back; in-doubt sends follow their policy.

    A row is never handed back past its ``not_after`` or its attempts: a claim that ran out
    late ends ``expired``; a send that died is an unexpected failure, and the one that uses up
    ``max_attempts`` ends ``failed`` (a message that kills its sender is not tried for ever).
    """
    expired = TABLE.c.locked_until < now
    late = TABLE.c.not_after < now
    claimed = TABLE.c.status == str(S.CLAIMED)
    sending = TABLE.c.status == str(S.SENDING)
    resend = TABLE.c.in_doubt == "resend"
    exhausted = TABLE.c.unexpected_failures + 1 >= TABLE.c.max_attempts
    strike = {"unexpected_failures": TABLE.c.unexpected_failures + 1}

    def _update(where: Any, **values: Any) -> int:
        statement = (
            update(TABLE)
            .where(expired, where)
            .values(locked_by=None, locked_until=None, updated_at=now, **values)
        )
        return execute(session, statement, flush=True).rowcount

    late_claims = _update(and_(claimed, late), status=str(S.EXPIRED), reason=REAPED_LATE_CLAIM)
    released = _update(claimed, status=str(S.SCHEDULED))
    failed = _update(
        and_(sending, resend, exhausted), status=str(S.FAILED), reason=REAPED_GAVE_UP, **strike
    )
    late_sends = _update(
        and_(sending, resend, late), status=str(S.UNKNOWN), reason=REAPED_LATE_SEND, **strike
    )
    resent = _update(and_(sending, resend), status=str(S.SCHEDULED), reason=REAPED_RESEND, **strike)
    unknown = _update(sending, status=str(S.UNKNOWN), reason=REAPED_UNKNOWN, **strike)
    return ReapReport(
        released=released,
        resent=resent,
        unknown=unknown + late_sends,
        expired=late_claims,
        failed=failed,
    )
