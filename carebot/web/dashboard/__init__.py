"""The merchant dashboard under ``/dashboard``: server-rendered pages behind the admin token."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from carebot.web.dashboard import (
    actions,
    case_actions,
    cases_page,
    contact_actions,
    feedback_page,
    pages,
    results_page,
)

__all__ = ["routes"]


def routes() -> list[BaseRoute]:
    """The dashboard's routes, to mount in the app."""
    return [
        Route("/dashboard", pages.overview, methods=["GET"]),
        Route("/dashboard/login", actions.login_page, methods=["GET"]),
        Route("/dashboard/login", actions.login, methods=["POST"]),
        Route("/dashboard/logout", actions.logout, methods=["POST"]),
        Route("/dashboard/orders", pages.orders, methods=["GET"]),
        Route("/dashboard/orders/{order_id:path}", pages.order, methods=["GET"]),
        Route("/dashboard/upcoming", pages.upcoming, methods=["GET"]),
        Route("/dashboard/feedback", feedback_page.feedback, methods=["GET"]),
        Route("/dashboard/cases", cases_page.cases, methods=["GET"]),
        Route("/dashboard/cases/{case_id}", cases_page.case_detail, methods=["GET"]),
        Route("/dashboard/disruptions", pages.disruptions, methods=["GET"]),
        Route("/dashboard/rules", pages.rules, methods=["GET"]),
        Route("/dashboard/results", results_page.results, methods=["GET"]),
        Route(
            "/dashboard/notifications/{notification_id}/cancel", actions.cancel, methods=["POST"]
        ),
        Route(
            "/dashboard/notifications/{notification_id}/resend", actions.resend, methods=["POST"]
        ),
        Route(
            "/dashboard/disruptions/{disruption_id}/end", actions.end_disruption, methods=["POST"]
        ),
        Route("/dashboard/cases/open", case_actions.open_case, methods=["POST"]),
        Route(
            "/dashboard/customers/{customer_id:path}/contact",
            contact_actions.correct_contact,
            methods=["POST"],
        ),
        Route("/dashboard/cases/{case_id}/{step}", case_actions.step_case, methods=["POST"]),
    ]
