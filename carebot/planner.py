"""The planner's public names, at the import path the rest of carebot and its users know.

The code lives in ``carebot.planning``: policy and plans, the context, cancellations,
recipients and dedupe keys, and the ``Planner`` itself.
"""

from carebot.planning import (
    DEFAULT_COUNTRY_LOCALES,
    Cancellation,
    OptOutCheck,
    Plan,
    Planner,
    PlanningPolicy,
    build_context,
)
from carebot.planning.policy import (
    MAX_DELAY,
    ORDER_ENDING_EVENTS,
    QUIET_HOURS,
    SUPPLY_EVENTS,
)

__all__ = [
    "DEFAULT_COUNTRY_LOCALES",
    "MAX_DELAY",
    "ORDER_ENDING_EVENTS",
    "QUIET_HOURS",
    "SUPPLY_EVENTS",
    "Cancellation",
    "OptOutCheck",
    "Plan",
    "Planner",
    "PlanningPolicy",
    "build_context",
]
