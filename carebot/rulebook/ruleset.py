"""The live rule set: the last rule book that loaded cleanly, swapped whole on reload."""

from __future__ import annotations

import logging
from pathlib import Path

from carebot.exceptions import RuleError
from carebot.rulebook.loader import DEFAULT_RULE_LIMITS, RuleLimits, load_rulebook
from carebot.rulebook.schema import Rulebook

__all__ = ["RuleSet"]

logger = logging.getLogger(__name__)


class RuleSet:
    """Holds the current ``Rulebook``; a broken reload keeps the last good one."""

    def __init__(
        self,
        rules_dir: Path,
        rulebook: Rulebook | None = None,
        *,
        limits: RuleLimits = DEFAULT_RULE_LIMITS,
    ) -> None:
        self.rules_dir = rules_dir
        self.limits = limits
        self._current = (
            rulebook if rulebook is not None else load_rulebook(rules_dir, limits=limits)
        )
        self.last_error: RuleError | None = None

    def __call__(self) -> Rulebook:
        return self._current

    def replace(self, rulebook: Rulebook) -> None:
        """Swap in a rule book that was loaded and checked elsewhere (the hot reloader)."""
        self._current = rulebook
        self.last_error = None

    def reload(self) -> bool:
        """Load the folder again; True when the new rule book replaced the old one."""
        try:
            rulebook = load_rulebook(self.rules_dir, limits=self.limits)
        except RuleError as exc:
            self.last_error = exc
            for problem in exc.problems:
                logger.error(
                    "rule reload failed: %s", problem, extra={"action": "rules_reload_failed"}
                )
            return False
        self._current = rulebook
        self.last_error = None
        return True
