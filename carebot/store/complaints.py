"""The feedback page's queries over a chosen period: every complaint, and replies by product.

A complaint is what raised a service alert (``Assessment.needs_attention``): a score of
``LOW_SCORE`` or less, or a reply in a complaint category, scored or not. Every count is one
grouped query; the list is one page of rows plus one query for their products and cases.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.orm import Session

from carebot.store.models import CaseRow, FeedbackRow, LineItemRow

__all__ = [
    "Chosen",
    "Complaint",
    "ComplaintPage",
    "ProductLine",
    "complaint_page",
    "products_by_category",
]

PAGE_SIZE = 50


@dataclass(frozen=True)
class Chosen:
    """The replies asked about: received in [since, until); what counts as a complaint."""

    since: datetime
    until: datetime
    # A score this low or lower is a complaint; so is a reply in one of ``categories``.
    at_most: int
    categories: Collection[str]

    def period(self) -> list[ColumnElement[bool]]:
        return [FeedbackRow.received_at >= self.since, FeedbackRow.received_at < self.until]

    def complaint(self) -> ColumnElement[bool]:
        """A reply that raised an alert: a low score, or words in a complaint category."""
        return or_(
            FeedbackRow.score <= self.at_most, FeedbackRow.category.in_(sorted(self.categories))
        )


@dataclass(frozen=True)
class Complaint:
    id: int
    received_at: datetime
    order_id: str | None
    score: int | None
    category: str
    text: str
    # The order's products by title (else SKU), in line order.
    products: list[str] = field(default_factory=list)
    # The order's latest case: (id, status), if any.
    case: tuple[int, str] | None = None


@dataclass(frozen=True)
class ComplaintPage:
    rows: list[Complaint]
    total: int
    page: int
    pages: int


def _products(session: Session, order_ids: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    if not order_ids:
        return found
    for order_id, sku, title in session.execute(
        select(LineItemRow.order_id, LineItemRow.sku, LineItemRow.title)
        .where(LineItemRow.order_id.in_(order_ids))
        .order_by(LineItemRow.order_id, LineItemRow.position)
    ):
        found.setdefault(order_id, []).append(title or sku or "")
    return found


def _cases(session: Session, order_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    if not order_ids:
        return found
    for case_id, order_id, status in session.execute(
        select(CaseRow.id, CaseRow.order_id, CaseRow.status)
        .where(CaseRow.order_id.in_(order_ids))
        .order_by(CaseRow.id)
    ):
        found[order_id] = (case_id, status)  # the latest wins
    return found


def complaint_page(session: Session, chosen: Chosen, *, page: int = 1) -> ComplaintPage:
    """The complaints received in the period, newest first, ``PAGE_SIZE`` a page."""
    where = [*chosen.period(), chosen.complaint()]
    total = int(session.scalar(select(func.count()).select_from(FeedbackRow).where(*where)) or 0)
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    page = min(max(page, 1), pages)
    replies = session.execute(
        select(
            FeedbackRow.id,
            FeedbackRow.received_at,
            FeedbackRow.order_id,
            FeedbackRow.score,
            FeedbackRow.category,
            FeedbackRow.text,
        )
        .where(*where)
        .order_by(FeedbackRow.received_at.desc(), FeedbackRow.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    order_ids = sorted({r.order_id for r in replies if r.order_id})
    products = _products(session, order_ids)
    cases = _cases(session, order_ids)
    rows = [
        Complaint(
            r.id,
            r.received_at,
            r.order_id,
            r.score,
            r.category,
            r.text,
            products.get(r.order_id or "", []),
            cases.get(r.order_id or ""),
        )
        for r in replies
    ]
    return ComplaintPage(rows, total, page, pages)


@dataclass
class ProductLine:
    """The replies about one product in the period: its name, count, average, categories."""

    sku: str | None
    title: str | None
    replies: int = 0
    scored: int = 0
    score_sum: int = 0
    complaints: int = 0
    by_category: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.title or self.sku or ""

    @property
    def average(self) -> float | None:
        return round(self.score_sum / self.scored, 2) if self.scored else None


def products_by_category(session: Session, chosen: Chosen, *, limit: int = 30) -> list[ProductLine]:
    """Replies in the period by product and category (one grouped query), the most
    complained-about product first."""
    complaint = func.sum(case((chosen.complaint(), 1), else_=0))
    found: dict[tuple[Any, Any], ProductLine] = {}
    for sku, title, category, replies, scored, score_sum, complaints in session.execute(
        select(
            LineItemRow.sku,
            LineItemRow.title,
            FeedbackRow.category,
            func.count(),
            func.count(FeedbackRow.score),
            func.coalesce(func.sum(FeedbackRow.score), 0),
            complaint,
        )
        .join(LineItemRow, LineItemRow.order_id == FeedbackRow.order_id)
        .where(*chosen.period())
        .group_by(LineItemRow.sku, LineItemRow.title, FeedbackRow.category)
    ):
        line = found.setdefault((sku, title), ProductLine(sku, title))
        line.replies += int(replies)
        line.scored += int(scored)
        line.score_sum += int(score_sum)
        line.complaints += int(complaints or 0)
        line.by_category[category] = line.by_category.get(category, 0) + int(replies)
    ordered = sorted(found.values(), key=lambda p: (-p.complaints, -p.replies, p.name))
    return ordered[:limit]
