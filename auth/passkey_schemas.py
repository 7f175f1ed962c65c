"""Request/response bodies of the passkey ceremonies (auth/passkeys.py).

The credential a browser returns (``PublicKeyCredential.toJSON()``) is read field by field with a
bound on each: a credential ID is at most 1023 bytes (1364 base64url characters), and nothing
here is larger than an authenticator can produce. Fields the service does not read
(``clientExtensionResults``, the response's ``publicKey`` …) are ignored, not refused, since
browsers add them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.schemas import RequestModel, ResponseModel

MAX_CREDENTIAL_ID_BYTES = 1023
# base64url without padding of 1023 bytes.
MAX_CREDENTIAL_ID_CHARS = 1364
Base64Url = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]*={0,2}$")]
PasskeyName = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
CeremonyId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class _Browser(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AttestationResponseIn(_Browser):
    client_data_json: Annotated[Base64Url, Field(alias="clientDataJSON", max_length=4096)]
    attestation_object: Annotated[Base64Url, Field(alias="attestationObject", max_length=16384)]
    transports: Annotated[list[Annotated[str, StringConstraints(max_length=16)]], Field(max_length=8)] = []


class AssertionResponseIn(_Browser):
    client_data_json: Annotated[Base64Url, Field(alias="clientDataJSON", max_length=4096)]
    authenticator_data: Annotated[Base64Url, Field(alias="authenticatorData", max_length=4096)]
    signature: Annotated[Base64Url, Field(max_length=1024)]
    user_handle: Annotated[
        Annotated[Base64Url, StringConstraints(max_length=128)] | None, Field(alias="userHandle")
    ] = None


class _Credential(_Browser):
    id: Annotated[Base64Url, Field(min_length=1, max_length=MAX_CREDENTIAL_ID_CHARS)]
    raw_id: Annotated[Base64Url, Field(alias="rawId", min_length=1, max_length=MAX_CREDENTIAL_ID_CHARS)]
    type: Literal["public-key"]
    authenticator_attachment: Annotated[str | None, Field(alias="authenticatorAttachment", max_length=32)] = (
        None
    )


class RegistrationCredentialIn(_Credential):
    response: AttestationResponseIn

    def to_webauthn(self) -> dict[str, Any]:
        """The JSON shape py_webauthn parses (only the fields read above, already bounded)."""
        return {
            "id": self.id,
            "rawId": self.raw_id,
            "type": self.type,
            "response": {
                "clientDataJSON": self.response.client_data_json,
                "attestationObject": self.response.attestation_object,
                "transports": self.response.transports,
            },
        }


class AuthenticationCredentialIn(_Credential):
    response: AssertionResponseIn

    def to_webauthn(self) -> dict[str, Any]:
        response: dict[str, Any] = {
            "clientDataJSON": self.response.client_data_json,
            "authenticatorData": self.response.authenticator_data,
            "signature": self.response.signature,
        }
        if self.response.user_handle is not None:
            response["userHandle"] = self.response.user_handle
        return {"id": self.id, "rawId": self.raw_id, "type": self.type, "response": response}


class CeremonyOptionsOut(ResponseModel):
    """``options`` goes to ``PublicKeyCredential.parseCreationOptionsFromJSON`` (or
    ``…RequestOptions…``) as is; ``ceremony_id`` comes back with the browser's answer."""

    ceremony_id: str
    expires_at: dt.datetime
    options: dict[str, Any]


class PasskeyRegistrationIn(RequestModel):
    ceremony_id: CeremonyId
    name: PasskeyName
    credential: RegistrationCredentialIn


class PasskeyAssertionIn(RequestModel):
    ceremony_id: CeremonyId
    credential: AuthenticationCredentialIn


class PasskeyOut(ResponseModel):
    id: uuid.UUID
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    backed_up: bool
    transports: list[str]
    # Refused since its counter went back (a copied key): revoke it and enrol another.
    clone_suspected_at: dt.datetime | None
