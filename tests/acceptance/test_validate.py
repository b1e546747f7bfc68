"""``carebot validate`` as a subprocess: exit codes and compiler-style problem lines."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def _validate(rules_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carebot", "validate", str(rules_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
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
