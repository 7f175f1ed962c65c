"""Thin job functions: unwrap the job, open a transaction, call the domain."""

from __future__ import annotations

from typing import Any

from auth import sessions
from core.context import RequestContext, set_context
from core.db import transaction, utcnow


async def purge_ended_sessions(ctx: dict[str, Any]) -> int:
    set_context(RequestContext(actor_kind="system", request_id=f"job:{ctx.get('job_id', '')}"))
    async with transaction() as session:
        return await sessions.purge_ended_sessions(session, now=utcnow())
