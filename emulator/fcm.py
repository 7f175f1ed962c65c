"""FCM HTTP v1 `messages:send` and the OAuth2 token endpoint, answering like Google does.

Error bodies follow Google's shape exactly, because firebase-admin picks its exception class
from `error.details[@type=...FcmError].errorCode` (e.g. UNREGISTERED -> UnregisteredError) and
falls back to `error.status` (e.g. INVALID_ARGUMENT -> InvalidArgumentError).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson

from emulator.faults import FaultInjector, FaultKind
from emulator.fcm_validation import InvalidMessage, parse_send_body, target_of
from emulator.http_types import JSON_CONTENT_TYPE, Reply, Request, json_reply
from emulator.records import MessageLog

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"

# kind -> (HTTP status, google.rpc status, FCM errorCode, message)
FCM_ERRORS: dict[FaultKind, tuple[int, str, str, str]] = {
    FaultKind.UNREGISTERED: (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    FaultKind.BAD_TOKEN: (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    FaultKind.QUOTA: (
        429,
        "RESOURCE_EXHAUSTED",
        "QUOTA_EXCEEDED",
        "Quota exceeded for quota metric 'Send messages' of service 'fcm.googleapis.com'.",
    ),
    FaultKind.UNAVAILABLE: (503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    FaultKind.INTERNAL: (500, "INTERNAL", "INTERNAL", "Internal error encountered."),
    FaultKind.SENDER_MISMATCH: (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    FaultKind.THIRD_PARTY_AUTH: (
        401,
        "UNAUTHENTICATED",
        "THIRD_PARTY_AUTH_ERROR",
        "Auth error from APNS or Web Push Service",
    ),
    FaultKind.INVALID_MESSAGE: (
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)",
    ),
}
_RETRY_AFTER_STATUSES = frozenset({429, 503})


def fcm_error_document(
    status: int,
    rpc_status: str,
    message: str,
    error_code: str | None,
    extra_details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    if error_code:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": error_code})
    if extra_details:
        details.extend(extra_details)
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if details:
        error["details"] = details
    return {"error": error}


# The bodies for injected faults never change, so they are encoded once.
_FAULT_BODIES: dict[FaultKind, bytes] = {
    kind: orjson.dumps(fcm_error_document(status, rpc_status, message, code))
    for kind, (status, rpc_status, code, message) in FCM_ERRORS.items()
}


class FcmHandler:
    """Serves the FCM port: `POST /v1/projects/{project}/messages:send` and `POST /token`."""

    def __init__(self, *, faults: FaultInjector, log: MessageLog) -> None:
        self.faults = faults
        self.log = log
        # Shaped like a real FCM id ("0:<digits>%<hex>"); unique within this emulator process.
        self._ids = itertools.count(int(time.time() * 1000) * 1000)
        self._paths: dict[str, tuple[tuple[str, str], ...]] = {}

    def __call__(self, request: Request) -> Reply:
        path = request.path.partition("?")[0]
        if path == "/token":
            return token_reply(request, self.log)
        if not (path.startswith("/v1/projects/") and path.endswith("/messages:send")):
            return json_reply(404, fcm_error_document(404, "NOT_FOUND", f"Unknown path {path}", None))
        project = path[len("/v1/projects/") : -len("/messages:send")]
        if request.method != "POST":
            return json_reply(405, fcm_error_document(405, "UNIMPLEMENTED", "Method not allowed.", None))
        if not project or "/" in project:
            return json_reply(404, fcm_error_document(404, "NOT_FOUND", "Unknown project.", None))
        return self._send(project, request)

    def _send(self, project: str, request: Request) -> Reply:
        faults = self.faults
        if faults.outage:
            return self._fault(FaultKind.UNAVAILABLE, target_of(request.body), request, faults.base_delay)
        authorization = request.headers.get("authorization", "")
        if not (authorization[:7].lower() == "bearer " and authorization[7:].strip()):
            self._record(target_of(request.body), 401, "UNAUTHENTICATED", None, request)
            return json_reply(
                401,
                fcm_error_document(
                    401,
                    "UNAUTHENTICATED",
                    "Request is missing required authentication credential. Expected OAuth 2 access token.",
                    None,
                ),
                headers=[("www-authenticate", 'Bearer realm="https://accounts.google.com/"')],
            )
        try:
            _, target, validate_only = parse_send_body(request.body)
        except InvalidMessage as error:
            self._record(target_of(request.body), 400, "INVALID_ARGUMENT", None, request)
            violation = {
                "@type": BAD_REQUEST_TYPE,
                "fieldViolations": [{"field": error.field, "description": str(error)}],
            }
            document = fcm_error_document(
                400, "INVALID_ARGUMENT", str(error), "INVALID_ARGUMENT", [violation]
            )
            return json_reply(400, document, delay=faults.base_delay)

        decision = faults.decide(target)
        if decision.kind is not None:
            return self._fault(decision.kind, target, request, decision.delay)
        if validate_only:
            # FCM's dry run answers with a fixed fake id and delivers nothing.
            self._record(target, 200, "validate_only", None, request)
            name = f"projects/{project}/messages/fake_message_id"
        else:
            message_id = f"0:{next(self._ids)}%c0ffee00c0ffee00"
            self._record(target, 200, "ok", message_id, request)
            name = f"projects/{project}/messages/{message_id}"
        return Reply(
            status=200,
            body=orjson.dumps({"name": name}),
            headers=[("content-type", JSON_CONTENT_TYPE)],
            delay=decision.delay,
        )

    def _fault(self, kind: FaultKind, target: str, request: Request, delay: float) -> Reply:
        status, _, error_code, _ = FCM_ERRORS[kind]
        self._record(target, status, error_code, None, request)
        headers = [("content-type", JSON_CONTENT_TYPE)]
        if status in _RETRY_AFTER_STATUSES:
            headers.append(("retry-after", str(self.faults.settings.retry_after_s)))
        return Reply(status=status, body=_FAULT_BODIES[kind], headers=headers, delay=delay)

    def _record(
        self, target: str, status: int, outcome: str, message_id: str | None, request: Request
    ) -> None:
        self.log.add(
            provider="fcm",
            token=target,
            status=status,
            outcome=outcome,
            message_id=message_id,
            headers=self._path_header(request.path),
            payload=request.body,
            protocol=request.protocol,
        )

    def _path_header(self, path: str) -> tuple[tuple[str, str], ...]:
        """The request's path (which names the FCM project), recorded as ``:path``: one shared
        tuple per path, so a million records of a benchmark hold a few of them."""
        recorded = self._paths.get(path)
        if recorded is None:
            recorded = ((":path", path),)
            if len(self._paths) < 64:
                self._paths[path] = recorded
        return recorded


_oauth_counter = itertools.count(1)


def token_reply(request: Request, log: MessageLog) -> Reply:
    """OAuth2 token endpoint, enough for google-auth's service-account JWT-bearer grant.

    The assertion's signature is not checked (the emulator holds no public keys); any
    form body with a grant_type gets a fresh opaque access token valid for an hour.
    """
    if request.method != "POST":
        return json_reply(405, {"error": "invalid_request", "error_description": "POST required"})
    if b"grant_type=" not in request.body:
        return json_reply(400, {"error": "invalid_request", "error_description": "grant_type missing"})
    log.stats.oauth_tokens_issued += 1
    return json_reply(
        200,
        {
            "access_token": f"emulator-access-token-{next(_oauth_counter)}",
            "expires_in": 3600,
            "token_type": "Bearer",
        },
    )
