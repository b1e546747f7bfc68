"""Rule files that cost more than they say: an alias bomb and an oversized file.

``carebot validate`` refuses them with ``path:line:col`` within a small memory budget (the
child's peak RSS, measured by the kernel), and the hot reloader keeps the last good rules.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from support.core import MESSAGE_TEMPLATES, RULES, migrated_database

from carebot.reload import RulesReloader
from carebot.rendering import TemplateRenderer
from carebot.rulebook.loader import RuleLimits
from carebot.rulebook.ruleset import RuleSet

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
# Nine levels of nine: 9**9 (387 million) strings from about 350 bytes.
LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    + "rules: *i\n"
)
MEMORY_BUDGET_KB = 250_000  # the whole validate process, interpreter and libraries included
HARD_CAP_BYTES = 2_000_000_000  # so that a regression fails the test, not the machine


def _validate(rules: Path, tmp_path: Path, **env: str) -> tuple[int, str, int, float]:
    """Run ``carebot validate``; exit code, stdout, peak RSS (KiB) and seconds taken."""

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (HARD_CAP_BYTES, HARD_CAP_BYTES))

    out = tmp_path / "validate.out"
    started = time.monotonic()
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "carebot", "validate", str(rules)],
            cwd=tmp_path,
            env={
                "PATH": os.environ.get("PATH", ""),
                "CAREBOT_TEMPLATES_DIR": str(MESSAGE_TEMPLATES),
                **env,
            },
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            preexec_fn=cap_memory,
        )
        # A regression must fail the test, not hang it.
        watchdog = threading.Timer(90, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
            proc.returncode = 0  # reaped by wait4
    return (
        os.waitstatus_to_exitcode(status),
        out.read_text(),
        usage.ru_maxrss,
        (time.monotonic() - started),
    )


def test_validate_refuses_an_alias_bomb_with_its_place_within_a_memory_budget(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(RULES / "shipping.yaml", rules)
    bomb = rules / "laughs.yaml"
    bomb.write_text(LAUGHS, encoding="utf-8")
    assert len(LAUGHS) < 400

    code, stdout, peak_kb, seconds = _validate(rules, tmp_path)
    assert code == 1, stdout
    lines = [line for line in stdout.splitlines() if line.startswith(str(bomb))]
    assert lines, stdout
    _, line, col, message = lines[0].split(":", 3)
    assert int(line) >= 1 and int(col) >= 1
    assert "expands to more than 100000 values" in message
    assert peak_kb < MEMORY_BUDGET_KB, f"validate peaked at {peak_kb / 1024:.0f} MiB"
    assert seconds < 60


def test_the_alias_limit_is_a_setting(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(RULES / "shipping.yaml", rules)
    code, stdout, _, _ = _validate(rules, tmp_path, CAREBOT_RULES__MAX_YAML_NODES="5")
    assert code == 1 and "expands to more than 5 values" in stdout


def test_validate_refuses_a_rule_file_past_the_size_limit(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    big = rules / "big.yaml"
    big.write_text("# padding\n" * 20_000 + "rules: []\n", encoding="utf-8")
    code, stdout, _, _ = _validate(rules, tmp_path, CAREBOT_RULES__MAX_FILE_BYTES="100000")
    assert code == 1
    assert f"{big}:1:1: file is larger than 100000 bytes" in stdout


def test_hot_reload_refuses_an_alias_bomb_and_keeps_the_last_good_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(RULES / "shipping.yaml", rules)
    db = migrated_database(tmp_path / "carebot.db")
    ruleset = RuleSet(rules, limits=RuleLimits(max_yaml_nodes=100_000))
    good = {rule.id for rule in ruleset().rules}
    reloader = RulesReloader(
        rules=ruleset,
        renderer=TemplateRenderer(templates_dir=MESSAGE_TEMPLATES, default_locale="zh-CN"),
        db=db,
        templates_dir=MESSAGE_TEMPLATES,
        default_locale="zh-CN",
        now=lambda: NOW,
    )
    (rules / "laughs.yaml").write_text(LAUGHS, encoding="utf-8")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = reloader.poll()
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert outcome.changed and not outcome.applied
    assert any("expands to more than" in p.message for p in outcome.problems)
    assert {rule.id for rule in ruleset().rules} == good
    assert grown_kb < 100_000
    db.dispose()
