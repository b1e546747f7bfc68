"""One case step from the dashboard or the admin API: checked, then ingested as ``case.updated``.

The step itself is applied by the pipeline (``carebot.cases``), as for a replayed file, so the
derived events (``case.resolved`` and the question to the customer) follow the same path.
"""

from __future__ import annotations

from typing import Any

from carebot.cases import VERBS, Outcome, check_update
from carebot.events import Event, EventType, Order
from carebot.runtime import Runtime
from carebot.store import cases as store

__all__ = ["VERBS", "apply_step", "open_by_hand"]


def apply_step(
    runtime: Runtime, *, case_id: int, verb: str, who: str, note: str
) -> tuple[Outcome, dict[str, Any] | None]:
    """Move case ``case_id`` (``contacted``, ``resolved``, ``dismissed``, ``reopen``)."""
    status = VERBS[verb]
    now = runtime.clock.now()
    with runtime.db.transaction() as session:
        outcome = check_update(session, case_id, status)
        case = store.get_case(session, case_id)
        if outcome is not Outcome.DONE or case is None:
            return outcome, None
        order_id, step = case.order_id, case.step
    event = Event(
        id=f"{who}:case:{case_id}:{step}:{verb}",
        type=EventType.CASE_UPDATED,
        occurred_at=now,
        order=Order(id=order_id),
        case={"id": case_id, "status": verb, "who": who, "note": note},
    )
    runtime.pipeline.ingest(event, source=who)
    with runtime.db.transaction() as session:
        found = store.get_case(session, case_id)
        if found is None or found.step == step:
            return Outcome.CONFLICT, None  # another step came first
        return Outcome.DONE, store.case_json(found)


def open_by_hand(runtime: Runtime, *, order_id: str, category: str, who: str, note: str) -> Outcome:
    """Open a case on ``order_id`` by hand; CONFLICT when one is already active."""
    now = runtime.clock.now()
    with runtime.db.transaction() as session:
        if store.active_case(session, order_id) is not None:
            return Outcome.CONFLICT
    event = Event(
        id=f"{who}:case:{order_id}:open:{now.isoformat()}",
        type=EventType.CASE_UPDATED,
        occurred_at=now,
        order=Order(id=order_id),
        case={"status": "open", "category": category, "who": who, "note": note},
    )
    runtime.pipeline.ingest(event, source=who)
    return Outcome.DONE
