"""The dashboard's pages: overview, orders, upcoming, disruptions, rules (feedback, cases
and results have their own modules)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from carebot.channels import ChannelKind
from carebot.contacts import phone_spellings, valid_email
from carebot.exceptions import CarebotError
from carebot.masking import mask_recipient
from carebot.store import answers as answer_store
from carebot.store import cases as case_store
from carebot.store import contact_changes
from carebot.store import dashboard as queries
from carebot.store.history import declared_disruptions
from carebot.web.dashboard import listings
from carebot.web.dashboard.charts import local_days, local_hours, stacked_bars
from carebot.web.dashboard.i18n import Names
from carebot.web.dashboard.views import View, guarded, render

__all__ = ["disruptions", "order", "orders", "overview", "rules", "upcoming"]

DISRUPTION_EVENTS = ("disruption.stock_up", "disruption.shipment_at_risk")


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

    def load() -> tuple[queries.Overview, listings.Answers]:
        with view.runtime.db.transaction() as session:
            return (
                queries.overview(session, now=now, days=days),
                listings.answers_now(view, session, now=now),
            )

    data, answers = await run_in_threadpool(load)
    labels = [d.strftime("%m-%d") for d in days[:-1]]
    names = Names(view.runtime.rules(), view.language)
    chart = stacked_bars(labels, {names.rule(r): n for r, n in data.per_day_per_rule.items()})
    return _page(view, "overview.html", data=data, answers=answers, chart_data=chart)


def _order_row(row: Any) -> dict[str, Any]:
    customer = row.customer
    contact = (customer.phone or customer.email or "") if customer is not None else ""
    return {
        "id": row.id,
        "placed_at": row.placed_at or row.created_at,
        "status": row.status,
        "name": customer.name if customer is not None else None,
        "contact": mask_recipient(contact) if contact else "",
    }


async def _listing(view: View, params: dict[str, str]) -> Response:
    """The orders behind a number on another page (the overview, the disruptions page)."""
    kind = next(iter(params))
    value = params[kind]

    def load() -> list[dict[str, Any]]:
        with view.runtime.db.transaction() as session:
            rows = listings.listing_orders(view, session, params)
            return [_order_row(row) for row in rows]

    found = await run_in_threadpool(load)
    return _page(
        view,
        "orders.html",
        query="",
        shown="",
        contact=False,
        found=found,
        listing={"kind": kind, "value": value, "unhandled": params.get("unhandled") == "1"},
    )


@guarded
async def orders(view: View) -> Response:
    """Search by order id or part of it, phone number (any common spelling), email address or
    tracking number; an exact order id opens its timeline."""
    query = view.request.query_params.get("q", "").strip()[:200]
    params = {
        k: view.request.query_params[k][:200]
        for k in listings.LISTINGS
        if k in view.request.query_params
    }
    if params and not query:
        return await _listing(view, params)
    found: list[dict[str, Any]] = []
    region = view.runtime.settings.default_region
    phones = phone_spellings(query, region) if query and "@" not in query else []
    if query:
        email = query if "@" in query and valid_email(query) else None
        plain = "@" not in query
        tracking = query.replace(" ", "") if plain else None

        def search() -> tuple[bool, list[dict[str, Any]]]:
            with view.runtime.db.transaction() as session:
                if queries.order_exists(session, query):
                    return True, []
                rows = queries.find_orders(
                    session,
                    phones=phones,
                    email=email,
                    order_part=query if plain else None,
                    tracking=tracking,
                )
                return False, [_order_row(row) for row in rows]

        exact, found = await run_in_threadpool(search)
        if exact:
            return RedirectResponse(f"/dashboard/orders/{quote(query, safe='')}", status_code=303)
    # A contact typed into the box is not echoed back whole: the page masks contacts.
    contact = bool(phones) or "@" in query
    shown = mask_recipient(query) if contact else query
    return _page(view, "orders.html", query=query, shown=shown, contact=contact, found=found)


@guarded
async def order(view: View) -> Response:
    """One order's timeline, contacts shown whole (the one page that does)."""
    order_id = view.request.path_params["order_id"]

    def load() -> tuple[queries.Timeline | None, list[dict[str, Any]], list[dict[str, Any]]]:
        with view.runtime.db.transaction() as session:
            found = queries.order_timeline(session, order_id)
            cases = case_store.list_cases(session, order_id=order_id)
            customer_id = found.order.customer_id if found is not None else None
            changes = contact_changes.changes_for(session, customer_id) if customer_id else []
            return (
                found,
                [case_store.case_json(c) for c in cases],
                [
                    {
                        "at": c.changed_at,
                        "who": c.who,
                        "field": c.field,
                        "old": c.old_value,
                        "new": c.new_value,
                        "moved": c.messages_updated,
                    }
                    for c in changes
                ],
            )

    timeline, cases, changes = await run_in_threadpool(load)
    if timeline is None:
        page = _page(view, "orders.html", query=order_id, shown=order_id, contact=False, found=[])
        page.status_code = 404
        return page
    return _page(
        view,
        "timeline.html",
        timeline=timeline,
        cases=cases,
        changes=changes,
        has_active=any(c["status"] in case_store.ACTIVE for c in cases),
        categories=[c.id for c in view.runtime.rules().feedback],
        parse_time=datetime.fromisoformat,
        back=view.request.url.path,
    )


def _preview(view: View, row: Any) -> dict[str, Any]:
    """A pending message as it would go out now: rendered text, recipient masked."""
    try:
        rendered = view.runtime.renderer.render(
            row.template, ChannelKind(row.channel), row.locale, row.context or {}
        )
        text, subject = rendered.text, rendered.subject
    except (CarebotError, ValueError) as exc:
        text, subject = f"({exc})", None
    return {
        "id": row.id,
        "rule_id": row.rule_id,
        "order_id": row.order_id,
        "channel": row.channel,
        "to": mask_recipient(row.recipient) if row.recipient else "",
        "due_at": row.due_at,
        "subject": subject,
        "text": text,
    }


@guarded
async def upcoming(view: View) -> Response:
    """What goes out in the next 7 days, by rule per day and by local hour."""
    now = view.runtime.clock.now()
    start = local_days(now.astimezone(view.zone).date(), view.zone)[0]
    hours = local_hours(start, 7 * 24, view.zone)

    rule_id = view.request.query_params.get("rule", "")[:200] or None

    def load() -> tuple[queries.Upcoming, list[dict[str, Any]]]:
        with view.runtime.db.transaction() as session:
            data = queries.upcoming(session, now=now, hours=hours)
            rows = answer_store.due_rows(
                session, now=now, until=now + listings.NEXT_DAY, rule_id=rule_id
            )
            return data, [_preview(view, row) for row in rows]

    data, next_day = await run_in_threadpool(load)
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
        next_day=next_day,
        rule_filter=rule_id,
        day_labels=day_labels,
    )


@guarded
async def disruptions(view: View) -> Response:
    """The calendar (rules, built-in, declared), the parcels each one catches, notices sent."""
    now = view.runtime.clock.now()
    rulebook = view.runtime.rules()
    today = now.astimezone(view.zone).date()
    notice_rules = [r.id for r in rulebook.rules if set(r.on) & set(DISRUPTION_EVENTS)]

    def load() -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
        with view.runtime.db.transaction() as session:
            declared = declared_disruptions(session)
            current = listings.current_disruptions(view, session, now=now)
            parcels = queries.parcels_in_transit(session, since=now - listings.IN_TRANSIT_WINDOW)
            counts = queries.notification_counts_by_rule(session, rule_ids=notice_rules)
        from_rules = {d.id for d in rulebook.disruptions}
        from_events = {d.get("id") for d in declared}
        listed = []
        for item in current:
            hit = listings.caught(item, parcels, zone=view.zone, now=now)
            origin = (
                "event"
                if item.id in from_events
                else "rules"
                if item.id in from_rules
                else "calendar"
            )
            state = "ended" if item.end < today else "active" if item.start <= today else "upcoming"
            listed.append(
                {
                    "d": item,
                    "origin": origin,
                    "shipments": sum(p.shipments for p in hit),
                    # A customer with parcels to two affected addresses counts twice.
                    "customers": sum(p.customers for p in hit),
                    "state": state,
                    "active": state == "active",
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
