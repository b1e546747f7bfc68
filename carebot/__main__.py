from __future__ import annotations

from carebot.cli import main

# Guarded: the dispatch workers of ``carebot run`` are spawned processes, which import this
# module again (as ``__mp_main__``) and must not run the command line a second time.
if __name__ == "__main__":
    raise SystemExit(main())
