"""``carebot validate`` as a subprocess: exit codes and compiler-style problem lines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def _validate(rules_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carebot", "validate", str(rules_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=60,
    )


def test_the_shipped_rules_validate_clean() -> None:
    result = _validate(REPO / "rules")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_a_misspelt_trigger_exits_1_with_file_line_and_col(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    shipping = rules / "shipping.yaml"
    text = shipping.read_text(encoding="utf-8")
    assert "on: order.shipped" in text
    shipping.write_text(text.replace("on: order.shipped", "on: order.shiped"), encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if "on: order.shipped" in row)
    result = _validate(rules)
    assert result.returncode == 1
    assert result.stdout.startswith(f"{shipping}:{line}:")
    assert "did you mean 'order.shipped'" in result.stdout


def _line_of(text: str, needle: str) -> int:
    return next(n for n, row in enumerate(text.splitlines(), start=1) if needle in row)


def test_four_kinds_of_mistake_each_point_at_their_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    shipping = rules / "shipping.yaml"
    text = shipping.read_text(encoding="utf-8")
    shipping.write_text(text.replace("on: order.shipped", "on: order.shiped"), encoding="utf-8")
    trigger_line = _line_of(text, "on: order.shipped")
    broken = rules / "broken.yaml"
    broken.write_text("rules:\n  - id: oops\n    on: [order.paid\n", encoding="utf-8")
    extra = rules / "extra.yaml"
    extra_text = (
        "rules:\n"
        "  - id: thanks\n"
        "    on: order.paid\n"
        "    send: {channel: sms, template: thank_you_missing}\n"
        "  - id: delivered-check\n"
        "    on: order.delivered\n"
        "    when: shipment.status == 'delivered' and (\n"
        "    send: {channel: sms, template: shipped}\n"
    )
    extra.write_text(extra_text, encoding="utf-8")

    result = _validate(rules)

    assert result.returncode == 1
    lines = result.stdout.splitlines()

    def reported(path: Path, line: int, words: str) -> bool:
        return any(row.startswith(f"{path}:{line}:") and words in row for row in lines)

    assert reported(shipping, trigger_line, "order.shiped"), result.stdout
    assert reported(broken, 4, "invalid YAML"), result.stdout
    assert reported(extra, 4, "thank_you_missing"), result.stdout
    assert reported(extra, 7, "when"), result.stdout


def test_an_sms_longer_than_the_rules_max_segments_is_reported_at_the_rule(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "short.yaml").write_text(
        "rules:\n"
        "  - id: shipped\n"
        "    on: order.shipped\n"
        "    send: {channel: sms, template: shipped}\n"
        "    max_segments: 1\n",
        encoding="utf-8",
    )
    templates = tmp_path / "message_templates"
    shutil.copytree(REPO / "message_templates", templates)
    # 80 Chinese characters: two UCS-2 segments whatever the shop is called.
    (templates / "zh-CN" / "shipped.sms.j2").write_text(
        "【{{ shop.name }}】" + "您的包裹已发出" * 10 + "{{ shipment.tracking_number }}\n",
        encoding="utf-8",
    )
    result = _validate(rules, CAREBOT_TEMPLATES_DIR=str(templates))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{rules / 'short.yaml'}:5:"), result.stdout
    assert "UCS-2 segments" in result.stdout and "max_segments is 1" in result.stdout
