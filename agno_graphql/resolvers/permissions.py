"""Field permissions."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.permission import BasePermission

from agno_graphql.errors import UNAUTHENTICATED, AppError


class IsAuthenticated(BasePermission):
    message = "Authentication required: send Authorization: Bearer <token>."
    error_extensions = {"code": UNAUTHENTICATED}  # noqa: RUF012 - the base class declares it so

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        try:
            info.context.viewer  # noqa: B018 - verifies the token once per request
        except AppError as exc:
            self.message = exc.message
            return False
        return True
