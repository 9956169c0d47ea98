"""Field permissions."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from agno_graphql.context import Info


class IsAuthenticated(BasePermission):
    """The viewer's token must hold. Strawberry shares one instance across requests, so nothing is kept on it: a
    missing or refused token raises its own UNAUTHENTICATED error (auth.TokenVerifier), whose message says what is
    wrong with it; this never answers False."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.viewer  # noqa: B018 - verifies the token once per request; Unauthenticated when it fails
        return True
