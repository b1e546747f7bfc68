"""Planning: event + facts + rule book + ``now`` -> what to schedule and what to cancel."""

from carebot.planning.context import build_context
from carebot.planning.planner import Planner
from carebot.planning.policy import (
    DEFAULT_COUNTRY_LOCALES,
    Cancellation,
    OptOutCheck,
    Plan,
    PlanningPolicy,
)

__all__ = [
    "DEFAULT_COUNTRY_LOCALES",
    "Cancellation",
    "OptOutCheck",
    "Plan",
    "Planner",
    "PlanningPolicy",
    "build_context",
]
