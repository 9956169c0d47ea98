"""The per-request (or per-socket) context: who is asking, the services, and batch loaders; and `Info`, the
resolvers' view of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeAlias
from uuid import uuid4

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

from agno_graphql.auth import Viewer
from agno_graphql.logs import note_user
from agno_graphql.records import RunRecord
from agno_graphql.services import Services


def init_payload_token(params: Any) -> str | None:
    """The Authorization value of a websocket connection_init payload (either spelling)."""
    if not isinstance(params, dict):
        return None
    value = params.get("Authorization", params.get("authorization"))
    return value if isinstance(value, str) else None


@dataclass
class Context:
    services: Services
    request: Request | WebSocket
    response: Response | WebSocket | None = None
    connection_params: dict[str, Any] | None = None
    request_id: str = field(default_factory=lambda: uuid4().hex[:16])

    @cached_property
    def viewer(self) -> Viewer:
        """The authenticated user; UNAUTHENTICATED when the token is missing or bad. A socket's is set once its
        connection_init is accepted."""
        if isinstance(self.request, WebSocket):
            header = init_payload_token(self.connection_params)
        else:
            header = self.request.headers.get("authorization")
        viewer = self.services.verifier.verify_header(header)
        note_user(viewer.user_id)
        return viewer

    @property
    def user_id(self) -> str:
        return self.viewer.user_id

    # Loaders without a cache: a socket's context lives as long as the socket, and its figures change.
    @cached_property
    def run_counts(self) -> DataLoader[str, int]:
        return DataLoader(load_fn=self.services.history.run_counts, cache=False)

    @cached_property
    def session_titles(self) -> DataLoader[str, str | None]:
        return DataLoader(load_fn=self.services.history.titles, cache=False)

    @cached_property
    def active_runs(self) -> DataLoader[str, RunRecord | None]:
        user_id, runs = self.user_id, self.services.runs

        async def load(session_ids: list[str]) -> list[RunRecord | None]:
            return await runs.active(user_id, session_ids)

        return DataLoader(load_fn=load, cache=False)


Info: TypeAlias = strawberry.Info[Context, None]
