"""Device registry: register/refresh, list, unregister."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from anyio import CancelScope
from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import IPvAnyNetwork

from api.deps import (
    Authenticated,
    DeviceColumns,
    OptionalAuthenticated,
    SessionDep,
    device_read,
    is_device_credential,
    limit_by_address,
    request_session,
    require,
    with_device_row,
)
from api.rendered import rendered
from api.surge import FastPath, SurgeRoute, fast_path
from auth import ratelimit
from auth.principal import Principal
from auth.roles import Permission
from core.context import current_context
from core.db import utcnow
from core.errors import BadRequest
from core.netaddr import network_of
from core.types import BoundedDatetime
from devices import floods
from devices import service as device_service
from devices.schemas import (
    DeviceOut,
    DeviceRegister,
    DeviceRegistered,
    FloodPurge,
    FloodPurged,
    NetworkRegistrationsOut,
)

router = APIRouter(tags=["devices"], route_class=SurgeRoute)


class Registrant(OptionalAuthenticated):
    """A registering app: signed in, a device credential, or nobody. Nobody means a new
    anonymous device (``device_service.makes_anonymous_device``), so the anonymous registration
    limits are counted here with the address, in the same Redis round trip; the other cases
    count them in the route, when the body says the registration makes one."""

    async def __call__(self, request: Request, session: SessionDep) -> Principal | None:  # type: ignore[override]
        if request.headers.get("authorization"):
            return await super().__call__(request, session)
        network = network_of(current_context().ip)
        await limit_by_address(
            request, *ratelimit.anonymous_registration_limits(str(network) if network else None)
        )
        request.state.registration_limited = True
        return None


_REGISTRANT = Registrant(allow_device=True)
MaybeSignedIn = Depends(_REGISTRANT)
Owner = Depends(Authenticated(allow_device=True))


# What an app start reads of its device, in its credential's statement (devices/service.py).
_REFRESH = DeviceColumns(
    columns=lambda first: list(device_service.REFRESH_COLUMNS), parameters=lambda now: ()
)


def _app_start(request: Request) -> bool:
    """An app's registration at start: anonymous (a new device) or with its device credential.
    Signed-in registrations take FastAPI's standard path."""
    return not request.headers.get("authorization") or is_device_credential(request)


async def _register_at_app_start(request: Request, values: dict[str, Any]) -> Response:
    """``register_device`` as its dependencies would run it (the session, then ``Registrant``),
    without FastAPI's per-request solving (api/surge.py); the session's end is shielded from
    cancellation as FastAPI shields a dependency's exit."""
    with CancelScope() as cleanup:
        async with request_session(request) as session:
            try:
                principal = await _REGISTRANT(request, session)
                return await register_device(
                    body=values["body"], request=request, session=session, principal=principal
                )
            finally:
                cleanup.shield = True
    raise AssertionError("unreachable")  # pragma: no cover (a cancel scope cannot swallow here)


@router.post(
    "",
    response_model=DeviceRegistered,
    responses={201: {"model": DeviceRegistered, "description": "A new device"}},  # 200: known device
)
@with_device_row(_REFRESH)
@fast_path(FastPath(serves=_app_start, run=_register_at_app_start))
async def register_device(
    body: DeviceRegister,
    request: Request,
    session: SessionDep,
    principal: Principal | None = MaybeSignedIn,
) -> Response:
    """Upsert by token: call at every app start (with the device credential, or signed in) and
    whenever the token changes.

    Signed in → the device is linked to the account. Anonymous (portal app only) → the answer
    carries a device credential for the device's inbox and receipts; send it back as the bearer
    token on later calls. A token already registered continues its device only for a caller who
    proves to be that device (its credential, or its signed-in account); anyone else gets a new
    device (201) and the previous one is retired. New anonymous devices are rate limited per
    network and for the whole service (429 with Retry-After).
    """
    user_id = principal.user.id if principal is not None and principal.user is not None else None
    presented = principal.device if principal is not None else None
    network = network_of(current_context().ip)
    counted = getattr(request.state, "registration_limited", False)
    if not counted and device_service.makes_anonymous_device(body=body, user_id=user_id, presented=presented):
        await ratelimit.enforce_anonymous_registration(str(network) if network else None)
    row = device_read(request)  # a device credential's row, read with its check
    registration = await device_service.register(
        session,
        body=body,
        user_id=user_id,
        presented_credential=presented,
        network=network,
        presented_row=row.row if row is not None else None,
    )
    registered = DeviceRegistered.model_validate(registration.device).model_copy(
        update={"device_credential": registration.credential}
    )
    # Rendered here (api/rendered.py): every app start calls this.
    return rendered(
        registered, status_code=status.HTTP_201_CREATED if registration.created else status.HTTP_200_OK
    )


@router.get("", response_model=list[DeviceOut])
async def list_devices(session: SessionDep, principal: Principal = Owner) -> list[DeviceOut]:
    """The caller's live devices (for a device credential: that device)."""
    if principal.device is not None:
        return [DeviceOut.model_validate(principal.device)]
    assert principal.user is not None
    return [
        DeviceOut.model_validate(d)
        for d in await device_service.list_for_user(session, user_id=principal.user.id)
    ]


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unregister_device(device_id: uuid.UUID, session: SessionDep, principal: Principal = Owner) -> None:
    await device_service.unregister(
        session,
        device_id=device_id,
        user_id=principal.user.id if principal.user is not None else None,
        device=principal.device,
    )


@router.get("/anonymous-registrations", response_model=list[NetworkRegistrationsOut])
async def anonymous_registrations(
    session: SessionDep,
    since: Annotated[BoundedDatetime | None, Query(description="default: an hour ago")] = None,
    until: Annotated[BoundedDatetime | None, Query(description="default: now")] = None,
    within: Annotated[IPvAnyNetwork | None, Query(description="only networks inside this prefix")] = None,
    principal: Principal = require(Permission.DEVICES_ADMIN),
) -> list[NetworkRegistrationsOut]:
    """Anonymous devices registered in the window per network (IPv4 /24, IPv6 /64), busiest
    first (at most 500 networks), with how many never came back with their credential."""
    until = until or utcnow()
    since = since or until - dt.timedelta(hours=1)
    if since >= until:
        raise BadRequest("since must be before until", code="invalid_window")
    rows = await floods.registrations_by_network(session, since=since, until=until, within=within)
    return [
        NetworkRegistrationsOut(
            network=str(row.network) if row.network is not None else None,
            registrations=row.registrations,
            unproven=row.unproven,
            first_at=row.first_at,
            last_at=row.last_at,
        )
        for row in rows
    ]


@router.post("/anonymous-registrations/purge", response_model=FloodPurged)
async def purge_anonymous_registrations(
    body: FloodPurge,
    session: SessionDep,
    principal: Principal = require(Permission.DEVICES_ADMIN, step_up=True),
) -> FloodPurged:
    """Delete the anonymous devices registered from ``network`` (or inside it) in
    ``[since, until)`` that never presented their credential; ``dry_run`` only counts them.
    Audited (``device.flood_purged``) with the count."""
    count = await floods.purge_unproven(
        session, network=body.network, since=body.since, until=body.until, dry_run=body.dry_run
    )
    return FloodPurged(
        network=str(body.network), since=body.since, until=body.until, dry_run=body.dry_run, devices=count
    )
