"""The cases pages: every case over a period by status and category, and one case whole."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from carebot.store import case_listing
from carebot.store import cases as case_store
from carebot.store.models import FeedbackRow
from carebot.web._payload import parse_id
from carebot.web.dashboard.feedback_page import DEFAULT_DAYS, page_number
from carebot.web.dashboard.period import chosen_period
from carebot.web.dashboard.views import View, guarded, render

__all__ = ["case_detail", "cases"]

STATUSES = (case_listing.ACTIVE_FILTER, "open", "contacted", "resolved", "dismissed")


def _context(view: View, **values: Any) -> dict[str, Any]:
    return {"csrf": view.csrf, "local": view.local, "parse_time": datetime.fromisoformat, **values}


@guarded
async def cases(view: View) -> Response:
    """``?status=`` (active, open, contacted, resolved, dismissed), ``?category=``,
    ``?from=&to=`` (local days of opening, default the last 30), ``?page=``."""
    query = view.request.query_params
    today = view.runtime.clock.now().astimezone(view.zone).date()
    period = chosen_period(query, today=today, zone=view.zone, default_days=DEFAULT_DAYS)
    status = query.get("status") if query.get("status") in STATUSES else None
    category = (query.get("category") or "")[:60] or None
    page = page_number(query.get("page"))

    def load() -> case_listing.CasePage:
        with view.runtime.db.transaction() as session:
            return case_listing.case_page(
                session,
                since=period.since,
                until=period.until,
                status=status,
                category=category,
                page=page,
            )

    found = await run_in_threadpool(load)
    filters = period.query + (f"&status={status}" if status else "")
    context = _context(
        view,
        found=found,
        period=period,
        status=status,
        category=category,
        statuses=STATUSES,
        filters=filters,
    )
    return render(view.request, "cases.html", context, language=view.language)


@guarded
async def case_detail(view: View) -> Response:
    """One case: its words, history and steps, the order's replies, links to the order."""
    case_id = parse_id(view.request.path_params["case_id"])

    def load() -> tuple[dict[str, Any] | None, list[FeedbackRow], bool]:
        if case_id is None:
            return None, [], False
        with view.runtime.db.transaction() as session:
            case = case_store.get_case(session, case_id)
            if case is None:
                return None, [], False
            replies = case_listing.order_replies(session, case.order_id)
            other_active = case_store.active_case(session, case.order_id)
            has_active = other_active is not None
            return case_store.case_json(case), replies, has_active

    case, replies, has_active = await run_in_threadpool(load)
    if case is None:
        context = _context(view, case=None, replies=[], has_active=False, back="")
        return render(view.request, "case.html", context, language=view.language, status_code=404)
    context = _context(
        view,
        case=case,
        replies=replies,
        has_active=has_active,
        back=view.request.url.path,
        masked=True,
    )
    return render(view.request, "case.html", context, language=view.language)
