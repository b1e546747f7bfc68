"""``carebot report cases``: the service-recovery measures, as text or JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from carebot.cli_reports import category_counts, count_lines, product_name
from carebot.settings import Settings

__all__ = ["cases_table", "cmd_report_cases"]


def cmd_report_cases(args: argparse.Namespace, settings: Settings) -> int:
    from carebot.simulate import parse_until
    from carebot.store.case_report import case_report
    from carebot.store.database import Database

    since = parse_until(args.since, flag="--since") if args.since else None
    db = Database(settings.database_url)
    try:
        with db.transaction() as session:
            report = case_report(session, since=since, recovery_days=settings.service.recovery_days)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        print(cases_table(report.as_json()))
    return 0


def _share(value: float | None) -> str:
    return f"{value * 100:.0f}%" if value is not None else "-"


def _hours(value: float | None) -> str:
    return f"{value} h" if value is not None else "-"


def cases_table(data: dict[str, Any]) -> str:
    """The measures as plain text, the most complained-about category and product first."""
    if not data["cases"]:
        return "no cases yet"
    lines = [
        f"cases: {data['cases']}  "
        + "  ".join(f"{s}: {n}" for s, n in sorted(data["by_status"].items())),
        f"median time to first contact: {_hours(data['median_first_contact_hours'])}",
        f"median time to resolution:    {_hours(data['median_resolution_hours'])}",
        f"past deadline: {data['past_deadline']} ({_share(data['past_deadline_share'])})",
        f"recovered: {data['recovered']} of {data['recoverable']} "
        f"({_share(data['recovery_rate'])})",
        "",
        "by category:",
    ]
    lines += count_lines(data["by_category"])
    lines += ["", "by product:"]
    for product in data["by_product"]:
        lines.append(
            f"  {product['cases']:>5}  {product_name(product)}: {category_counts(product)}"
        )
    return "\n".join(lines)
