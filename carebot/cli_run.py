"""``carebot run``: checks before the daemon starts, its banner, and the daemon itself."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from carebot import __version__
from carebot.cli_support import load_settings_or_fail, open_database
from carebot.exceptions import CarebotError, PortInUseError

if TYPE_CHECKING:
    from carebot.runtime import Runtime

__all__ = ["banner", "cmd_run", "event_loop_factory"]


def cmd_run(args: argparse.Namespace) -> int:
    from carebot.daemon import Daemon
    from carebot.logs import configure_logging
    from carebot.runtime import build_runtime
    from carebot.workers import WorkerProcesses

    settings = load_settings_or_fail()
    log_format = args.log_format or settings.log_format
    configure_logging(args.log_level, log_format)
    _require_rules_dir(settings.rules_dir)
    _require_free_port(settings.http.host, settings.http.port)
    db = open_database(settings)
    runtime = build_runtime(settings, db=db)
    if runtime.db.dialect == "sqlite":
        runtime.db.upgrade()  # the embedded default looks after itself
    elif runtime.db.pending_migrations():
        # Several daemons share a server database: migrating is the operator's explicit step.
        raise CarebotError("the database schema is not current: run `carebot db upgrade` first")
    print(banner(runtime), flush=True)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        workers = WorkerProcesses(
            settings,
            count=settings.dispatch.processes - 1,
            log_level=args.log_level,
            log_format=log_format,
        )
        runner.run(Daemon(runtime, workers=workers).serve())
    return 0


def banner(runtime: object) -> str:
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
    if s.dispatch.processes > 1:
        lines.append(
            f"  dispatch:  {s.dispatch.processes} sending processes (this one and "
            f"{s.dispatch.processes - 1} dispatch worker(s))"
        )
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


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (``uvicorn[standard]`` brings it), as uvicorn would pick."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
