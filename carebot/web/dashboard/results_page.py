"""The results page: per rule over a chosen period, and the reorders reminders brought."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from carebot.rulebook.schema import RuleKind
from carebot.store.results import RuleResult, results_by_rule
from carebot.web.dashboard.views import View, guarded, render

__all__ = ["results"]

DEFAULT_DAYS = 30
MAX_DAYS = 366


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@guarded
async def results(view: View) -> Response:
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (local days, both included; default the last 30)."""
    now = view.runtime.clock.now()
    today = now.astimezone(view.zone).date()
    last = _day(view.request.query_params.get("to")) or today
    first = _day(view.request.query_params.get("from")) or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        first, last = last, first
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    since = datetime.combine(first, datetime.min.time(), tzinfo=view.zone)
    until = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=view.zone)
    rulebook = view.runtime.rules()
    marketing = {r.id for r in rulebook.rules if r.kind == RuleKind.MARKETING}
    window = timedelta(days=view.runtime.settings.service.reorder_window_days)

    def load() -> list[RuleResult]:
        with view.runtime.db.transaction() as session:
            return results_by_rule(
                session, since=since, until=until, marketing=marketing, window=window
            )

    found = await run_in_threadpool(load)
    context: dict[str, Any] = {
        "csrf": view.csrf,
        "local": view.local,
        "results": found,
        "first": first.isoformat(),
        "last": last.isoformat(),
        "window_days": window.days,
    }
    return render(view.request, "results.html", context, language=view.language)
