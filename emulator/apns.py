"""APNs provider API (`POST /3/device/{token}`) with Apple's status codes and reasons.

Two quirks of aioapns shape the replies, and Apple's server behaves the same way:
- the client matches a reply to its request by the `apns-id` response header, so every
  reply echoes the request's `apns-id` (or a fresh one if the request had none);
- it json-parses *every* DATA frame it receives, so success is HEADERS with END_STREAM and
  no body at all, and an error is HEADERS plus exactly one DATA frame `{"reason": ...}`
  (the HTTP/2 layer keeps small bodies in one frame, see `h2_connection.py`).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import uuid
from typing import Any

import orjson

from emulator.faults import FaultInjector, FaultKind
from emulator.http_types import JSON_CONTENT_TYPE, Reply, Request
from emulator.records import MessageLog

MAX_PAYLOAD_BYTES = 4096
MAX_VOIP_PAYLOAD_BYTES = 5120
MAX_COLLAPSE_ID_BYTES = 64
# Apple rejects provider tokens older than one hour; its `iat` "must be no more than one hour
# from the current time", so one dated more than an hour ahead (a stepped clock) is refused too.
PROVIDER_TOKEN_MAX_AGE_S = 3600

APNS_ERRORS: dict[FaultKind, tuple[int, str]] = {
    FaultKind.UNREGISTERED: (410, "Unregistered"),
    FaultKind.BAD_TOKEN: (400, "BadDeviceToken"),
    FaultKind.QUOTA: (429, "TooManyRequests"),
    FaultKind.UNAVAILABLE: (503, "ServiceUnavailable"),
    FaultKind.INTERNAL: (500, "InternalServerError"),
    FaultKind.SENDER_MISMATCH: (400, "DeviceTokenNotForTopic"),
    FaultKind.THIRD_PARTY_AUTH: (403, "InvalidProviderToken"),
    FaultKind.INVALID_MESSAGE: (400, "BadExpirationDate"),
}
PUSH_TYPES = frozenset(
    {
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtotalk",
        "widgets",
    }
)
PRIORITIES = frozenset({"1", "5", "10"})
RECORDED_HEADERS = (
    "apns-id",
    "apns-topic",
    "apns-push-type",
    "apns-priority",
    "apns-expiration",
    "apns-collapse-id",
)
_APNS_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PATH_PREFIX = "/3/device/"
_RETRY_AFTER_STATUSES = frozenset({429, 503})


class ApnsHandler:
    def __init__(self, *, faults: FaultInjector, log: MessageLog) -> None:
        self.faults = faults
        self.log = log
        # Decoding the provider JWT on every request would be the costliest step; clients
        # reuse one token for up to an hour, so remember the issue time of tokens seen.
        self._provider_tokens: dict[str, int] = {}

    def __call__(self, request: Request) -> Reply:
        headers = request.headers
        apns_id = headers.get("apns-id") or str(uuid.uuid4())
        path = request.path.partition("?")[0]
        if not path.startswith(_PATH_PREFIX):
            return self._error(404, "BadPath", apns_id, "", request)
        token = path[len(_PATH_PREFIX) :]
        if request.method != "POST":
            return self._error(405, "MethodNotAllowed", apns_id, token, request)
        faults = self.faults
        if faults.outage:
            return self._error(503, "ServiceUnavailable", apns_id, token, request, faults.base_delay)
        problem = self._check_request(headers, token, request.body)
        if problem is not None:
            status, reason = problem
            return self._error(status, reason, apns_id, token, request, faults.base_delay)

        decision = faults.decide(token)
        if decision.kind is not None:
            status, reason = APNS_ERRORS[decision.kind]
            return self._error(status, reason, apns_id, token, request, decision.delay)
        self._record(token, 200, "ok", apns_id, request)
        return Reply(status=200, headers=[("apns-id", apns_id)], delay=decision.delay)

    def _check_request(self, headers: dict[str, str], token: str, body: bytes) -> tuple[int, str] | None:
        auth_problem = self._check_provider_token(headers.get("authorization"))
        if auth_problem is not None:
            return 403, auth_problem
        if not token:
            return 400, "MissingDeviceToken"
        if not headers.get("apns-topic"):
            return 400, "MissingTopic"
        apns_id = headers.get("apns-id")
        if apns_id is not None and not _APNS_ID.match(apns_id):
            return 400, "BadMessageId"
        priority = headers.get("apns-priority")
        if priority is not None and priority not in PRIORITIES:
            return 400, "BadPriority"
        push_type = headers.get("apns-push-type")
        if push_type is not None and push_type not in PUSH_TYPES:
            return 400, "InvalidPushType"
        expiration = headers.get("apns-expiration")
        if expiration is not None and not expiration.isdigit():
            return 400, "BadExpirationDate"
        collapse_id = headers.get("apns-collapse-id")
        if collapse_id is not None and len(collapse_id.encode()) > MAX_COLLAPSE_ID_BYTES:
            return 400, "BadCollapseId"
        if not body:
            return 400, "PayloadEmpty"
        limit = MAX_VOIP_PAYLOAD_BYTES if push_type == "voip" else MAX_PAYLOAD_BYTES
        if len(body) > limit:
            return 413, "PayloadTooLarge"
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        # Apple documents no reason for a malformed payload; the emulator is stricter than
        # Apple here on purpose, so an app bug shows up as "BadPayload" in tests.
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            return 400, "BadPayload"
        return None

    def _check_provider_token(self, authorization: str | None) -> str | None:
        """Checks shape and age of the ES256 provider JWT; the signature is not verified."""
        if not authorization:
            return "MissingProviderToken"
        issued_at = self._provider_tokens.get(authorization)
        if issued_at is None:
            issued_at = _provider_token_issued_at(authorization)
            if issued_at is None:
                return "InvalidProviderToken"
            if len(self._provider_tokens) > 1024:
                self._provider_tokens.clear()
            self._provider_tokens[authorization] = issued_at
        now = time.time()
        if issued_at < now - PROVIDER_TOKEN_MAX_AGE_S:
            return "ExpiredProviderToken"
        if issued_at > now + PROVIDER_TOKEN_MAX_AGE_S:
            return "InvalidProviderToken"
        return None

    def _error(
        self, status: int, reason: str, apns_id: str, token: str, request: Request, delay: float = 0.0
    ) -> Reply:
        self._record(token, status, reason, apns_id, request)
        document: dict[str, Any] = {"reason": reason}
        if status == 410:
            # Milliseconds since the epoch at which the token was last known invalid.
            document["timestamp"] = int(time.time() * 1000)
        headers = [("apns-id", apns_id), ("content-type", JSON_CONTENT_TYPE)]
        if status in _RETRY_AFTER_STATUSES:
            headers.append(("retry-after", str(self.faults.settings.retry_after_s)))
        return Reply(status=status, body=orjson.dumps(document), headers=headers, delay=delay)

    def _record(self, token: str, status: int, outcome: str, apns_id: str, request: Request) -> None:
        headers = request.headers
        recorded = tuple((name, headers[name]) for name in RECORDED_HEADERS if name in headers)
        if "apns-id" not in headers:
            recorded = (("apns-id", apns_id), *recorded)
        self.log.add(
            provider="apns",
            token=token,
            status=status,
            outcome=outcome,
            message_id=apns_id,
            payload=request.body,
            protocol=request.protocol,
            headers=recorded,
        )


def _provider_token_issued_at(authorization: str) -> int | None:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    parts = token.strip().split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        header = orjson.loads(_b64url(parts[0]))
        claims = orjson.loads(_b64url(parts[1]))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    if header.get("alg") != "ES256" or not header.get("kid") or not claims.get("iss"):
        return None
    issued_at = claims.get("iat")
    return issued_at if isinstance(issued_at, int) else None


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
