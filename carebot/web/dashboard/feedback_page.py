"""The feedback page over a chosen period: the case measures with their charts, every
complaint (each alert email has its row), replies by product with the product's name."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from carebot.feedback import LOW_SCORE
from carebot.store import complaints as complaint_store
from carebot.store.case_report import case_report
from carebot.store.cases import cases_by_bucket
from carebot.store.dashboard import scores_by_bucket
from carebot.web.dashboard.charts import local_days, stacked_bars
from carebot.web.dashboard.i18n import Names
from carebot.web.dashboard.period import chosen_period
from carebot.web.dashboard.views import View, guarded, render

__all__ = ["DEFAULT_DAYS", "feedback", "page_number"]

DEFAULT_DAYS = 30
# The charts show at most this many weeks (the last ones of a longer period).
MAX_WEEKS = 26


def page_number(text: str | None) -> int:
    """``?page=``: a positive number, else the first page."""
    return int(text) if text and text.isdigit() and len(text) < 7 else 1


@guarded
async def feedback(view: View) -> Response:
    """``?from=&to=`` (local days, default the last 30), ``?page=`` of the complaint list."""
    now = view.runtime.clock.now()
    today = now.astimezone(view.zone).date()
    period = chosen_period(
        view.request.query_params, today=today, zone=view.zone, default_days=DEFAULT_DAYS
    )
    monday = max(
        period.first - timedelta(days=period.first.weekday()),
        period.last - timedelta(days=7 * MAX_WEEKS - 1),
    )
    weeks = local_days(monday, view.zone, ahead=(period.last - monday).days)[::7]
    if weeks[-1] < period.until:
        weeks.append(weeks[-1] + timedelta(days=7))
    rulebook = view.runtime.rules()
    complaint_categories = {c.id for c in rulebook.feedback if c.complaint}
    recovery_days = view.runtime.settings.service.recovery_days
    page = page_number(view.request.query_params.get("page"))
    chosen = complaint_store.Chosen(period.since, period.until, LOW_SCORE, complaint_categories)

    def load() -> dict[str, Any]:
        with view.runtime.db.transaction() as session:
            return {
                "cases": case_report(
                    session, since=period.since, until=period.until, recovery_days=recovery_days
                ),
                "case_weeks": cases_by_bucket(session, bounds=weeks),
                "scores": scores_by_bucket(session, bounds=weeks),
                "complaints": complaint_store.complaint_page(session, chosen, page=page),
                "products": complaint_store.products_by_category(session, chosen),
            }

    data = await run_in_threadpool(load)
    names = Names(rulebook, view.language)
    labels = [w.astimezone(view.zone).strftime("%m-%d") for w in weeks[:-1]]
    cases = data["cases"]
    context: dict[str, Any] = {
        "csrf": view.csrf,
        "local": view.local,
        "period": period,
        **data,
        "scores_chart": stacked_bars(labels, {f"{s}★": n for s, n in data["scores"].items()}),
        "cases_chart": stacked_bars(
            labels, {names.category(c): n for c, n in data["case_weeks"].items()}
        ),
        "products_chart": stacked_bars(
            [p["title"] or p["sku"] or "" for p in cases.by_product[:12]],
            {
                names.category(c): [p["by_category"].get(c, 0) for p in cases.by_product[:12]]
                for c in sorted(cases.by_category)
            },
        ),
        "low_score": LOW_SCORE,
    }
    return render(view.request, "feedback.html", context, language=view.language)
