"""The per-request (or per-socket) context: who is asking, the services, and batch loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

from agno_graphql.auth import Viewer
from agno_graphql.db.history import RunRecord
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
    _viewer: Viewer | None = None
    _run_counts: DataLoader[str, int] | None = None
    _titles: DataLoader[str, str | None] | None = None
    _active_runs: DataLoader[str, RunRecord | None] | None = None

    @property
    def viewer(self) -> Viewer:
        """The authenticated user; UNAUTHENTICATED when the token is missing or bad."""
        if self._viewer is None:
            if isinstance(self.request, WebSocket):
                header = init_payload_token(self.connection_params)
            else:
                header = self.request.headers.get("authorization")
            self._viewer = self.services.verifier.verify_header(header)
        return self._viewer

    @property
    def user_id(self) -> str:
        return self.viewer.user_id

    @property
    def run_counts(self) -> DataLoader[str, int]:
        if self._run_counts is None:
            self._run_counts = DataLoader(load_fn=self.services.run_counts, cache=False)
        return self._run_counts

    @property
    def session_titles(self) -> DataLoader[str, str | None]:
        if self._titles is None:
            self._titles = DataLoader(load_fn=self.services.session_titles, cache=False)
        return self._titles

    @property
    def active_runs(self) -> DataLoader[str, RunRecord | None]:
        if self._active_runs is None:
            user_id = self.user_id

            async def load(session_ids: list[str]) -> list[RunRecord | None]:
                return await self.services.active_runs(user_id, session_ids)

            self._active_runs = DataLoader(load_fn=load, cache=False)
        return self._active_runs
