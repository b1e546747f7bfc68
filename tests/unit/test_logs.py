from __future__ import annotations

import json
import logging
import sys

from carebot.logs import JsonFormatter, KeyValueFormatter, configure_logging


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "carebot.test", logging.WARNING, __file__, 1, "send %s", ("x",), None
    )
    record.__dict__.update(extra)
    return record


def test_json_lines_hold_message_level_and_the_structured_fields() -> None:
    line = JsonFormatter().format(_record(action="retry", attempt=2, to="+86138****8000"))
    data = json.loads(line)
    assert data["message"] == "send x" and data["level"] == "warning"
    assert data["logger"] == "carebot.test" and data["ts"].endswith("+00:00")
    assert (data["action"], data["attempt"], data["to"]) == ("retry", 2, "+86138****8000")
    assert "\n" not in line


def test_a_field_never_overwrites_the_message_and_a_traceback_is_kept() -> None:
    try:
        raise RuntimeError("provider down")
    except RuntimeError:
        record = _record(level="spoofed")
        record.exc_info = sys.exc_info()
    data = json.loads(JsonFormatter().format(record))
    assert data["level"] == "warning"
    assert "RuntimeError: provider down" in data["exc"]


def test_text_lines_append_the_fields_as_key_value() -> None:
    line = KeyValueFormatter("%(levelname)s %(message)s").format(_record(action="retry"))
    assert line == "WARNING send x action=retry"


def test_the_twilio_clients_request_dumps_show_only_at_debug() -> None:
    root = logging.getLogger()
    saved = root.level, list(root.handlers), logging.getLogger("twilio").level
    try:
        configure_logging("INFO")
        client = logging.getLogger("twilio.async_http_client")
        assert not client.isEnabledFor(logging.INFO)
        assert client.isEnabledFor(logging.WARNING)
        assert logging.getLogger("carebot.dispatch").isEnabledFor(logging.INFO)
        configure_logging("DEBUG")
        assert client.isEnabledFor(logging.INFO)
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        logging.getLogger("twilio").setLevel(saved[2])
