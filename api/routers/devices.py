"""Device registry: register/refresh, list, unregister."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request, Response, status

from api.deps import Authenticated, OptionalAuthenticated, SessionDep
from auth.principal import Principal
from devices import service as device_service
from devices.schemas import DeviceOut, DeviceRegister, DeviceRegistered

router = APIRouter(tags=["devices"])

MaybeSignedIn = Depends(OptionalAuthenticated(allow_device=True))
Owner = Depends(Authenticated(allow_device=True))


@router.post("", response_model=DeviceRegistered)
async def register_device(
    body: DeviceRegister,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: Principal | None = MaybeSignedIn,
) -> DeviceRegistered:
    """Idempotent upsert by token: call at every app start and whenever the token changes.

    Signed in → the device is linked to the account (a token seen before on another account is
    moved over). Anonymous (portal app only) → the answer carries a device credential for the
    device's inbox and receipts; send it back as the bearer token on later calls.
    """
    user_id = principal.user.id if principal is not None and principal.user is not None else None
    presented = principal.device if principal is not None else None
    registration = await device_service.register(
        session, body=body, user_id=user_id, presented_credential=presented
    )
    response.status_code = status.HTTP_201_CREATED if registration.created else status.HTTP_200_OK
    return DeviceRegistered.model_validate(registration.device).model_copy(
        update={"device_credential": registration.credential}
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
