"""Log set-up: one line per record, with its structured fields (``extra=``).

``text`` (the default, for a terminal) appends the fields as key=value; ``json`` writes one JSON
object per line (``ts``, ``level``, ``logger``, ``message``, the fields, ``exc`` when there is a
traceback) for journald, Loki or any collector that parses JSON lines.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

__all__ = ["JsonFormatter", "KeyValueFormatter", "LogFormat", "configure_logging"]

LogFormat = Literal["text", "json"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = _fields(record)
        if not fields:
            return base
        return base + " " + " ".join(f"{k}={v}" for k, v in fields.items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _ProcessField(logging.Filter):
    """Adds ``worker=<name>`` to each record: which of the daemon's processes wrote it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.process = name

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "worker"):
            record.worker = self.process
        return True


def configure_logging(
    level: str = "INFO", log_format: LogFormat = "text", *, process: str | None = None
) -> None:
    """Log lines to stderr; ``process`` names a dispatch worker in every line it writes."""
    handler = logging.StreamHandler(sys.stderr)
    if process is not None:
        handler.addFilter(_ProcessField(process))
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every tick at INFO; once a second is noise, its warnings are not.
    logging.getLogger("apscheduler").setLevel(max(root.level, logging.WARNING))
    # Alembic names each of its plugins at INFO on every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(max(root.level, logging.WARNING))
    # The twilio client writes a dozen INFO lines (URL, every header) for each message it
    # sends; carebot logs the one that matters ("sms accepted by twilio"). DEBUG shows them.
    logging.getLogger("twilio").setLevel(
        logging.WARNING if root.level >= logging.INFO else root.level
    )
