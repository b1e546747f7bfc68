"""What every route reads from the application: the runtime ``create_app`` was given."""

from __future__ import annotations

from starlette.requests import Request

from carebot.runtime import Runtime

__all__ = ["runtime_of"]


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
