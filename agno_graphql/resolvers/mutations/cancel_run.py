from __future__ import annotations

from agno_graphql.context import Info
from agno_graphql.schema.inputs import CancelRunInput
from agno_graphql.schema.payloads import CancelRunPayload
from agno_graphql.schema.types import Run


async def cancel_run(info: Info, input: CancelRunInput) -> CancelRunPayload:
    """Cancel a run and return it once stored; a finished run is returned unchanged."""
    record = await info.context.services.runs.cancel(info.context.user_id, str(input.run_id))
    return CancelRunPayload(run=Run.from_record(record))
