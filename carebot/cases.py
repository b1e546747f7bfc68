"""Service recovery: every complaint becomes a case, followed until the customer is happy again.

A case opens when a feedback reply needs attention (a low score or a complaint category), or
by hand (a ``case.updated`` event with ``status: open``); one case per order is active (open or
contacted) at a time, and later replies join it. The merchant moves it open → contacted →
resolved (or dismissed) with ``case.updated`` events (dashboard, admin API, or a replayed
file); each step has a response deadline in business hours (``respond_within`` of its
category), watched by ``watchers/cases.py``. A resolved case derives ``case.resolved``, which a
rule can turn into a question to the customer; the answer to that question (4–5 or yes) marks
the case recovered, or (1–3 or no) reopens it.
"""

from __future__ import annotations

import enum
import logging
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from carebot.business_hours import BusinessHours
from carebot.contacts import normalize_phone, valid_email
from carebot.events import Event, EventType, Order
from carebot.feedback import REPLY_WINDOW
from carebot.rulebook.schema import Rulebook
from carebot.store import cases as store
from carebot.store.models import CaseRow, NotificationRow

__all__ = ["CaseStatus", "Outcome", "ServiceDesk", "check_update", "parse_answer"]

logger = logging.getLogger(__name__)

# Where the pipeline stores the events it derives (``feedback:<message event>``).
DERIVED_SOURCE = "derived"
# A category the rules do not know (a case opened by hand as "other") gets this long.
DEFAULT_RESPONSE = timedelta(days=1)
# An answer of this score or more to "was it put right?" means yes.
RECOVERED_SCORE = 4


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    CONTACTED = "contacted"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


# What each status may become; back to open from resolved or dismissed is a reopening.
MOVES: dict[str, frozenset[str]] = {
    CaseStatus.OPEN: frozenset({CaseStatus.CONTACTED, CaseStatus.RESOLVED, CaseStatus.DISMISSED}),
    CaseStatus.CONTACTED: frozenset({CaseStatus.RESOLVED, CaseStatus.DISMISSED}),
    CaseStatus.RESOLVED: frozenset({CaseStatus.OPEN}),
    CaseStatus.DISMISSED: frozenset({CaseStatus.OPEN}),
}
# The admin API's and the dashboard's verbs.
VERBS = {
    "contacted": "contacted",
    "resolved": "resolved",
    "dismissed": "dismissed",
    "reopen": "open",
}


class Outcome(enum.StrEnum):
    DONE = "done"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"


_NO = re.compile(r"\b(no|not yet|nope)\b|没有|还没|不满意|不行|没解决|未解决|否", re.IGNORECASE)
_YES = re.compile(r"\b(yes|yeah|solved|fixed)\b|是的|好了|解决了|满意|可以", re.IGNORECASE)


def parse_answer(text: str, score: int | None) -> bool | None:
    """Was it put right? A score decides (4–5 yes, 1–3 no), else yes/no words; None: unclear."""
    if score is not None:
        return score >= RECOVERED_SCORE
    if _NO.search(text):
        return False
    if _YES.search(text):
        return True
    return None


def check_update(session: Session, case_id: int, status: str) -> Outcome:
    """Whether case ``case_id`` may move to ``status`` now (the API asks before it acts)."""
    case = store.get_case(session, case_id)
    if case is None:
        return Outcome.NOT_FOUND
    if status not in MOVES.get(case.status, frozenset()):
        return Outcome.CONFLICT
    if status == CaseStatus.OPEN and store.active_case(session, case.order_id) is not None:
        return Outcome.CONFLICT  # one active case per order
    return Outcome.DONE


class ServiceDesk:
    """What the pipeline does with feedback and case events, inside the ingest transaction."""

    def __init__(self, *, business: BusinessHours | None = None) -> None:
        self.business = business or BusinessHours()

    def deadline(self, start: datetime, category: str, rulebook: Rulebook) -> datetime:
        found = rulebook.category(category)
        within = found.response_time if found is not None else DEFAULT_RESPONSE
        return self.business.add(start, within)

    def derive(
        self, session: Session, event: Event, *, rulebook: Rulebook, now: datetime
    ) -> list[Event]:
        """Apply ``event`` to the cases; the events that follow (``case.resolved``)."""
        if event.type == EventType.FEEDBACK_RECEIVED:
            self._on_feedback(session, event, rulebook=rulebook)
        elif event.type == EventType.MESSAGE_RECEIVED:
            self._on_message(session, event)
        elif event.type == EventType.CASE_UPDATED:
            return self._on_update(session, event, rulebook=rulebook)
        elif event.type == EventType.CASE_OVERDUE and event.case and event.case.get("id"):
            case = store.get_case(session, int(event.case["id"]))
            if case is not None:
                case.overdue_at = case.overdue_at or event.occurred_at
                step = event.case.get("step")
                case.alerted_step = max(
                    case.alerted_step or 0, step if isinstance(step, int) else 0
                )
        return []

    def _on_feedback(self, session: Session, event: Event, *, rulebook: Rulebook) -> None:
        details = event.feedback or {}
        order_id = event.order_id
        if not order_id:
            return
        text = str(details.get("text") or "")
        at = event.occurred_at
        if self._asked_about_case(session, details.get("request_id"), rulebook):
            case = store.latest_case(session, order_id)
            if case is not None and case.status == CaseStatus.RESOLVED:
                self._answer(case, parse_answer(text, details.get("score")), text, at, rulebook)
                return
        active = store.active_case(session, order_id)
        if active is not None:
            store.note_step(active, at=at, who="customer", status=active.status, note=text)
        elif details.get("needs_attention"):
            category = str(details.get("category") or "other")
            case = self._open(
                session, order_id, category, at=at, who="customer", note=text, rulebook=rulebook
            )
            logger.info(
                "case opened",
                extra={"action": "case_opened", "case_id": case.id, "category": category},
            )

    @staticmethod
    def _on_message(session: Session, event: Event) -> None:
        """A message that is not an answer to a feedback request joins its sender's open case."""
        message = event.message
        if message is None or store.event_recorded(
            session, source=DERIVED_SOURCE, event_id=f"feedback:{event.id}"
        ):
            return  # feedback: already handled as feedback.received
        email = valid_email(message.from_)
        address = message.from_.strip().lower() if email else normalize_phone(message.from_)
        if not address:
            return
        case = store.active_case_for(
            session,
            channel="email" if email else "sms",
            address=address,
            since=event.occurred_at - REPLY_WINDOW,
        )
        if case is not None:
            store.note_step(
                case, at=event.occurred_at, who="customer", status=case.status, note=message.body
            )

    @staticmethod
    def _asked_about_case(session: Session, request_id: Any, rulebook: Rulebook) -> bool:
        """Whether the request this reply answers came from a rule on ``case.resolved``."""
        if not isinstance(request_id, int):
            return False
        rule_id = session.scalar(
            select(NotificationRow.rule_id).where(NotificationRow.id == request_id)
        )
        rule = rulebook.rule(rule_id) if rule_id else None
        return rule is not None and str(EventType.CASE_RESOLVED) in rule.on

    def _answer(
        self, case: CaseRow, yes: bool | None, text: str, at: datetime, rulebook: Rulebook
    ) -> None:
        if yes is None:
            store.note_step(case, at=at, who="customer", status=case.status, note=text)
            return
        case.recovered = yes
        if yes:
            store.note_step(case, at=at, who="customer", status=case.status, note=text)
            return
        self._move(case, CaseStatus.OPEN, at=at, who="customer", note=text, rulebook=rulebook)

    def _move(
        self, case: CaseRow, status: str, *, at: datetime, who: str, note: str, rulebook: Rulebook
    ) -> None:
        case.status = status
        case.step += 1
        if status in (CaseStatus.CONTACTED, CaseStatus.RESOLVED) and case.contacted_at is None:
            case.contacted_at = at  # the first time the shop reached the customer
        if status == CaseStatus.RESOLVED:
            case.resolved_at = at
        active = status in store.ACTIVE
        case.deadline_at = self.deadline(at, case.category, rulebook) if active else None
        store.note_step(case, at=at, who=who, status=status, note=note)

    def _on_update(self, session: Session, event: Event, *, rulebook: Rulebook) -> list[Event]:
        spec = event.case or {}
        given = str(spec.get("status") or "")
        wanted = VERBS.get(given, given)
        who = str(spec.get("who") or "merchant")
        note = str(spec.get("note") or "")
        at = event.occurred_at
        order_id = event.order_id
        case = self._case_of(session, spec, order_id)
        if given == CaseStatus.OPEN and spec.get("id") is None and order_id:
            # Opened by hand (from the order's timeline); "reopen" takes up the last case.
            category = str(spec.get("category") or "other")
            if store.active_case(session, order_id) is None:
                self._open(
                    session, order_id, category, at=at, who=who, note=note, rulebook=rulebook
                )
            return []
        if case is None or wanted not in MOVES.get(case.status, frozenset()):
            logger.warning(
                "case update ignored",
                extra={"action": "case_update_ignored", "event_id": event.id, "status": wanted},
            )
            return []
        if wanted == CaseStatus.OPEN and store.active_case(session, case.order_id) is not None:
            return []
        self._move(case, wanted, at=at, who=who, note=note, rulebook=rulebook)
        session.flush()
        if wanted != CaseStatus.RESOLVED:
            return []
        return [
            Event(
                id=f"case:{case.id}:resolved:{case.step}",
                type=EventType.CASE_RESOLVED,
                occurred_at=at,
                order=Order(id=case.order_id),
                case=self.describe(case, rulebook),
            )
        ]

    @staticmethod
    def _case_of(session: Session, spec: dict[str, Any], order_id: str | None) -> CaseRow | None:
        """The case an update names: by id, else the order's active case, else its latest."""
        if spec.get("id") is not None:
            return store.get_case(session, int(spec["id"]))
        if order_id:
            return store.active_case(session, order_id) or store.latest_case(session, order_id)
        return None

    def _open(
        self,
        session: Session,
        order_id: str,
        category: str,
        *,
        at: datetime,
        who: str,
        note: str,
        rulebook: Rulebook,
    ) -> CaseRow:
        """A new case for the order, its deadline from the category's promise."""
        return store.open_case(
            session,
            order_id=order_id,
            category=category,
            text=note,
            at=at,
            deadline=self.deadline(at, category, rulebook),
            who=who,
            note=note,
        )

    def describe(self, case: CaseRow, rulebook: Rulebook) -> dict[str, Any]:
        """The case as templates see it: its category's label, instants in the shop's zone."""
        found = rulebook.category(case.category)
        label = found.label_in("") if found is not None else case.category
        data = store.case_json(case, zone=ZoneInfo(self.business.zone))
        return {**data, "category_label": label}
