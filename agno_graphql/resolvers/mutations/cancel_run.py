from __future__ import annotations

import strawberry

from agno_graphql.schema.inputs import CancelRunInput
from agno_graphql.schema.payloads import CancelRunPayload
from agno_graphql.schema.types import Run


async def cancel_run(info: strawberry.Info, input: CancelRunInput) -> CancelRunPayload:
    """Cancel a run and return it once stored; a finished run is returned unchanged."""
    record = await info.context.services.cancel_run(info.context.user_id, str(input.run_id))
    return CancelRunPayload(run=Run.from_record(record))
