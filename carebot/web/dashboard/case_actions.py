"""The dashboard's case forms: step a case, open one by hand (session and CSRF as every form)."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from carebot.cases import Outcome
from carebot.store.dashboard import order_exists
from carebot.web._cases import VERBS, apply_step, open_by_hand
from carebot.web._payload import parse_id
from carebot.web.dashboard.actions import WHO, _back, _checked_form
from carebot.web.dashboard.views import View, guarded

__all__ = ["open_case", "step_case"]

logger = logging.getLogger(__name__)

# A note is for people; a longer one is a paste gone wrong.
MAX_NOTE = 2000


@guarded
async def step_case(view: View) -> Response:
    """Mark a case contacted, resolved or dismissed, or reopen it, with an optional note."""
    form = await _checked_form(view)
    if isinstance(form, Response):
        return form
    verb = view.request.path_params["step"]
    case_id = parse_id(view.request.path_params["case_id"])
    if case_id is None:
        return _back(form, "missing")
    if verb not in VERBS:
        return _back(form, "missing")
    note = str(form.get("note") or "").strip()[:MAX_NOTE]
    runtime = view.runtime

    def apply() -> Outcome:
        outcome, _ = apply_step(runtime, case_id=case_id, verb=verb, who=WHO, note=note)
        return outcome

    outcome = await run_in_threadpool(apply)
    logger.info(
        "case stepped on the dashboard",
        extra={"action": f"dashboard_case_{verb}", "case_id": case_id, "outcome": str(outcome)},
    )
    if outcome is Outcome.DONE:
        return _back(form, verb)
    return _back(form, "conflict" if outcome is Outcome.CONFLICT else "missing")


@guarded
async def open_case(view: View) -> Response:
    """Open a case by hand on an order (from its timeline)."""
    form = await _checked_form(view)
    if isinstance(form, Response):
        return form
    order_id = str(form.get("order_id") or "").strip()
    category = str(form.get("category") or "other").strip() or "other"
    note = str(form.get("note") or "").strip()[:MAX_NOTE]
    if not order_id:
        return _back(form, "missing")
    runtime = view.runtime

    def apply() -> Outcome | None:
        with runtime.db.transaction() as session:
            if not order_exists(session, order_id):
                return None
        return open_by_hand(runtime, order_id=order_id, category=category, who=WHO, note=note)

    outcome = await run_in_threadpool(apply)
    if outcome is None:
        return _back(form, "missing")
    return _back(form, "open" if outcome is Outcome.DONE else "conflict")
