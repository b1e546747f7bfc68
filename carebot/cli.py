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
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from carebot import __version__
from carebot.cli_reports import cmd_report_cases, cmd_report_feedback, cmd_status
from carebot.cli_run import cmd_run
from carebot.cli_support import load_settings_or_fail, open_database
from carebot.exceptions import CarebotError, EventError, RuleError, StoreError

__all__ = ["main"]

# Replays shorter than this finish too fast for a progress counter to help.
PROGRESS_MIN_EVENTS = 200

EXIT_PROBLEM = 1
EXIT_DATABASE = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = load_settings_or_fail()
    db = open_database(settings)
    db.upgrade()
    print(f"database at head: {db.engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from carebot.rulebook.loader import RuleLimits
    from carebot.rulebook.validation import CheckOptions, validate_rules
    from carebot.sandbox import RenderLimits

    settings = load_settings_or_fail()
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

    settings = load_settings_or_fail()
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

    settings = load_settings_or_fail()
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


def cmd_sign(args: argparse.Namespace) -> int:
    from standardwebhooks.webhooks import Webhook

    from carebot.runtime import webhook_secret

    settings = load_settings_or_fail()
    path = Path(args.file)
    try:
        body = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise CarebotError(f"{path}: cannot read the event file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CarebotError(f"{path}: not UTF-8 text: {exc.reason}") from exc
    db = open_database(settings)
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
