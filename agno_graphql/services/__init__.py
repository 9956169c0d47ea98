"""The domain calls the API makes, one service a job, with settings applied: no GraphQL in here.

`Services` holds them as the app factory built them (`app.build_services`), each handed what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from agno_graphql.agents.registry import AgentRegistry
from agno_graphql.agents.runner import RunManager
from agno_graphql.auth import TokenVerifier
from agno_graphql.db.database import Database
from agno_graphql.documents import Documents
from agno_graphql.services.attachments import AttachmentService
from agno_graphql.services.editing import EditService
from agno_graphql.services.history import HistoryService
from agno_graphql.services.recovery import LostRuns
from agno_graphql.services.runs import RunService
from agno_graphql.services.sessions import SessionService
from agno_graphql.tracing import Tracing


@dataclass(frozen=True)
class Services:
    agents: AgentRegistry
    sessions: SessionService
    history: HistoryService
    runs: RunService
    edits: EditService
    attachments: AttachmentService
    verifier: TokenVerifier
    # Read by the HTTP view before an operation runs.
    documents: Documents
    # For the app's lifecycle, readiness and metrics, not for resolvers.
    db: Database
    run_manager: RunManager
    lost_runs: LostRuns
    tracing: Tracing | None = None  # on when an OTLP endpoint is set (tracing.py)
