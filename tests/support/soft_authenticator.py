"""A software WebAuthn authenticator for the API tests: a real P-256 key pair, real authenticator
data, real ``packed`` (self-attestation) or ``none`` attestation objects and real ES256
assertions, built byte by byte from the WebAuthn Level 2 spec (§6.1 authenticator data, §8.2
packed, §8.7 none). The service verifies them with py_webauthn exactly as it verifies a browser's;
nothing of the verification is mocked.

Only the parts a browser would add are ours to choose here (the client data's origin, the RP ID
the authenticator hashes), which is what lets the tests present a wrong origin or RP ID."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

# Authenticator data flags (WebAuthn §6.1).
UP = 0x01  # user present
UV = 0x04  # user verified
AT = 0x40  # attested credential data included
ES256 = -7

RP_ID = "localhost"
ORIGIN = "http://localhost:8000"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _coordinate(value: int) -> bytes:
    return value.to_bytes(32, "big")


@dataclass
class SoftAuthenticator:
    """One credential on one authenticator. ``clone()`` copies it, key and counter included (what
    an attacker who extracted the key would hold)."""

    attestation: str = "packed"  # or "none"
    verifies_user: bool = True
    aaguid: bytes = bytes(16)
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    sign_count: int = 0
    user_handle: bytes | None = None

    def clone(self) -> SoftAuthenticator:
        twin = copy.copy(self)
        twin.key = self.key  # the same private key: that is the clone
        return twin

    def _cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        # COSE_Key (RFC 9053): kty EC2, alg ES256, crv P-256, x, y.
        return cbor2.dumps({1: 2, 3: ES256, -1: 1, -2: _coordinate(numbers.x), -3: _coordinate(numbers.y)})

    def _flags(self, extra: int = 0) -> int:
        return UP | (UV if self.verifies_user else 0) | extra

    def _sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False},
            separators=(",", ":"),
        ).encode()

    def create(
        self, options: dict[str, Any], *, origin: str = ORIGIN, rp_id: str | None = None
    ) -> dict[str, Any]:
        """``navigator.credentials.create()``: the registration credential, as ``toJSON()`` gives it."""
        rp = rp_id if rp_id is not None else options["rp"]["id"]
        self.user_handle = unb64url(options["user"]["id"])
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attested = (
            self.aaguid
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self._cose_public_key()
        )
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(AT)])
            + self.sign_count.to_bytes(4, "big")
            + attested
        )
        statement: dict[str, Any] = {}
        if self.attestation == "packed":
            # Self attestation: signed by the credential's own key over authData || hash(clientData).
            statement = {"alg": ES256, "sig": self._sign(auth_data + hashlib.sha256(client_data).digest())}
        attestation_object = cbor2.dumps(
            {"fmt": self.attestation, "attStmt": statement, "authData": auth_data}
        )
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": ["usb", "nfc"],
            },
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str = ORIGIN,
        rp_id: str | None = None,
        count: int | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.get()``: an assertion over the options' challenge. The counter
        grows by one per assertion unless ``count`` says what to report."""
        rp = rp_id if rp_id is not None else options["rpId"]
        self.sign_count = count if count is not None else self.sign_count + 1
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = (
            hashlib.sha256(rp.encode()).digest() + bytes([self._flags()]) + self.sign_count.to_bytes(4, "big")
        )
        signature = self._sign(auth_data + hashlib.sha256(client_data).digest())
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = b64url(self.user_handle)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": response,
        }
