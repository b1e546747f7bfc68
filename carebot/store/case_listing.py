"""The dashboard's cases page: one page of cases over a period, filtered by status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from carebot.store.models import CaseRow, FeedbackRow

__all__ = ["ACTIVE_FILTER", "CasePage", "case_page", "order_replies"]

PAGE_SIZE = 50
# ``?status=active``: the cases someone still has to act on.
ACTIVE_FILTER = "active"
_ACTIVE = ("open", "contacted")


@dataclass(frozen=True)
class CasePage:
    rows: list[CaseRow]
    total: int
    page: int
    pages: int


def case_page(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    status: str | None = None,
    category: str | None = None,
    page: int = 1,
) -> CasePage:
    """Cases opened in [since, until), newest first (active: nearest deadline first)."""
    where: list[ColumnElement[bool]] = [CaseRow.opened_at >= since, CaseRow.opened_at < until]
    if status == ACTIVE_FILTER:
        where.append(CaseRow.status.in_(_ACTIVE))
    elif status:
        where.append(CaseRow.status == status)
    if category:
        where.append(CaseRow.category == category)
    total = int(session.scalar(select(func.count()).select_from(CaseRow).where(*where)) or 0)
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    page = min(max(page, 1), pages)
    order = (
        (CaseRow.deadline_at, CaseRow.id)
        if status == ACTIVE_FILTER
        else (CaseRow.opened_at.desc(), CaseRow.id.desc())
    )
    rows = session.scalars(
        select(CaseRow)
        .where(*where)
        .order_by(*order)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    return CasePage(list(rows), total, page, pages)


def order_replies(session: Session, order_id: str, *, limit: int = 50) -> list[FeedbackRow]:
    """The customer's replies about one order, oldest first."""
    return list(
        session.scalars(
            select(FeedbackRow)
            .where(FeedbackRow.order_id == order_id)
            .order_by(FeedbackRow.received_at, FeedbackRow.id)
            .limit(limit)
        )
    )
