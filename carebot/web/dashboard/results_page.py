"""The results page: per rule over a chosen period, and the reorders reminders brought."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from carebot.rulebook.schema import RuleKind
from carebot.store.results import RuleResult, results_by_rule
from carebot.web.dashboard.period import chosen_period
from carebot.web.dashboard.views import View, guarded, render

__all__ = ["results"]

DEFAULT_DAYS = 30


@guarded
async def results(view: View) -> Response:
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (local days, both included; default the last 30)."""
    now = view.runtime.clock.now()
    today = now.astimezone(view.zone).date()
    period = chosen_period(
        view.request.query_params, today=today, zone=view.zone, default_days=DEFAULT_DAYS
    )
    since, until = period.since, period.until
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
        "first": period.first.isoformat(),
        "last": period.last.isoformat(),
        "window_days": window.days,
    }
    return render(view.request, "results.html", context, language=view.language)
