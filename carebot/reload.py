"""Hot reload: pick up edits under the rules and templates folders without a restart.

The daemon polls file modification times (dependency-free, a few hundred ``stat`` calls at
most). A change is checked exactly as ``carebot validate`` checks it; only a clean rule book
replaces the live one, so a broken edit is logged with its ``file:line`` and the daemon keeps
running on the last good rules. Pending notifications of a rule that is gone are cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from carebot.exceptions import Problem, RuleError
from carebot.rendering import TemplateRenderer
from carebot.rulebook.ruleset import RuleSet
from carebot.rulebook.validation import CheckOptions, check_rules
from carebot.store import schedule
from carebot.store.database import Database

__all__ = ["ReloadOutcome", "RulesReloader", "snapshot"]

logger = logging.getLogger(__name__)

Snapshot = dict[str, tuple[int, int]]


def snapshot(rules_dir: Path, templates_dir: Path) -> Snapshot:
    """(mtime, size) of every rule file and every file under the templates folder."""
    files: list[Path] = []
    if rules_dir.is_dir():
        files += [p for p in rules_dir.iterdir() if p.suffix in {".yaml", ".yml"}]
    if templates_dir.is_dir():
        files += list(templates_dir.rglob("*"))
    found: Snapshot = {}
    for path in files:
        try:
            stat = path.stat()
        except OSError:  # removed between listing and stat: the next poll sees it gone
            continue
        if path.is_file():
            found[str(path)] = (stat.st_mtime_ns, stat.st_size)
    return found


@dataclass(frozen=True)
class ReloadOutcome:
    """What one poll did: nothing, a rejected edit (with its problems), or a new rule book."""

    changed: bool
    applied: bool = False
    problems: tuple[Problem, ...] = ()
    removed_rules: tuple[str, ...] = ()
    cancelled: int = 0


class RulesReloader:
    """Compares the folders with the last snapshot and reloads the rule set when they differ."""

    def __init__(
        self,
        *,
        rules: RuleSet,
        renderer: TemplateRenderer,
        db: Database,
        templates_dir: Path,
        default_locale: str,
        shop_name: str | None = None,
        sms_provider: str = "twilio",
        now: Callable[[], datetime],
    ) -> None:
        self.rules = rules
        self.renderer = renderer
        self.db = db
        self.templates_dir = templates_dir
        self.default_locale = default_locale
        self.shop_name = shop_name
        # With Alibaba Cloud, an edit that leaves an SMS rule without its template is refused.
        self.sms_provider = sms_provider
        self.now = now
        self._seen = snapshot(rules.rules_dir, templates_dir)

    def poll(self) -> ReloadOutcome:
        """Reload when anything changed since the last poll; never raises for a bad edit."""
        current = snapshot(self.rules.rules_dir, self.templates_dir)
        if current == self._seen:
            return ReloadOutcome(changed=False)
        self._seen = current
        self.renderer.reload()
        options = CheckOptions(
            default_locale=self.default_locale,
            shop_name=self.shop_name,
            limits=self.rules.limits,
            render=self.renderer.limits,
            sms_provider=self.sms_provider,
        )
        loaded, problems = check_rules(self.rules.rules_dir, self.templates_dir, options)
        if problems:
            self.rules.last_error = RuleError(problems)
            for problem in problems:
                logger.error(
                    "rules not reloaded, keeping the last good rules: %s",
                    problem,
                    extra={"action": "rules_reload_failed"},
                )
            return ReloadOutcome(changed=True, problems=tuple(problems))
        before = {rule.id for rule in self.rules().rules}
        self.rules.replace(loaded.rulebook)
        removed = tuple(sorted(before - {rule.id for rule in loaded.rulebook.rules}))
        cancelled = self._cancel_removed(removed)
        logger.info(
            "rules reloaded: %d rules",
            len(loaded.rulebook.rules),
            extra={
                "action": "rules_reloaded",
                "removed": ",".join(removed) or "-",
                "cancelled": cancelled,
            },
        )
        return ReloadOutcome(changed=True, applied=True, removed_rules=removed, cancelled=cancelled)

    def _cancel_removed(self, removed: tuple[str, ...]) -> int:
        if not removed:
            return 0
        now = self.now()
        with self.db.transaction() as session:
            return sum(
                schedule.cancel_rules(
                    session, rule_ids=[rule_id], reason=f"rule '{rule_id}' was removed", now=now
                )
                for rule_id in removed
            )
