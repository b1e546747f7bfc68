"""A new user's mistakes, through the ``carebot`` command: one clear line and a documented exit
code (see ``carebot/cli.py``), never a traceback; and ``carebot init`` to start outside a
checkout."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from .conftest import REPO, free_port

EXAMPLE_EVENT = REPO / "examples" / "events" / "order-shipped.json"


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    env["CAREBOT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'carebot.db'}"
    return env | overrides


def _carebot(
    *args: str, cwd: Path = REPO, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carebot", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def _one_clean_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and "CancelledError" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


def test_simulate_and_sign_name_the_missing_file_and_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    for command in (["simulate", str(missing)], ["sign", str(missing)]):
        result = _carebot(*command, env=_env(tmp_path))
        assert result.returncode == 1, result.stderr
        line = _one_clean_line(result.stderr)
        assert str(missing) in line and "No such file" in line


def test_simulate_on_a_pretty_printed_json_file_says_once_that_it_wants_json_lines(
    tmp_path: Path,
) -> None:
    pretty = tmp_path / "event.json"
    pretty.write_text(EXAMPLE_EVENT.read_text(encoding="utf-8"), encoding="utf-8")
    assert len(pretty.read_text(encoding="utf-8").splitlines()) > 1
    result = _carebot("simulate", str(pretty), env=_env(tmp_path))
    assert result.returncode == 1
    line = _one_clean_line(result.stderr)
    assert "JSON Lines" in line and "one canonical event per line" in line
    assert f"{pretty}:1:" in line  # the first line, which is not an event on its own


def test_an_unreachable_database_is_one_line_and_exit_3(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = _env(
        tmp_path, CAREBOT_DATABASE_URL=f"postgresql+psycopg://carebot:secret@127.0.0.1:{port}/x"
    )
    result = _carebot("status", env=env)
    assert result.returncode == 3, result.stderr
    line = _one_clean_line(result.stderr)
    assert "cannot reach the database" in line and "secret" not in line


def test_a_database_file_in_a_folder_that_cannot_be_made_is_exit_3(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    env = _env(tmp_path, CAREBOT_DATABASE_URL=f"sqlite:///{blocker / 'sub' / 'carebot.db'}")
    result = _carebot("status", env=env)
    assert result.returncode == 3, result.stderr
    assert "cannot reach the database" in _one_clean_line(result.stderr)


def test_preview_into_a_reader_that_went_away_exits_quietly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "carebot", "preview", "shipped", "--event", str(EXAMPLE_EVENT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=_env(
            tmp_path,
            CAREBOT_RULES_DIR=str(REPO / "rules"),
            CAREBOT_TEMPLATES_DIR=str(REPO / "message_templates"),
        ),
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as `| head` does once it has what it wants
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr
    assert stderr == ""


def test_a_second_daemon_on_a_busy_port_fails_before_starting_anything(tmp_path: Path) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        result = _carebot(
            "run",
            env=_env(
                tmp_path,
                CAREBOT_HTTP__PORT=str(port),
                CAREBOT_RULES_DIR=str(REPO / "rules"),
                CAREBOT_TEMPLATES_DIR=str(REPO / "message_templates"),
            ),
        )
    assert result.returncode == 1, result.stderr
    line = _one_clean_line(result.stderr)
    assert f"127.0.0.1:{port}" in line and "CAREBOT_HTTP__PORT" in line
    assert result.stdout == ""  # no banner
    assert "scheduler started" not in result.stderr


def test_run_without_a_rules_folder_points_to_carebot_init(tmp_path: Path) -> None:
    result = _carebot("run", cwd=tmp_path, env=_env(tmp_path, CAREBOT_HTTP__PORT=str(free_port())))
    assert result.returncode == 1
    line = _one_clean_line(result.stderr)
    assert "rules folder rules not found" in line and "carebot init" in line
    assert result.stdout == ""


def test_init_writes_a_starter_that_validates_and_simulates_outside_the_checkout(
    tmp_path: Path,
) -> None:
    shop = tmp_path / "shop"
    env = _env(tmp_path)
    created = _carebot("init", str(shop), cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    assert (shop / "config" / "carebot.toml").is_file()
    assert sorted(p.name for p in (shop / "rules").glob("*.yaml")) == sorted(
        p.name for p in (REPO / "rules").glob("*.yaml")
    )
    validated = _carebot("validate", cwd=shop, env=env)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    events = shop / "events.jsonl"
    events.write_text(
        json.dumps(json.loads(EXAMPLE_EVENT.read_text(encoding="utf-8")), ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    until = "2026-11-20T12:00:00+08:00"  # the shipped notice is due at once
    simulated = _carebot(
        "simulate", str(events), "--json", "--until", until, cwd=shop, env=env, timeout=300
    )
    assert simulated.returncode == 0, simulated.stderr
    assert any(json.loads(line)["rule"] == "shipped" for line in simulated.stdout.splitlines())
    # A second init never overwrites what the merchant has edited since.
    again = _carebot("init", str(shop), cwd=tmp_path, env=env)
    assert again.returncode == 1 and "nothing written" in _one_clean_line(again.stderr)
