"""carebot: proactive customer-care notifications for online shops."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
