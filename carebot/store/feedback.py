"""Customer replies to feedback requests: finding the request, storing the reply, reporting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from carebot.notifications import NotificationStatus as S
from carebot.store._upsert import insert_ignore
from carebot.store.models import EventRow, FeedbackRow, LineItemRow, NotificationRow, ShipmentRow

__all__ = [
    "FeedbackReport",
    "FeedbackRequest",
    "ProductFeedback",
    "feedback_report",
    "open_request",
    "record_feedback",
    "shipment_history",
]

# A request counts as asked once it left; what the provider said about it afterwards is moot.
_ASKED = (S.SENDING, S.SENT, S.DELIVERED, S.UNKNOWN)
_SHIPPING_EVENTS = ("order.shipped", "shipment.updated", "order.delivered")


@dataclass(frozen=True)
class FeedbackRequest:
    notification_id: int
    order_id: str | None
    customer_id: str | None
    sent_at: datetime | None


def open_request(
    session: Session, *, channel: str, address: str, rule_ids: Iterable[str], since: datetime
) -> FeedbackRequest | None:
    """The most recent feedback request to ``address`` sent since ``since`` and not answered."""
    answered = select(FeedbackRow.notification_id).where(
        FeedbackRow.notification_id == NotificationRow.id
    )
    row = session.execute(
        select(
            NotificationRow.id,
            NotificationRow.order_id,
            NotificationRow.customer_id,
            NotificationRow.sent_at,
        )
        .where(
            NotificationRow.channel == channel,
            NotificationRow.recipient == address,
            NotificationRow.rule_id.in_(list(rule_ids)),
            NotificationRow.status.in_([str(s) for s in _ASKED]),
            NotificationRow.sent_at >= since,
            ~answered.exists(),
        )
        .order_by(NotificationRow.sent_at.desc(), NotificationRow.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return FeedbackRequest(row.id, row.order_id, row.customer_id, row.sent_at)


def record_feedback(
    session: Session,
    *,
    request: FeedbackRequest,
    score: int | None,
    text: str,
    category: str,
    received_at: datetime,
) -> bool:
    """Store the reply to ``request``; False when that request already has one."""
    statement = (
        insert_ignore(session, FeedbackRow, ["notification_id"])
        .values(
            order_id=request.order_id,
            customer_id=request.customer_id,
            notification_id=request.notification_id,
            score=score,
            text=text,
            category=category,
            received_at=received_at,
        )
        .returning(FeedbackRow.id)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def shipment_history(session: Session, order_id: str) -> list[dict[str, Any]]:
    """What the carriers said about the order's parcels, oldest first (JSON-friendly)."""
    shipment_ids = select(ShipmentRow.id).where(ShipmentRow.order_id == order_id)
    rows = session.execute(
        select(EventRow.occurred_at, EventRow.type, EventRow.shipment_id, EventRow.payload)
        .where(
            EventRow.type.in_(_SHIPPING_EVENTS),
            or_(EventRow.order_id == order_id, EventRow.shipment_id.in_(shipment_ids)),
        )
        .order_by(EventRow.occurred_at, EventRow.id)
    ).all()
    history = []
    for occurred_at, kind, shipment_id, payload in rows:
        shipment = (payload or {}).get("shipment") or {}
        status = shipment.get("status") or {
            "order.shipped": "in_transit",
            "order.delivered": "delivered",
        }.get(kind)
        history.append(
            {
                # As the source wrote it, in its own offset: the merchant reads local times.
                "occurred_at": (payload or {}).get("occurred_at") or occurred_at.isoformat(),
                "type": kind,
                "shipment_id": shipment_id,
                "status": status,
                "carrier": shipment.get("carrier"),
                "tracking_number": shipment.get("tracking_number"),
            }
        )
    return history


@dataclass
class ProductFeedback:
    """The replies about one product (by SKU, else title)."""

    sku: str | None
    title: str | None
    replies: int = 0
    scores: list[int] = field(default_factory=list)
    low_scores: int = 0
    by_category: dict[str, int] = field(default_factory=dict)

    @property
    def average(self) -> float | None:
        return round(sum(self.scores) / len(self.scores), 2) if self.scores else None

    def as_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "title": self.title,
            "replies": self.replies,
            "average_score": self.average,
            "low_scores": self.low_scores,
            "by_category": self.by_category,
        }


@dataclass
class FeedbackReport:
    replies: int = 0
    by_score: dict[int, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    products: list[ProductFeedback] = field(default_factory=list)

    @property
    def average(self) -> float | None:
        total = sum(self.by_score.values())
        if not total:
            return None
        return round(sum(s * n for s, n in self.by_score.items()) / total, 2)

    def as_json(self) -> dict[str, Any]:
        return {
            "replies": self.replies,
            "average_score": self.average,
            "by_score": {str(s): n for s, n in sorted(self.by_score.items())},
            "by_category": self.by_category,
            "by_product": [p.as_json() for p in self.products],
        }


# A score this low is a complaint whatever words came with it.
LOW_SCORE = 2


def feedback_report(
    session: Session, *, since: datetime | None = None, other: str = "other"
) -> FeedbackReport:
    """Scores and categories overall and by product; the most complained-about product first."""
    query = select(FeedbackRow).order_by(FeedbackRow.received_at, FeedbackRow.id)
    if since is not None:
        query = query.where(FeedbackRow.received_at >= since)
    replies = session.scalars(query).all()
    report = FeedbackReport(replies=len(replies))
    order_ids = {r.order_id for r in replies if r.order_id}
    items: dict[str, list[tuple[str | None, str | None]]] = {}
    if order_ids:
        for order_id, sku, title in session.execute(
            select(LineItemRow.order_id, LineItemRow.sku, LineItemRow.title)
            .where(LineItemRow.order_id.in_(order_ids))
            .order_by(LineItemRow.order_id, LineItemRow.position)
        ):
            items.setdefault(order_id, []).append((sku, title))
    products: dict[str, ProductFeedback] = {}
    for reply in replies:
        if reply.score is not None:
            report.by_score[reply.score] = report.by_score.get(reply.score, 0) + 1
        report.by_category[reply.category] = report.by_category.get(reply.category, 0) + 1
        for sku, title in items.get(reply.order_id or "", []):
            key = sku or f"title:{title}"
            product = products.setdefault(key, ProductFeedback(sku=sku, title=title))
            product.replies += 1
            if reply.score is not None:
                product.scores.append(reply.score)
                product.low_scores += int(reply.score <= LOW_SCORE)
            product.by_category[reply.category] = product.by_category.get(reply.category, 0) + 1

    def complaints(p: ProductFeedback) -> int:
        return sum(n for c, n in p.by_category.items() if c != other)

    report.products = sorted(
        products.values(),
        key=lambda p: (-complaints(p), -p.low_scores, p.average or 0, p.sku or p.title or ""),
    )
    return report
