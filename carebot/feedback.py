"""Reply capture: a customer's answer to a feedback request, scored and classified.

A ``message.received`` from a number that was sent a feedback request (a message of a rule
with ``expects_reply: true``) in the last ``REPLY_WINDOW`` and has not answered it yet is that
request's answer: its score (1–5), its words and an after-sales category are stored, and the
pipeline derives a ``feedback.received`` event for the rules (a merchant alert for a low score
or a complaint, an acknowledgement to the customer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from carebot.contacts import normalize_phone, valid_email
from carebot.events import Event, EventType, Order
from carebot.rulebook.schema import FeedbackCategory, Rulebook
from carebot.store import feedback as store

__all__ = ["OTHER", "REPLY_WINDOW", "Assessment", "assess", "capture_reply", "parse_score"]

# A reply this long after the request is a new conversation, not an answer to it.
REPLY_WINDOW = timedelta(days=14)
# The category of a reply no keyword matches; not a complaint.
OTHER = "other"
# A score this low asks for service recovery whatever the words.
LOW_SCORE = 2

_FULL_WIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
_NUMBER = re.compile(r"\d+")
_CHINESE = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
# 一 starts words (一般 "so-so", 一直 "always"): a Chinese numeral is a score only when it
# stands alone or is followed by a unit of rating (五星, 三分, 两颗星).
_CHINESE_SCORE = re.compile(r"([一二两三四五])(?=[分星颗]|[^\u4e00-\u9fff]|$)")
_CJK_BEFORE = re.compile(r"[\u4e00-\u9fff]$")


def parse_score(text: str) -> int | None:
    """The 1–5 score in a reply: its first number (also full-width), else a Chinese numeral."""
    normalized = text.translate(_FULL_WIDTH)
    number = _NUMBER.search(normalized)
    if number is not None:
        value = int(number.group())
        return value if 1 <= value <= 5 else None
    for found in _CHINESE_SCORE.finditer(normalized):
        before = normalized[: found.start()]
        followed_by_unit = normalized[found.end() : found.end() + 1] in {"分", "星", "颗"}
        # 十五, 统一: a numeral inside a Chinese word is not a score unless a unit follows it.
        if followed_by_unit or not _CJK_BEFORE.search(before) or before.endswith(("给", "打")):
            return _CHINESE[found.group(1)]
    return None


@dataclass(frozen=True)
class Assessment:
    score: int | None
    category: str
    label: str
    complaint: bool

    @property
    def needs_attention(self) -> bool:
        """A low score, or words that name a problem: the merchant should step in."""
        return self.complaint or (self.score is not None and self.score <= LOW_SCORE)


def classify(text: str, categories: Sequence[FeedbackCategory]) -> FeedbackCategory | None:
    """The first category (in file order) one of whose keywords the text contains, any case."""
    folded = text.casefold()
    for category in categories:
        if any(keyword.casefold() in folded for keyword in category.keywords):
            return category
    return None


def assess(text: str, categories: Sequence[FeedbackCategory]) -> Assessment:
    """Score and classify a reply."""
    category = classify(text, categories)
    if category is None:
        return Assessment(parse_score(text), OTHER, OTHER, complaint=False)
    return Assessment(parse_score(text), category.id, category.label_in(""), category.complaint)


def capture_reply(session: Session, event: Event, *, rulebook: Rulebook) -> Event | None:
    """Store ``event`` (a ``message.received``) as feedback; the derived event, or None.

    None when it answers no open request (not every message is feedback).
    """
    message = event.message
    reply_rules = rulebook.reply_rule_ids()
    if message is None or not reply_rules:
        return None
    address = (
        message.from_.strip().lower()
        if valid_email(message.from_)
        else normalize_phone(message.from_)
    )
    if not address:
        return None
    request = store.open_request(
        session,
        channel="email" if "@" in address else "sms",
        address=address,
        rule_ids=reply_rules,
        since=event.occurred_at - REPLY_WINDOW,
    )
    if request is None:
        return None
    found = assess(message.body, rulebook.feedback)
    if not store.record_feedback(
        session,
        request=request,
        score=found.score,
        text=message.body,
        category=found.category,
        received_at=event.occurred_at,
    ):
        return None
    details: dict[str, Any] = {
        "score": found.score,
        "text": message.body,
        "category": found.category,
        "category_label": found.label,
        "complaint": found.complaint,
        "needs_attention": found.needs_attention,
        "request_id": request.notification_id,
        "history": store.shipment_history(session, request.order_id) if request.order_id else [],
    }
    return Event(
        id=f"feedback:{event.id}",
        type=EventType.FEEDBACK_RECEIVED,
        occurred_at=event.occurred_at,
        order=Order(id=request.order_id) if request.order_id else None,
        feedback=details,
    )
