"""``carebot status`` and ``carebot report feedback|cases``: store reports as text or JSON."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from carebot.cli_support import load_settings_or_fail, open_database

if TYPE_CHECKING:
    from carebot.store.reports import StatusSummary

__all__ = [
    "category_counts",
    "cmd_report_cases",
    "cmd_report_feedback",
    "cmd_status",
    "count_lines",
    "feedback_table",
    "product_name",
    "status_table",
]


def cmd_status(args: argparse.Namespace) -> int:
    from carebot.store.reports import status_summary

    settings = load_settings_or_fail()
    db = open_database(settings)
    now = datetime.now(UTC)
    with db.transaction() as session:
        summary = status_summary(session, now=now)
    if args.json:
        print(json.dumps(summary.as_json(), ensure_ascii=False))
    else:
        print(status_table(summary, now))
    return 0


def _ago(delta: timedelta) -> str:
    """``2d 3h``, ``3h 5m``, ``4m``: a coarse, readable duration."""
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins}m" if hours else f"{mins}m"


def status_table(summary: StatusSummary, now: datetime) -> str:
    from carebot.notifications import NotificationStatus

    # An outage first: it is what an operator running ``carebot status`` needs to see.
    outages = [
        f"{o.provider} failing since {o.since.isoformat()} ({_ago(now - o.since)}), "
        f"{o.waiting} waiting; last error: {o.last_error or '-'}"
        for o in summary.outages
    ]
    if not summary.by_status:
        return "\n".join([*outages, "no notifications yet"])
    order = [str(s) for s in NotificationStatus]
    statuses = sorted(summary.by_status, key=lambda s: (order.index(s) if s in order else 99, s))
    width = max(len("rule"), *(len(rule) for rule in summary.by_rule))
    columns = [max(len(s), 5) for s in statuses]

    def row(label: str, counts: dict[str, int]) -> str:
        cells = "".join(
            f"  {counts.get(s, 0):>{w}}" for s, w in zip(statuses, columns, strict=True)
        )
        return f"{label:<{width}}{cells}  {sum(counts.values()):>5}"

    header = "".join(f"  {s:>{w}}" for s, w in zip(statuses, columns, strict=True))
    lines = [*outages, ""] if outages else []
    lines.append(f"{'rule':<{width}}{header}  {'total':>5}")
    lines += [row(rule, counts) for rule, counts in sorted(summary.by_rule.items())]
    lines.append(row("all", summary.by_status))
    lines.append("")
    return "\n".join([*lines, *_due_lines(summary, now)])


def _due_lines(summary: StatusSummary, now: datetime) -> list[str]:
    """Next due, oldest overdue and failures by reason, under the status table."""
    lines = []
    if summary.next_due is not None:
        lines.append(
            f"next due:        {summary.next_due.isoformat()}  (in {_ago(summary.next_due - now)})"
        )
    else:
        lines.append("next due:        -")
    if summary.oldest_overdue is not None:
        late = _ago(now - summary.oldest_overdue)
        lines.append(f"oldest overdue:  {summary.oldest_overdue.isoformat()}  ({late} late)")
    else:
        lines.append("oldest overdue:  -")
    if summary.failures_by_reason:
        lines.append("failures by reason:")
        for reason, count in sorted(summary.failures_by_reason.items(), key=lambda i: -i[1]):
            lines.append(f"  {count:>5}  {reason}")
    return lines


def cmd_report_cases(args: argparse.Namespace) -> int:
    from carebot.cli_cases import cmd_report_cases as run

    return run(args, load_settings_or_fail())


def cmd_report_feedback(args: argparse.Namespace) -> int:
    from carebot.simulate import parse_until
    from carebot.store.feedback import feedback_report

    settings = load_settings_or_fail()
    since = parse_until(args.since, flag="--since") if args.since else None
    db = open_database(settings)
    with db.transaction() as session:
        report = feedback_report(session, since=since)
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        print(feedback_table(report.as_json()))
    return 0


def feedback_table(data: dict[str, Any]) -> str:
    """Scores, categories and products as plain text; the most complained-about product first."""
    if not data["replies"]:
        return "no feedback yet"
    average = data["average_score"]
    lines = [
        f"replies: {data['replies']}  average score: {average if average is not None else '-'}",
        "scores:   " + "  ".join(f"{s}: {n}" for s, n in data["by_score"].items()),
        "",
        "by category:",
    ]
    lines += count_lines(data["by_category"])
    lines += ["", "by product (most complaints first):"]
    for product in data["by_product"]:
        score = product["average_score"]
        replies = f"{product['replies']} repl{'y' if product['replies'] == 1 else 'ies'}"
        lines.append(
            f"  {product_name(product)}: {replies}"
            f", average {score if score is not None else '-'}, {product['low_scores']} low"
            f" (1-2); {category_counts(product)}"
        )
    return "\n".join(lines)


def count_lines(counts: dict[str, int]) -> list[str]:
    """``  count  name`` lines, the largest count first (then by name)."""
    ranked = sorted(counts.items(), key=lambda i: (-i[1], i[0]))
    return [f"  {count:>5}  {name}" for name, count in ranked]


def product_name(product: dict[str, Any]) -> str:
    """A report's product as ``SKU title`` (``-`` for no SKU)."""
    title = f" {product['title']}" if product["title"] else ""
    return f"{product['sku'] or '-'}{title}"


def category_counts(product: dict[str, Any]) -> str:
    """A report product's categories as ``damaged 2, late 1``, by name."""
    return ", ".join(f"{c} {n}" for c, n in sorted(product["by_category"].items()))
