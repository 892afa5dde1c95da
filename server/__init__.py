"""The xsearch HTTP server: a FastAPI app (search, documents, live updates) and its web page.

    from server import create_app, ServerSettings
    app = create_app(ServerSettings(index="indexes/taln"))

Command line: `xsearch serve --index indexes/taln` (or `python -m server --index indexes/taln`).
"""
from __future__ import annotations

from typing import Any

__all__ = ["create_app", "ServerSettings", "LiveIndex"]


def __getattr__(name: str) -> Any:
    # keep `import server` light: FastAPI and the index load when first used
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ServerSettings":
        from .settings import ServerSettings

        return ServerSettings
    if name == "LiveIndex":
        from .state import LiveIndex

        return LiveIndex
    raise AttributeError(name)
