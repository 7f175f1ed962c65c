"""Thin job functions: unwrap the job, open a transaction, call the domain."""

from __future__ import annotations

from auth import sessions
from auth.audit.partitions import ensure_partitions
from core.context import RequestContext, set_context
from core.db import transaction, utcnow
from core.jobs import JobName
from workers.context import JobContext, job


@job(JobName.PURGE_ENDED_SESSIONS)
async def purge_ended_sessions(ctx: JobContext) -> int:
    set_context(RequestContext(actor_kind="system", request_id=f"job:{ctx.job_id or ''}"))
    async with transaction() as session:
        return await sessions.purge_ended_sessions(session, now=utcnow())


@job(JobName.AUDIT_PARTITIONS)
async def audit_partitions(ctx: JobContext) -> list[str]:
    """The audit log's partitions of the coming months (auth/audit/partitions.py)."""
    async with transaction() as session:
        return await ensure_partitions(session, now=utcnow())
