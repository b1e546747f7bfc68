"""The ``carebot`` command.

Exit codes: 0 done; 1 a problem with what you gave carebot (a file that is missing or not
what the command reads, invalid rules, invalid settings, a second daemon on a busy port); 2 a
command line argparse refused; 3 the database cannot be reached; 130 interrupted (Ctrl-C); 141
the reader of the output went away (``carebot preview … | head``), with nothing printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from carebot import __version__
from carebot.exceptions import CarebotError, EventError, PortInUseError, RuleError, StoreError
from carebot.settings import Settings, load_settings

if TYPE_CHECKING:
    from carebot.runtime import Runtime
    from carebot.store.database import Database
    from carebot.store.reports import StatusSummary

__all__ = ["main"]

# Replays shorter than this finish too fast for a progress counter to help.
PROGRESS_MIN_EVENTS = 200

EXIT_PROBLEM = 1
EXIT_DATABASE = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        raise CarebotError(f"configuration error: {exc}") from exc


def _banner(runtime: object) -> str:
    from carebot.channels import ChannelKind, Console
    from carebot.runtime import Runtime

    assert isinstance(runtime, Runtime)
    s = runtime.settings
    sms = runtime.channels[ChannelKind.SMS]
    email = runtime.channels[ChannelKind.EMAIL]
    lines = [
        f"carebot {__version__}",
        f"  http:      http://{s.http.host}:{s.http.port}  (webhooks at /webhooks/carebot)",
        f"  database:  {runtime.db.engine.url.render_as_string(hide_password=True)}",
        f"  rules:     {s.rules_dir} ({len(runtime.rules().rules)} rules), "
        f"templates: {s.templates_dir}",
        f"  quiet:     {s.quiet_hours or 'none'} (customer's local time), "
        f"default zone {s.default_timezone}",
    ]
    if isinstance(sms, Console) and s.sms.provider == "aliyun":
        lines.append(
            "  sms:       console (no Alibaba Cloud credentials: set "
            "CAREBOT_ALIYUN__ACCESS_KEY_ID, CAREBOT_ALIYUN__ACCESS_KEY_SECRET, "
            "CAREBOT_ALIYUN__SIGN_NAME)"
        )
    elif isinstance(sms, Console):
        lines.append(
            "  sms:       console (no Twilio credentials: set CAREBOT_TWILIO__ACCOUNT_SID, "
            "CAREBOT_TWILIO__AUTH_TOKEN, CAREBOT_TWILIO__FROM_NUMBER)"
        )
    elif s.sms.provider == "aliyun":
        lines.append(f"  sms:       aliyun ({s.aliyun.endpoint}, signature {s.aliyun.sign_name})")
        unmapped = _rules_without_aliyun_template(runtime)
        if unmapped:
            lines.append(
                f"             {len(unmapped)} SMS rule(s) name no approved template "
                f"(send.aliyun) and will fail: {', '.join(unmapped)}; see `carebot validate`"
            )
    else:
        lines.append(f"  sms:       twilio ({s.twilio.base_url or 'api.twilio.com'})")
    if isinstance(email, Console):
        lines.append(
            "  email:     console (no SMTP server: set CAREBOT_SMTP__HOST and CAREBOT_SMTP__SENDER)"
        )
    else:
        lines.append(f"  email:     smtp ({s.smtp.host}:{s.smtp.port})")
    if s.webhooks.carebot_secret is None or not s.webhooks.carebot_secret.get_secret_value():
        lines.append(
            "  webhooks:  secret generated and kept in the database; "
            "`carebot sign FILE` signs a request with it"
        )
    return "\n".join(lines)


def _rules_without_aliyun_template(runtime: Runtime) -> list[str]:
    from carebot.rulebook.schema import Audience, ChannelChoice

    return [
        rule.id
        for rule in runtime.rules().rules
        if rule.send.aliyun is None
        and rule.audience != Audience.MERCHANT
        and rule.send.channel != ChannelChoice.EMAIL
    ]


def cmd_run(args: argparse.Namespace) -> int:
    from carebot.daemon import Daemon
    from carebot.logs import configure_logging
    from carebot.runtime import build_runtime

    settings = _settings(args)
    configure_logging(args.log_level, args.log_format or settings.log_format)
    _require_rules_dir(settings.rules_dir)
    _require_free_port(settings.http.host, settings.http.port)
    db = _database(settings)
    runtime = build_runtime(settings, db=db)
    if runtime.db.dialect == "sqlite":
        runtime.db.upgrade()  # the embedded default looks after itself
    elif runtime.db.pending_migrations():
        # Several daemons share a server database: migrating is the operator's explicit step.
        raise CarebotError("the database schema is not current: run `carebot db upgrade` first")
    print(_banner(runtime), flush=True)
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        runner.run(Daemon(runtime).serve())
    return 0


def _require_rules_dir(rules_dir: Path) -> None:
    if not rules_dir.is_dir():
        raise CarebotError(
            f"rules folder {rules_dir} not found: run `carebot init` to write starter rules,"
            " templates and config here, or set CAREBOT_RULES_DIR"
        )


def _require_free_port(host: str, port: int) -> None:
    """Fail before anything starts when another process listens on the daemon's address."""
    import socket

    if port == 0:
        return
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise PortInUseError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another carebot"
            " running? set CAREBOT_HTTP__PORT for a second one)"
        ) from exc


def _database(settings: Settings) -> Database:
    """The configured database, checked to be reachable (``StoreError`` otherwise)."""
    from carebot.store.database import Database

    db = Database(settings.database_url)
    db.check()
    return db


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (``uvicorn[standard]`` brings it), as uvicorn would pick."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def cmd_db_upgrade(args: argparse.Namespace) -> int:

    settings = _settings(args)
    db = _database(settings)
    db.upgrade()
    print(f"database at head: {db.engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from carebot.rulebook.loader import RuleLimits
    from carebot.rulebook.validation import CheckOptions, validate_rules
    from carebot.sandbox import RenderLimits

    settings = _settings(args)
    rules_dir = Path(args.rules_dir) if args.rules_dir else settings.rules_dir
    options = CheckOptions(
        default_locale=settings.default_locale,
        shop_name=settings.shop_name,
        limits=RuleLimits(**settings.rules.model_dump()),
        render=RenderLimits(**settings.render.model_dump()),
        sms_provider=settings.sms.provider,
    )
    problems = validate_rules(rules_dir, settings.templates_dir, options)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{rules_dir}: ok", file=sys.stderr)
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from carebot.events import parse_event
    from carebot.preview import format_preview, preview
    from carebot.rulebook.loader import RuleLimits, load_rulebook

    settings = _settings(args)
    path = Path(args.event)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CarebotError(f"{path}: cannot read the event: {exc}") from exc
    event = parse_event(data)
    messages = preview(
        args.rule_id,
        event,
        rulebook=load_rulebook(
            settings.rules_dir, limits=RuleLimits(**settings.rules.model_dump())
        ),
        settings=settings,
        locale=args.locale,
    )
    for number, message in enumerate(messages):
        if number:
            print()
        print(format_preview(message, event.occurred_at))
        if message.html is not None:
            # Only an email has an html part, so one rule saves at most one file.
            out = Path(args.html_out or f"preview-{message.rule}.html")
            out.write_text(message.html, encoding="utf-8")
            print(f"html:     saved to {out}")
    return 0


def _progress(done: int, total: int) -> None:
    """A one-line progress counter on an interactive stderr (never on stdout)."""
    end = "\n" if done == total else ""
    print(f"\rreplaying events: {done}/{total}", end=end, file=sys.stderr, flush=True)


def cmd_simulate(args: argparse.Namespace) -> int:
    from carebot.simulate import format_timeline, parse_until, read_events, simulate

    settings = _settings(args)
    until = parse_until(args.until) if args.until else None
    events = read_events(Path(args.events))
    show_progress = sys.stderr.isatty() and len(events) >= PROGRESS_MIN_EVENTS
    records = asyncio.run(
        simulate(
            events, settings=settings, until=until, progress=_progress if show_progress else None
        )
    )
    if args.json:
        for record in records:
            print(record.as_json())
    else:
        print(format_timeline(records))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from carebot.store.reports import status_summary

    settings = _settings(args)
    db = _database(settings)
    now = datetime.now(UTC)
    with db.transaction() as session:
        summary = status_summary(session, now=now)
    if args.json:
        print(json.dumps(summary.as_json(), ensure_ascii=False))
    else:
        print(_status_table(summary, now))
    return 0


def _ago(delta: timedelta) -> str:
    """``2d 3h``, ``3h 5m``, ``4m``: a coarse, readable duration."""
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins}m" if hours else f"{mins}m"


def _status_table(summary: StatusSummary, now: datetime) -> str:
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
    return "\n".join(lines)


def cmd_report_cases(args: argparse.Namespace) -> int:
    from carebot.cli_cases import cmd_report_cases as run

    return run(args, _settings(args))


def cmd_report_feedback(args: argparse.Namespace) -> int:
    from carebot.simulate import parse_until
    from carebot.store.feedback import feedback_report

    settings = _settings(args)
    since = parse_until(args.since, flag="--since") if args.since else None
    db = _database(settings)
    with db.transaction() as session:
        report = feedback_report(session, since=since)
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        print(_feedback_table(report.as_json()))
    return 0


def _feedback_table(data: dict[str, Any]) -> str:
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
    for category, count in sorted(data["by_category"].items(), key=lambda i: (-i[1], i[0])):
        lines.append(f"  {count:>5}  {category}")
    lines += ["", "by product (most complaints first):"]
    for product in data["by_product"]:
        name = product["sku"] or "-"
        title = f" {product['title']}" if product["title"] else ""
        score = product["average_score"]
        categories = ", ".join(f"{c} {n}" for c, n in sorted(product["by_category"].items()))
        lines.append(
            f"  {name}{title}: {product['replies']} repl{'y' if product['replies'] == 1 else 'ies'}"
            f", average {score if score is not None else '-'}, {product['low_scores']} low"
            f" (1-2); {categories}"
        )
    return "\n".join(lines)


def cmd_sign(args: argparse.Namespace) -> int:
    from standardwebhooks.webhooks import Webhook

    from carebot.runtime import webhook_secret

    settings = _settings(args)
    path = Path(args.file)
    try:
        body = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise CarebotError(f"{path}: cannot read the event file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CarebotError(f"{path}: not UTF-8 text: {exc.reason}") from exc
    db = _database(settings)
    db.upgrade()
    secret = webhook_secret(settings, db)
    message_id = args.id or f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, now, body)
    print(f"webhook-id: {message_id}")
    print(f"webhook-timestamp: {int(now.timestamp())}")
    print(f"webhook-signature: {signature}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from carebot.starter import write_starter

    target = Path(args.dir)
    for written in write_starter(target):
        print(f"wrote {written}")
    print(f"next: cd {target} && carebot validate && carebot run", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carebot", description="Proactive customer-care notifications for online shops."
    )
    parser.add_argument("--version", action="version", version=f"carebot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the daemon: HTTP server and scheduler")
    run.add_argument("--log-level", default="INFO")
    run.add_argument(
        "--log-format", choices=["text", "json"], help="overrides CAREBOT_LOG_FORMAT (text)"
    )
    run.set_defaults(handler=cmd_run)

    init = commands.add_parser(
        "init", help="write starter rules/, message_templates/ and config/carebot.toml"
    )
    init.add_argument("dir", nargs="?", default=".", help="where to write them (default: here)")
    init.set_defaults(handler=cmd_init)

    validate = commands.add_parser("validate", help="check rules and templates")
    validate.add_argument("rules_dir", nargs="?")
    validate.set_defaults(handler=cmd_validate)

    simulate = commands.add_parser("simulate", help="replay events in virtual time")
    simulate.add_argument("events", help="JSON Lines file of canonical events")
    simulate.add_argument("--until", help="stop at this instant (ISO 8601 with offset)")
    simulate.add_argument("--json", action="store_true", help="one JSON object per notification")
    simulate.set_defaults(handler=cmd_simulate)

    preview = commands.add_parser(
        "preview", help="render what a rule would send for one event, and when"
    )
    preview.add_argument("rule_id", metavar="RULE_ID")
    preview.add_argument("--event", required=True, help="a JSON file holding one canonical event")
    preview.add_argument("--locale", help="render for this locale instead of the customer's")
    preview.add_argument(
        "--html-out", help="where to save the email's HTML (default preview-<rule>.html)"
    )
    preview.set_defaults(handler=cmd_preview)

    status = commands.add_parser("status", help="counts by status and rule, next due")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    report = commands.add_parser("report", help="reports on what customers told you")
    reports = report.add_subparsers(dest="report", required=True)
    feedback = reports.add_parser(
        "feedback", help="scores and complaints by category and by product"
    )
    feedback.add_argument("--since", help="only replies received since (ISO 8601 with offset)")
    feedback.add_argument("--json", action="store_true", help="one JSON object")
    feedback.set_defaults(handler=cmd_report_feedback)
    cases = reports.add_parser(
        "cases", help="service-recovery cases: by category and product, times, recovery rate"
    )
    cases.add_argument("--since", help="only cases opened since (ISO 8601 with offset)")
    cases.add_argument("--json", action="store_true", help="one JSON object")
    cases.set_defaults(handler=cmd_report_cases)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply migrations up to head")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    sign = commands.add_parser(
        "sign", help="print Standard Webhooks headers for a canonical event file"
    )
    sign.add_argument("file")
    sign.add_argument("--id", help="webhook-id to use (default: random)")
    sign.set_defaults(handler=cmd_sign)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (``| head``): what is still buffered can go nowhere, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except RuleError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_PROBLEM
    except StoreError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except (EventError, CarebotError, ValueError) as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    raise SystemExit(main())
