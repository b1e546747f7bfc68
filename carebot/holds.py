"""Holds beyond quiet hours: a marketing message waits while its customer has a complaint
nobody has handled yet (a case from service recovery that is still open or contacted).

Decided at send time, next to the other guards (consent, quiet hours, caps), so a case opened
after the message was planned holds it too, and one resolved in the meantime releases it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carebot.rulebook.schema import Rulebook, RuleKind
from carebot.store.cases import ACTIVE
from carebot.store.models import CaseRow

__all__ = ["COMPLAINT_RECHECK", "ComplaintHold", "Hold"]

# How soon a held message looks again whether the complaint has been handled.
COMPLAINT_RECHECK = timedelta(hours=1)


@dataclass(frozen=True)
class Hold:
    until: datetime
    reason: str


class ComplaintHold:
    """The complaint hold over the current rule set (``rules`` gives it, reloads included)."""

    def __init__(self, rules: Callable[[], Rulebook]) -> None:
        self._rules = rules

    def applies(self, row: Any) -> bool:
        """Whether ``row`` could be held at all: its rule is ``kind: marketing`` and it has a
        customer. Decided without the database, so other messages cost no transaction."""
        rule = self._rules().rule(row.rule_id)
        return rule is not None and rule.kind == RuleKind.MARKETING and bool(row.customer_id)

    def __call__(self, session: Session, *, row: Any, now: datetime) -> Hold | None:
        """A hold for ``row`` (a claimed notification) when it applies and its customer has an
        unhandled complaint; None to send it."""
        if not self.applies(row):
            return None
        case = session.scalars(
            select(CaseRow)
            .where(CaseRow.customer_id == row.customer_id, CaseRow.status.in_(ACTIVE))
            .order_by(CaseRow.opened_at)
            .limit(1)
        ).first()
        if case is None:
            return None
        return Hold(
            until=now + COMPLAINT_RECHECK,
            reason=(
                f"held: the customer has an unhandled complaint (case {case.id}, "
                f"{case.category}, opened {case.opened_at:%Y-%m-%d %H:%M} UTC, "
                f"order {case.order_id})"
            ),
        )
