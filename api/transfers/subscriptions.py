"""The live progress of an import or an export, as a GraphQL subscription
(graphql-transport-ws).

A thin caller of api.transfers.importer and exporter: each frame is the job read again
through their `get_job`, as the caller is now, so it shows exactly what `importJob(id)` or
`exportJob(id)` would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Annotated, Any

import strawberry

from api.core import events, ids, loaders
from api.core.context import Info
from api.core.errors import NotFound
from api.core.jobs import JobState
from api.core.permissions import IsAuthenticated
from api.transfers import exporter, importer
from api.transfers.export_schema import ExportJobType
from api.transfers.import_schema import ImportJobType
from api.users import auth
from api.users.models import User

Job = Annotated[
    ImportJobType | ExportJobType,
    strawberry.union("Job", description="A background job whose progress can be followed."),
]

FINISHED = frozenset({JobState.DONE, JobState.FAILED})

# Each kind of job and the service function `importJob` / `exportJob` read it with.
_GET_JOB: dict[str, Callable[[User, int], Awaitable[Any]]] = {
    "ImportJob": importer.get_job,
    "ExportJob": exporter.get_job,
}


def _job_ref(value: str) -> tuple[str, int]:
    """The kind and primary key an ImportJob or ExportJob id names."""
    for kind in _GET_JOB:
        try:
            return kind, ids.decode(kind, value)
        except NotFound:
            continue
    raise NotFound("Job")


@strawberry.type
class JobSubscriptions:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="An ImportJob or ExportJob now, then again as it progresses, at most every 100 ms and at least every SUBSCRIPTION_POLL_SECONDS; completes after DONE or FAILED. Visible to whoever may read importJob(id) or exportJob(id).",
    )
    async def job_progress(self, info: Info, id: strawberry.ID) -> AsyncGenerator[Job, None]:
        caller = info.context.require_user()
        kind, job_id = _job_ref(id)
        get_job = _GET_JOB[kind]
        # Checked before the stream starts, so a refusal is the protocol's `error` message.
        await get_job(caller, job_id)

        async def read() -> Any:
            nonlocal caller
            caller = await auth.recheck(caller)
            return await get_job(caller, job_id)

        def finished(job: Any) -> bool:
            return job.state in FINISHED

        return _frames(info, events.follow(kind, job_id, read, finished))


async def _frames(info: Info, jobs: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    # Closed with the subscription, so its listener goes at once, not when collected.
    async with contextlib.aclosing(jobs):
        async for job in jobs:
            # The connection's context outlives a frame: each frame reads afresh.
            loaders.begin()
            yield job
