"""The order page's contact form: correct a customer's phone number or email address."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from carebot.contacts import email_problem, normalize_phone
from carebot.store import contact_changes
from carebot.web.dashboard.actions import WHO, _back, _checked_form
from carebot.web.dashboard.views import View, guarded

__all__ = ["correct_contact"]

logger = logging.getLogger(__name__)

MAX_CONTACT = 320


@guarded
async def correct_contact(view: View) -> Response:
    """Set the customer's phone or email; their pending and resendable messages follow."""
    form = await _checked_form(view)
    if isinstance(form, Response):
        return form
    customer_id = view.request.path_params["customer_id"]
    field = str(form.get("field") or "")
    raw = str(form.get("value") or "").strip()[:MAX_CONTACT]
    if field not in ("phone", "email") or not raw:
        return _back(form, "contact_invalid")
    runtime = view.runtime

    def apply() -> str:
        with runtime.db.transaction() as session:
            if field == "phone":
                region = contact_changes.customer_region(session, customer_id)
                value = normalize_phone(raw, region or runtime.settings.default_region)
                if value is None:
                    return "contact_invalid"
                change = contact_changes.correct_contact(
                    session,
                    customer_id=customer_id,
                    field="phone",
                    value=value,
                    who=WHO,
                    now=runtime.clock.now(),
                )
            else:
                if email_problem(raw) is not None:
                    return "contact_invalid"
                change = contact_changes.correct_contact(
                    session,
                    customer_id=customer_id,
                    field="email",
                    value=raw,
                    who=WHO,
                    now=runtime.clock.now(),
                )
            return "contact" if change is not None else "missing"

    done = await run_in_threadpool(apply)
    logger.info(
        "contact corrected on the dashboard",
        extra={"action": "dashboard_contact", "field": field, "outcome": done},
    )
    return _back(form, done)
