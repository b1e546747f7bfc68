"""The starter rules, templates and configuration that ``carebot init`` writes.

They are the repository's own ``rules/``, ``message_templates/`` and ``config/carebot.toml``
(linked here, so there is one copy to keep up to date), shipped as package data.
"""

from __future__ import annotations

import shutil
from importlib.resources import as_file, files
from pathlib import Path

from carebot.exceptions import CarebotError

__all__ = ["write_starter"]

# What is written, relative to the target folder, from what in this package.
_PARTS = (
    ("rules", "rules"),
    ("message_templates", "message_templates"),
    ("config/carebot.toml", "carebot.toml"),
)


def write_starter(target: Path) -> list[Path]:
    """Write the starter files under ``target``; refuse, writing nothing, if any exists."""
    taken = [target / name for name, _ in _PARTS if (target / name).exists()]
    if taken:
        raise CarebotError(
            f"{', '.join(str(t) for t in taken)} already exist(s): nothing written"
            " (carebot init never overwrites)"
        )
    written = []
    for name, source in _PARTS:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        with as_file(files(__package__).joinpath(source)) as path:
            if path.is_dir():
                shutil.copytree(path, destination, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copyfile(path, destination)
        written.append(destination)
    return written
