"""The ``carebot`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from carebot import __version__
from carebot.exceptions import CarebotError, EventError, RuleError
from carebot.settings import Settings, load_settings

__all__ = ["main"]


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
        f"  quiet:     {s.quiet_hours} (customer's local time), default zone {s.default_timezone}",
    ]
    if isinstance(sms, Console):
        lines.append(
            "  sms:       console (no Twilio credentials: set CAREBOT_TWILIO__ACCOUNT_SID, "
            "CAREBOT_TWILIO__AUTH_TOKEN, CAREBOT_TWILIO__FROM_NUMBER)"
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


def cmd_run(args: argparse.Namespace) -> int:
    from carebot.daemon import Daemon
    from carebot.logs import configure_logging
    from carebot.runtime import build_runtime

    configure_logging(args.log_level)
    settings = _settings(args)
    runtime = build_runtime(settings)
    if runtime.db.dialect == "sqlite":
        runtime.db.upgrade()  # the embedded default looks after itself
    elif runtime.db.pending_migrations():
        # Several daemons share a server database: migrating is the operator's explicit step.
        raise CarebotError("the database schema is not current: run `carebot db upgrade` first")
    print(_banner(runtime), flush=True)
    asyncio.run(Daemon(runtime).serve())
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from carebot.store.database import Database

    settings = _settings(args)
    db = Database(settings.database_url)
    db.upgrade()
    print(f"database at head: {db.engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from carebot.rulebook.validation import validate_rules

    settings = _settings(args)
    rules_dir = Path(args.rules_dir) if args.rules_dir else settings.rules_dir
    problems = validate_rules(
        rules_dir, settings.templates_dir, default_locale=settings.default_locale
    )
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{rules_dir}: ok", file=sys.stderr)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from carebot.simulate import format_timeline, parse_until, read_events, simulate

    settings = _settings(args)
    until = parse_until(args.until) if args.until else None
    events = read_events(Path(args.events))
    records = asyncio.run(simulate(events, settings=settings, until=until))
    if args.json:
        for record in records:
            print(record.as_json())
    else:
        print(format_timeline(records))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from carebot.store.database import Database
    from carebot.store.reports import status_summary

    settings = _settings(args)
    db = Database(settings.database_url)
    with db.transaction() as session:
        summary = status_summary(session, now=datetime.now(UTC))
    if args.json:
        print(
            json.dumps(
                {
                    "by_status": summary.by_status,
                    "by_rule": summary.by_rule,
                    "next_due": summary.next_due.isoformat() if summary.next_due else None,
                    "oldest_overdue": summary.oldest_overdue.isoformat()
                    if summary.oldest_overdue
                    else None,
                    "failures_by_reason": summary.failures_by_reason,
                },
                ensure_ascii=False,
            )
        )
        return 0
    statuses = sorted(summary.by_status)
    print(f"{'rule':<20}" + "".join(f"{s:>12}" for s in statuses))
    for rule, counts in sorted(summary.by_rule.items()):
        print(f"{rule:<20}" + "".join(f"{counts.get(s, 0):>12}" for s in statuses))
    print(f"{'total':<20}" + "".join(f"{summary.by_status[s]:>12}" for s in statuses))
    print(f"next due:       {summary.next_due.isoformat() if summary.next_due else '-'}")
    print(
        f"oldest overdue: {summary.oldest_overdue.isoformat() if summary.oldest_overdue else '-'}"
    )
    for reason, count in summary.failures_by_reason.items():
        print(f"failed {count:>5}  {reason}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from standardwebhooks.webhooks import Webhook

    from carebot.runtime import webhook_secret
    from carebot.store.database import Database

    settings = _settings(args)
    body = Path(args.file).read_bytes().decode("utf-8")
    db = Database(settings.database_url)
    db.upgrade()
    secret = webhook_secret(settings, db)
    message_id = args.id or f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, now, body)
    print(f"webhook-id: {message_id}")
    print(f"webhook-timestamp: {int(now.timestamp())}")
    print(f"webhook-signature: {signature}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carebot", description="Proactive customer-care notifications for online shops."
    )
    parser.add_argument("--version", action="version", version=f"carebot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the daemon: HTTP server and scheduler")
    run.add_argument("--log-level", default="INFO")
    run.set_defaults(handler=cmd_run)

    validate = commands.add_parser("validate", help="check rules and templates")
    validate.add_argument("rules_dir", nargs="?")
    validate.set_defaults(handler=cmd_validate)

    simulate = commands.add_parser("simulate", help="replay events in virtual time")
    simulate.add_argument("events", help="JSON Lines file of canonical events")
    simulate.add_argument("--until", help="stop at this instant (ISO 8601 with offset)")
    simulate.add_argument("--json", action="store_true", help="one JSON object per notification")
    simulate.set_defaults(handler=cmd_simulate)

    status = commands.add_parser("status", help="counts by status and rule, next due")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

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
    except RuleError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except (EventError, CarebotError, ValueError) as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
