from __future__ import annotations

from carebot.cli import main

raise SystemExit(main())
