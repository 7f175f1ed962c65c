"""Who is doing what, for the current request or job: read by the audit writer and the logs.

The transport puts a fresh ``RequestContext`` in the contextvar when a request or job starts and
fills in the actor once it is authenticated; it is a mutable object so that a dependency that
runs after the middleware can still complete it.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class RequestContext:
    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    actor_kind: str = "anonymous"  # user | api_client | system | anonymous | device
    actor_id: uuid.UUID | None = None
    on_behalf_of_id: uuid.UUID | None = None
    unit_id: uuid.UUID | None = None


_current: ContextVar[RequestContext | None] = ContextVar("chuong_request_context", default=None)


def current_context() -> RequestContext:
    ctx = _current.get()
    if ctx is None:
        ctx = RequestContext(actor_kind="system")
        _current.set(ctx)
    return ctx


def set_context(ctx: RequestContext) -> None:
    _current.set(ctx)
