"""``carebot simulate`` as a script path, so the benchmark can measure it in a child process."""

from __future__ import annotations

import sys

from carebot.cli import main

sys.exit(main(["simulate", *sys.argv[1:]]))
