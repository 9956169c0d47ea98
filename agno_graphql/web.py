"""The built web assets (`make web`): the chat page at /chat and GraphiQL from local files.

The build lives in examples/web-chat/dist/ and is not committed. Without it, /chat answers 404 with
the command that builds it, and /graphql keeps serving the CDN GraphiQL page.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from agno_graphql.settings import Settings

CHAT_PATH = "/chat"
GRAPHIQL_ASSETS_PATH = "/graphiql"
# Where `make web` puts the build, next to the package in a checkout (an editable install).
DIST_DIR = Path(__file__).resolve().parent.parent / "examples" / "web-chat" / "dist"

NOT_BUILT = "The chat page has not been built. Run `make web` (Node 20 and npm), then reload.\n"


def chat_is_built() -> bool:
    return (DIST_DIR / "chat" / "index.html").is_file()


def local_graphiql_page() -> str | None:
    """The bundled GraphiQL page, or None when the web assets have not been built."""
    page = DIST_DIR / "graphiql" / "index.html"
    return page.read_text(encoding="utf-8") if page.is_file() else None


class _BuiltFiles:
    """Static files from a build folder, looked up per request so a build made while serving is picked up."""

    def __init__(self, directory: Path, html: bool = False) -> None:
        self.directory = directory
        self.files = StaticFiles(directory=directory, html=html, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (self.directory / "index.html").is_file():
            await PlainTextResponse(NOT_BUILT, status_code=404)(scope, receive, send)
            return
        await self.files(scope, receive, send)


def web_routes(settings: Settings) -> list[BaseRoute]:
    """/chat (the page, or a 404 that says how to build it) and, with GraphiQL on, its bundled assets."""
    routes: list[BaseRoute] = [Mount(CHAT_PATH, app=_BuiltFiles(DIST_DIR / "chat", html=True), name="chat")]
    if settings.graphiql:
        routes.append(Mount(GRAPHIQL_ASSETS_PATH, app=_BuiltFiles(DIST_DIR / "graphiql"), name="graphiql-assets"))
    return routes
