"""The built web assets: /chat and the local GraphiQL page when built, a hint and the CDN page when not.

The browser tests in examples/web-chat/test/ drive the real build; these check the server's side of
the switch with a build folder of the same shape made here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agno_graphql import web
from tests.conftest import RunningServer, server_settings, start_server

CHAT_HTML = "<!doctype html><title>chat page</title><script src='chat.js'></script>"
GRAPHIQL_HTML = "<!doctype html><title>local graphiql</title><script src='/graphiql/graphiql.js'></script>"


def make_build(dist: Path) -> None:
    (dist / "chat").mkdir(parents=True)
    (dist / "chat" / "index.html").write_text(CHAT_HTML)
    (dist / "chat" / "chat.js").write_text("console.log('chat')")
    (dist / "graphiql").mkdir()
    (dist / "graphiql" / "index.html").write_text(GRAPHIQL_HTML)
    (dist / "graphiql" / "graphiql.js").write_text("console.log('graphiql')")


def serve_with_dist(dist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    monkeypatch.setattr(web, "DIST_DIR", dist)
    running = start_server(server_settings(f"sqlite:///{tmp_path / 'agno.db'}", tmp_path / "state"))
    yield running
    running.stop()


@pytest.fixture
def built_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    make_build(tmp_path / "dist")
    yield from serve_with_dist(tmp_path / "dist", tmp_path, monkeypatch)


@pytest.fixture
def unbuilt_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    yield from serve_with_dist(tmp_path / "no-dist", tmp_path, monkeypatch)


def get(server: RunningServer, path: str, **headers: str) -> httpx.Response:
    return httpx.get(server.base_url + path, headers=headers, follow_redirects=True, timeout=30)


def test_chat_page_is_served_at_chat_when_built(built_server: RunningServer) -> None:
    page = get(built_server, "/chat")
    assert page.status_code == 200
    assert page.url.path == "/chat/"
    assert page.text == CHAT_HTML
    script = get(built_server, "/chat/chat.js")
    assert script.status_code == 200
    assert script.text == "console.log('chat')"


def test_chat_page_not_built_says_how_to_build_it(unbuilt_server: RunningServer) -> None:
    page = get(unbuilt_server, "/chat/")
    assert page.status_code == 404
    assert "make web" in page.text


def test_chat_page_appears_once_built_without_a_restart(tmp_path: Path, unbuilt_server: RunningServer) -> None:
    assert get(unbuilt_server, "/chat/").status_code == 404
    make_build(tmp_path / "no-dist")
    assert get(unbuilt_server, "/chat/").text == CHAT_HTML


def test_graphiql_comes_from_the_build_when_built(built_server: RunningServer) -> None:
    page = get(built_server, "/graphql", accept="text/html")
    assert page.status_code == 200
    assert page.text == GRAPHIQL_HTML
    assert get(built_server, "/graphiql/graphiql.js").text == "console.log('graphiql')"


def test_graphiql_is_the_cdn_page_without_a_build(unbuilt_server: RunningServer) -> None:
    page = get(unbuilt_server, "/graphql", accept="text/html")
    assert page.status_code == 200
    assert "unpkg.com/graphiql" in page.text
    assert "wsConnectionParams: headers" in page.text, "the CDN page still sends the headers box on websockets"
    assert '"Authorization": "Bearer ' in page.text, "the headers box starts with the Authorization hint"
