"""Connected systems (API clients) of the caller's subtree, and a client's view of itself (D-40).

Reads need ``api_clients:manage``; every change also needs a fresh TOTP step-up, since a key is
a credential and a suspension cuts a whole connected system off.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from api.deps import Authenticated, SessionDep, require
from auth import api_clients as service
from auth.api_client_schemas import (
    ApiClientCreate,
    ApiClientOut,
    ApiClientSelf,
    ApiClientUpdate,
    ApiClientWithKey,
    RotateRequest,
)
from auth.principal import Principal
from auth.roles import Permission
from core.errors import Forbidden
from core.schemas import Page

router = APIRouter(tags=["api-clients"])

Manage = require(Permission.API_CLIENTS_MANAGE, step_up=True)
Read = require(Permission.API_CLIENTS_MANAGE)
AnyCaller = Depends(Authenticated(allow_api_client=True))


@router.get("/me", response_model=ApiClientSelf)
async def own_credentials(request: Request, principal: Principal = AnyCaller) -> ApiClientSelf:
    """For a connected system: is my key valid, which key is it, what may I do. Users get 403."""
    client = principal.api_client
    if client is None:
        raise Forbidden("Only API clients have credentials to check here", code="api_client_only")
    _, _, key = request.headers.get("authorization", "").partition(" ")
    in_use = service.key_in_use(client, key.strip())
    assert in_use is not None  # authentication accepted this very key
    return ApiClientSelf(**ApiClientOut.model_validate(client).model_dump(), key_in_use=in_use)


@router.post("", response_model=ApiClientWithKey, status_code=status.HTTP_201_CREATED)
async def create_api_client(
    body: ApiClientCreate, session: SessionDep, principal: Principal = Manage
) -> ApiClientWithKey:
    """The answer holds the key; it is shown only this once."""
    client, key = await service.create_client(
        session,
        principal=principal,
        unit_id=body.unit_id,
        name=body.name,
        scopes=body.scopes,
        ip_allowlist=body.ip_allowlist,
    )
    return _with_key(client, key)


@router.get("", response_model=Page[ApiClientOut])
async def list_api_clients(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    unit_id: uuid.UUID | None = None,
    principal: Principal = Read,
) -> Page[ApiClientOut]:
    clients, next_cursor = await service.list_clients(
        session, principal=principal, limit=limit, cursor=cursor, unit_id=unit_id
    )
    return Page[ApiClientOut](
        items=[ApiClientOut.model_validate(c) for c in clients], next_cursor=next_cursor
    )


@router.get("/{client_id}", response_model=ApiClientOut)
async def get_api_client(
    client_id: uuid.UUID, session: SessionDep, principal: Principal = Read
) -> ApiClientOut:
    return ApiClientOut.model_validate(
        await service.get_client(session, principal=principal, client_id=client_id)
    )


@router.patch("/{client_id}", response_model=ApiClientOut)
async def update_api_client(
    client_id: uuid.UUID, body: ApiClientUpdate, session: SessionDep, principal: Principal = Manage
) -> ApiClientOut:
    """Scope and allow-list changes apply to the client's next request."""
    client = await service.update_client(
        session,
        principal=principal,
        client_id=client_id,
        name=body.name,
        scopes=body.scopes,
        ip_allowlist=body.ip_allowlist,
    )
    return ApiClientOut.model_validate(client)


@router.post("/{client_id}/rotate", response_model=ApiClientWithKey)
async def rotate_api_client_key(
    client_id: uuid.UUID,
    session: SessionDep,
    body: RotateRequest | None = None,
    principal: Principal = Manage,
) -> ApiClientWithKey:
    """A new key (shown once); the old one keeps working for ``grace_seconds`` (default 24 h)."""
    grace = (body or RotateRequest()).grace_seconds
    client, key = await service.rotate(session, principal=principal, client_id=client_id, grace_seconds=grace)
    return _with_key(client, key)


@router.post("/{client_id}/suspend", response_model=ApiClientOut)
async def suspend_api_client(
    client_id: uuid.UUID, session: SessionDep, principal: Principal = Manage
) -> ApiClientOut:
    """Takes effect on the client's next request."""
    client = await service.set_status(session, principal=principal, client_id=client_id, suspended=True)
    return ApiClientOut.model_validate(client)


@router.post("/{client_id}/restore", response_model=ApiClientOut)
async def restore_api_client(
    client_id: uuid.UUID, session: SessionDep, principal: Principal = Manage
) -> ApiClientOut:
    client = await service.set_status(session, principal=principal, client_id=client_id, suspended=False)
    return ApiClientOut.model_validate(client)


def _with_key(client: object, key: str) -> ApiClientWithKey:
    out = ApiClientOut.model_validate(client)
    return ApiClientWithKey(**out.model_dump(), api_key=key)
