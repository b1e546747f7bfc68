"""The dashboard's pages: overview, orders, upcoming, feedback, disruptions, rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from carebot.contacts import normalize_phone, valid_email
from carebot.disruptions import affects_address
from carebot.disruptions.active import active_disruptions
from carebot.masking import mask_recipient
from carebot.store import cases as case_store
from carebot.store import dashboard as queries
from carebot.store.case_report import CaseReport, case_report
from carebot.store.feedback import LOW_SCORE, feedback_report
from carebot.store.history import declared_disruptions
from carebot.web.dashboard.charts import local_days, local_hours, stacked_bars
from carebot.web.dashboard.i18n import Names
from carebot.web.dashboard.views import View, guarded, render

__all__ = ["disruptions", "feedback", "order", "orders", "overview", "rules", "upcoming"]

DISRUPTION_EVENTS = ("disruption.stock_up", "disruption.shipment_at_risk")
# The feedback page measures the cases opened this long ago or since (the CLI: any period).
CASES_WINDOW = timedelta(days=30)


def _page(view: View, template: str, **context: Any) -> Response:
    return render(
        view.request,
        template,
        {"csrf": view.csrf, "local": view.local, **context},
        language=view.language,
    )


@guarded
async def overview(view: View) -> Response:
    """Counts today and this week, the queue, failures, and messages per day per rule."""
    now = view.runtime.clock.now()
    days = local_days(now.astimezone(view.zone).date(), view.zone, back=6)

    def load() -> queries.Overview:
        with view.runtime.db.transaction() as session:
            return queries.overview(session, now=now, days=days)

    data = await run_in_threadpool(load)
    labels = [d.strftime("%m-%d") for d in days[:-1]]
    names = Names(view.runtime.rules(), view.language)
    chart = stacked_bars(labels, {names.rule(r): n for r, n in data.per_day_per_rule.items()})
    return _page(view, "overview.html", data=data, chart_data=chart)


@guarded
async def orders(view: View) -> Response:
    """Search by order id, phone number or email address; one hit opens its timeline."""
    query = view.request.query_params.get("q", "").strip()
    found: list[dict[str, Any]] = []
    if query:
        phone = normalize_phone(query) if "@" not in query else None
        email = query if "@" in query and valid_email(query) else None

        def search() -> tuple[bool, list[dict[str, Any]]]:
            with view.runtime.db.transaction() as session:
                if queries.order_exists(session, query):
                    return True, []
                rows = queries.find_orders(session, phone=phone, email=email)
                return False, [
                    {
                        "id": row.id,
                        "placed_at": row.placed_at or row.created_at,
                        "status": row.status,
                        "name": row.customer.name if row.customer else None,
                        "contact": mask_recipient(query),
                    }
                    for row in rows
                ]

        exact, found = await run_in_threadpool(search)
        if exact:
            return RedirectResponse(f"/dashboard/orders/{quote(query, safe='')}", status_code=303)
    # A contact typed into the box is not echoed back whole: the page masks contacts.
    contact = bool(query) and (normalize_phone(query) is not None or "@" in query)
    shown = mask_recipient(query) if contact else query
    return _page(view, "orders.html", query=query, shown=shown, contact=contact, found=found)


@guarded
async def order(view: View) -> Response:
    """One order's timeline, contacts shown whole (the one page that does)."""
    order_id = view.request.path_params["order_id"]

    def load() -> tuple[queries.Timeline | None, list[dict[str, Any]]]:
        with view.runtime.db.transaction() as session:
            found = queries.order_timeline(session, order_id)
            cases = case_store.list_cases(session, order_id=order_id)
            return found, [case_store.case_json(c) for c in cases]

    timeline, cases = await run_in_threadpool(load)
    if timeline is None:
        page = _page(view, "orders.html", query=order_id, shown=order_id, contact=False, found=[])
        page.status_code = 404
        return page
    return _page(
        view,
        "timeline.html",
        timeline=timeline,
        cases=cases,
        has_active=any(c["status"] in case_store.ACTIVE for c in cases),
        categories=[c.id for c in view.runtime.rules().feedback],
        parse_time=datetime.fromisoformat,
        back=view.request.url.path,
    )


@guarded
async def upcoming(view: View) -> Response:
    """What goes out in the next 7 days, by rule per day and by local hour."""
    now = view.runtime.clock.now()
    start = local_days(now.astimezone(view.zone).date(), view.zone)[0]
    hours = local_hours(start, 7 * 24, view.zone)

    def load() -> queries.Upcoming:
        with view.runtime.db.transaction() as session:
            return queries.upcoming(session, now=now, hours=hours)

    data = await run_in_threadpool(load)
    day_labels = [hours[i * 24].strftime("%m-%d") for i in range(7)]
    names = Names(view.runtime.rules(), view.language)
    by_rule = stacked_bars(day_labels, {names.rule(r): n for r, n in data.by_rule.items()})
    by_hour = stacked_bars([f"{h:02d}" for h in range(24)], {"": data.by_hour}, height=160)
    grid = [data.by_slot[d * 24 : d * 24 + 24] for d in range(7)]
    return _page(
        view,
        "upcoming.html",
        data=data,
        by_rule=by_rule,
        by_hour=by_hour,
        grid=grid,
        grid_top=max([*data.by_slot, 1]),
        day_labels=day_labels,
    )


@guarded
async def feedback(view: View) -> Response:
    """Score distribution by week, complaint categories by product, the latest low scores."""
    now = view.runtime.clock.now()
    today = now.astimezone(view.zone).date()
    weeks = local_days(today - timedelta(days=today.weekday()), view.zone, back=7 * 7, ahead=6)
    weeks = weeks[::7]

    recovery_days = view.runtime.settings.service.recovery_days

    def load() -> tuple[Any, dict[int, list[int]], list[Any], CaseReport, Any, list[Any]]:
        with view.runtime.db.transaction() as session:
            report = feedback_report(session)
            return (
                report,
                queries.scores_by_bucket(session, bounds=weeks),
                queries.low_scores(session, at_most=LOW_SCORE),
                case_report(session, since=now - CASES_WINDOW, recovery_days=recovery_days),
                case_store.cases_by_bucket(session, bounds=weeks),
                [case_store.case_json(c) for c in case_store.active_cases(session, limit=50)],
            )

    report, scores, low, cases, by_week, active = await run_in_threadpool(load)
    names = Names(view.runtime.rules(), view.language)
    labels = [w.strftime("%m-%d") for w in weeks[:-1]]
    chart = stacked_bars(labels, {f"{s}★": counts for s, counts in scores.items()})
    cases_chart = stacked_bars(labels, {names.category(c): n for c, n in by_week.items()})
    return _page(
        view,
        "feedback.html",
        report=report,
        chart_data=chart,
        low=low,
        cases=cases,
        cases_chart=cases_chart,
        active=active,
        parse_time=datetime.fromisoformat,
    )


@guarded
async def disruptions(view: View) -> Response:
    """The calendar (rules, built-in, declared), what is in transit there, notices sent."""
    now = view.runtime.clock.now()
    rulebook = view.runtime.rules()
    today = now.astimezone(view.zone).date()
    notice_rules = [r.id for r in rulebook.rules if set(r.on) & set(DISRUPTION_EVENTS)]

    def load() -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
        with view.runtime.db.transaction() as session:
            declared = declared_disruptions(session)
            current = active_disruptions(rulebook, declared, today=today)
            in_transit = queries.in_transit_by_address(session, since=now - timedelta(days=30))
            counts = queries.notification_counts_by_rule(session, rule_ids=notice_rules)
        from_rules = {d.id for d in rulebook.disruptions}
        from_events = {d.get("id") for d in declared}
        listed = []
        for item in current:
            hit = [(n, c) for address, n, c in in_transit if affects_address(item, address)]
            origin = (
                "event"
                if item.id in from_events
                else "rules"
                if item.id in from_rules
                else "calendar"
            )
            listed.append(
                {
                    "d": item,
                    "origin": origin,
                    "shipments": sum(n for n, _ in hit),
                    # A customer with parcels to two affected addresses counts twice.
                    "customers": sum(c for _, c in hit),
                    "active": item.start <= today,
                }
            )
        return listed, counts

    listed, counts = await run_in_threadpool(load)
    return _page(
        view,
        "disruptions.html",
        disruptions=listed,
        counts=counts,
        calendars=rulebook.calendars,
    )


@guarded
async def rules(view: View) -> Response:
    """The loaded rule book and the state of the last reload."""
    ruleset = view.runtime.rules
    error = ruleset.last_error
    problems = [str(p) for p in error.problems] if error is not None else []
    return _page(
        view, "rules.html", rulebook=ruleset(), rules_dir=str(ruleset.rules_dir), problems=problems
    )
