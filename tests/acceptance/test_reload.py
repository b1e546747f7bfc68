"""Hot reload in a running daemon: a broken edit is survived, a new rule is applied live."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from .conftest import REPO, shipped_event, wait_until


def _event(n: int) -> dict[str, Any]:
    # One customer per order, so that no frequency cap holds a message back.
    return shipped_event(n, phone=f"+86138{n:08d}", email=f"c{n}@example.com")


TIP_RULE = """\
rules:
  - id: parcel-tip
    on: order.shipped
    send: {channel: sms, template: parcel_tip}
"""
TIP_TEMPLATE = "温馨提示：订单{{ order.id }}的包裹到了请尽快查收。\n"


def _shop(tmp_path: Path) -> tuple[Path, Path]:
    rules, templates = tmp_path / "rules", tmp_path / "message_templates"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "message_templates", templates)
    return rules, templates


def test_a_broken_edit_is_survived_and_a_new_rule_applies_within_10_s_without_restart(
    tmp_path: Path, daemon_factory: Any
) -> None:
    rules, templates = _shop(tmp_path)
    daemon = daemon_factory(CAREBOT_RULES_DIR=str(rules), CAREBOT_TEMPLATES_DIR=str(templates))
    daemon.start()
    broken = rules / "broken.yaml"
    broken.write_text("rules:\n  - id: half-written\n    on: [order.shipped\n", encoding="utf-8")

    # The broken file is reported at its file and line, and the last good rules keep working.
    assert wait_until(lambda: f"{broken}:4:" in daemon.stderr_path.read_text(), timeout=10)
    assert daemon.post(_event(2001)).status_code == 202
    assert wait_until(lambda: "SF0000002001" in daemon.stdout(), timeout=5), daemon.stdout()

    # The fix: the broken file goes, a new rule with its own new template comes.
    broken.unlink()
    (templates / "zh-CN" / "parcel_tip.sms.j2").write_text(TIP_TEMPLATE, encoding="utf-8")
    (rules / "tips.yaml").write_text(TIP_RULE, encoding="utf-8")
    started = time.monotonic()
    n = 2002
    while time.monotonic() - started < 10:
        assert daemon.post(_event(n)).status_code == 202
        if wait_until(lambda n=n: f"订单{n}的包裹" in daemon.stdout(), timeout=1.0):
            break
        n += 1
    else:
        raise AssertionError(f"the new rule was not applied within 10 s:\n{daemon.stdout()}")
    assert f"SF{n:010d}" in daemon.stdout()  # the shipped notice still goes out too
    assert daemon.query(
        "select rule_id, status from notifications where order_id = ? order by rule_id", str(n)
    ) == [("parcel-tip", "sent"), ("shipped", "sent")]
